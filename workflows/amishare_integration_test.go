package workflows_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/ferryhq/ferry/activities"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/workflows"
)

const amiShareAccount = "111122223333"

var amiTargets = []string{"eu-west-2", "us-east-1"}

// TestAMIShareIntegration runs the AMI share on an embedded Temporal with a real SDK worker
// against the sandbox's EC2 and, when installed, against moto_server (an independent AWS
// emulator whose copies are available at once and whose CopyImage ignores ClientToken).
//
// Scenario: 2 images (tag app=shop) x 2 target regions x 1 account. Run 1 copies, tags and
// shares; everything is checked through the AWS SDK. Run 2 (same workflow id, so the same
// migration) adopts the copies by their ferry tags instead of copying again, waits for
// approval before sharing, and is rolled back there: the copies and their snapshots go.
func TestAMIShareIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: embedded Temporal, sandbox and moto")
	}
	_, c := testenv.Temporal(t)

	t.Run("sandbox", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		sb, err := sandbox.Start(ctx, sandbox.Options{Addr: "127.0.0.1:0", Fast: true})
		require.NoError(t, err)
		defer sb.Close()
		nonReplay := func() map[string]int {
			n := map[string]int{}
			for _, call := range sb.AWS().Calls(control.CallFilter{Operation: "CopyImage"}) {
				if !call.Replay && call.Result == "ok" {
					n[call.Params["SourceImageId"]+"/"+call.Region]++
				}
			}
			return n
		}
		runAMIScenario(ctx, t, c, sb.Addr(), "ferry-ami-sandbox", nonReplay)
	})

	t.Run("moto", func(t *testing.T) {
		bin, err := exec.LookPath("moto_server")
		if err != nil {
			t.Skip("moto_server not on PATH: the moto half of the AMI share test is skipped")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		url := startMotoServer(t, bin)
		seedMoto(ctx, t, ec2Clients(t, url))
		runAMIScenario(ctx, t, c, url, "ferry-ami-moto", nil)
	})
}

func ec2Clients(t *testing.T, endpoint string) func(string) *ec2.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithRegion("us-east-1"))
	require.NoError(t, err)
	return func(region string) *ec2.Client {
		return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(endpoint); o.Region = region })
	}
}

// runAMIScenario runs both executions against one endpoint. copyCalls, when not nil,
// returns the endpoint's own count of CopyImage calls that started a copy, per
// source/region.
func runAMIScenario(ctx context.Context, t *testing.T, c client.Client, endpoint, queue string, copyCalls func() map[string]int) {
	clients := ec2Clients(t, endpoint)
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflow(workflows.AMIShare)
	w.RegisterWorkflow(workflows.PlanAMIShare)
	workflows.RegisterLock(w)
	w.RegisterActivity(&activities.EC2{Client: clients})
	require.NoError(t, w.Start())
	defer w.Stop()

	spec := workflows.AMIShareSpec{
		SourceRegion: "eu-west-1", ImageTags: map[string]string{"app": "shop"},
		TargetRegions: amiTargets, ShareWithAccounts: []string{amiShareAccount},
		CopyTags: true, AddTags: map[string]string{"migrated-by": "ferry"},
		MaxParallel: 10, PollInterval: 100 * time.Millisecond,
	}
	id := workflows.AMIShareWorkflowID(spec.SourceRegion, workflows.AMISelection(spec))
	require.Equal(t, "ami/eu-west-1/tags:app=shop", id)

	// Plan, then run pinned to the plan's hash.
	pr, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "plan-" + id, TaskQueue: queue}, workflows.PlanAMIShare, workflows.PlanAMIShareInput{Spec: spec})
	require.NoError(t, err)
	var plan workflows.Plan
	require.NoError(t, pr.Get(ctx, &plan))
	require.Len(t, plan.Steps, 4, "%+v", plan.Steps)

	start := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, workflows.AMIShare,
		workflows.AMIShareInput{Spec: spec, Common: workflows.Common{Name: "shop images", Initiator: "alice", Approvals: workflows.ApprovalPolicy{RequiredApprovers: 1}, PlanHash: plan.Hash}})
	require.NoError(t, err)
	var res workflows.AMIShareResult
	require.NoError(t, run.Get(ctx, &res))
	t.Logf("run 1: %s in %s", res.Message, time.Since(start).Round(time.Millisecond))
	require.Equal(t, workflows.StateCompleted, res.State, res.Message)
	require.Len(t, res.Copies, 4)

	sources := sourceImages(ctx, t, clients("eu-west-1"))
	require.Len(t, sources, 2)
	copies := map[string]string{} // source/region -> copy id
	for _, cp := range res.Copies {
		require.Equal(t, workflows.AMICopyShared, cp.State, "%+v", cp)
		copies[cp.SourceImageID+"/"+cp.Region] = cp.ImageID
	}
	var snapshots []struct{ region, id string }
	for _, region := range amiTargets {
		e := clients(region)
		imgs, err := e.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []types.Filter{
			{Name: aws.String("tag:" + activities.TagMigration), Values: []string{id}}}})
		require.NoError(t, err)
		require.Len(t, imgs.Images, 2, "one copy per image in %s", region)
		for _, im := range imgs.Images {
			require.Equal(t, types.ImageStateAvailable, im.State)
			tags := tagMap(im.Tags)
			src := tags[activities.TagSourceImage]
			require.Contains(t, sources, src)
			require.Equal(t, copies[src+"/"+region], aws.ToString(im.ImageId))
			require.Equal(t, id, tags[activities.TagMigration])
			require.Equal(t, "ferry", tags["migrated-by"])
			for k, v := range sources[src] {
				require.Equal(t, v, tags[k], "source tag %s copied to %s", k, aws.ToString(im.ImageId))
			}
			lp, err := e.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: im.ImageId, Attribute: types.ImageAttributeNameLaunchPermission})
			require.NoError(t, err)
			require.True(t, hasUser(lp.LaunchPermissions, amiShareAccount), "launch permission on %s", aws.ToString(im.ImageId))
			for _, bd := range im.BlockDeviceMappings {
				if bd.Ebs == nil || bd.Ebs.SnapshotId == nil {
					continue
				}
				snapshots = append(snapshots, struct{ region, id string }{region, *bd.Ebs.SnapshotId})
				sa, err := e.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: bd.Ebs.SnapshotId, Attribute: types.SnapshotAttributeNameCreateVolumePermission})
				require.NoError(t, err)
				var users []string
				for _, p := range sa.CreateVolumePermissions {
					users = append(users, aws.ToString(p.UserId))
				}
				require.Contains(t, users, amiShareAccount, "createVolumePermission on %s", *bd.Ebs.SnapshotId)
			}
		}
	}
	require.Len(t, snapshots, 4)
	if copyCalls != nil {
		n := copyCalls()
		require.Len(t, n, 4, "%v", n)
		for k, v := range n {
			require.Equal(t, 1, v, "non-replay CopyImage calls for %s", k)
		}
	}

	// Run 2: the same migration again, holding for approval before sharing; it must use the
	// four copies read-only (an earlier run made them), not copy again; then its rollback
	// leaves them: they are not its own.
	spec.ApproveBeforeSharing = true
	run2, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, workflows.AMIShare,
		workflows.AMIShareInput{Spec: spec, Common: workflows.Common{Name: "shop images", Initiator: "alice", Approvals: workflows.ApprovalPolicy{RequiredApprovers: 1}}})
	require.NoError(t, err)
	var p workflows.Progress
	testenv.Eventually(t, time.Minute, "run 2 awaits approval", func() bool {
		v, err := c.QueryWorkflow(ctx, id, run2.GetRunID(), workflows.QueryProgress)
		if err != nil {
			return false
		}
		p = workflows.Progress{}
		return v.Get(&p) == nil && p.State == workflows.StateAwaitingApproval
	})
	for _, cp := range p.AMI.Copies {
		require.True(t, cp.NotOurs, "run 2 uses the copy read-only %+v", cp)
		require.Equal(t, copies[cp.SourceImageID+"/"+cp.Region], cp.ImageID)
	}
	if copyCalls != nil {
		for k, v := range copyCalls() {
			require.Equal(t, 1, v, "still one CopyImage for %s after run 2", k)
		}
	}
	upd, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, RunID: run2.GetRunID(), UpdateName: workflows.UpdateRollback,
		Args: []any{workflows.ActionRequest{Identity: "bob", Reason: "integration test"}}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	require.NoError(t, err)
	require.NoError(t, upd.Get(ctx, nil))
	var res2 workflows.AMIShareResult
	require.NoError(t, run2.Get(ctx, &res2))
	require.Equal(t, workflows.StateRolledBack, res2.State, res2.Message)
	require.Contains(t, res2.Message, "removed 0 image(s)")
	for _, region := range amiTargets {
		e := clients(region)
		imgs, err := e.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []types.Filter{
			{Name: aws.String("tag:" + activities.TagMigration), Values: []string{id}}}})
		require.NoError(t, err)
		for _, im := range imgs.Images {
			require.Equal(t, types.ImageStateAvailable, im.State, "run 1's copy %s in %s must stay", aws.ToString(im.ImageId), region)
		}
	}
	for _, s := range snapshots {
		_, err := clients(s.region).DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{s.id}})
		require.NoError(t, err, "snapshot %s in %s must stay", s.id, s.region)
	}
	// The sources are untouched.
	require.Len(t, sourceImages(ctx, t, clients("eu-west-1")), 2)
}

// sourceImages returns the app=shop images of the source region with their tags.
func sourceImages(ctx context.Context, t *testing.T, e *ec2.Client) map[string]map[string]string {
	t.Helper()
	out, err := e.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: []types.Filter{
		{Name: aws.String("tag:app"), Values: []string{"shop"}}}})
	require.NoError(t, err)
	m := map[string]map[string]string{}
	for _, im := range out.Images {
		m[aws.ToString(im.ImageId)] = tagMap(im.Tags)
	}
	return m
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func hasUser(perms []types.LaunchPermission, account string) bool {
	for _, p := range perms {
		if aws.ToString(p.UserId) == account {
			return true
		}
	}
	return false
}

// startMotoServer starts moto on a free port, as sandbox/awssim's cross-check does.
func startMotoServer(t *testing.T, bin string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	testenv.Eventually(t, 30*time.Second, "moto_server answers", func() bool {
		resp, err := http.Get(url + "/moto-api/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return url
}

// seedMoto gives moto what the sandbox's topology has: two images in eu-west-1 tagged
// app=shop (moto has no topology, only public AMIs).
func seedMoto(ctx context.Context, t *testing.T, clients func(string) *ec2.Client) {
	t.Helper()
	e := clients("eu-west-1")
	pub, err := e.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	require.NoError(t, err)
	require.NotEmpty(t, pub.Images, "moto ships public AMIs")
	ids := make([]string, 0, len(pub.Images))
	for _, im := range pub.Images {
		ids = append(ids, aws.ToString(im.ImageId))
	}
	sort.Strings(ids)
	for _, role := range []string{"web", "worker"} {
		run, err := e.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String(ids[0]), MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: types.InstanceTypeT3Micro})
		require.NoError(t, err)
		img, err := e.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: run.Instances[0].InstanceId, Name: aws.String("shop-" + role), NoReboot: aws.Bool(true)})
		require.NoError(t, err)
		_, err = e.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{*img.ImageId}, Tags: []types.Tag{
			{Key: aws.String("app"), Value: aws.String("shop")}, {Key: aws.String("role"), Value: aws.String(role)}}})
		require.NoError(t, err)
	}
}
