// Package e2e runs whole migrations against the embedded stack: an in-process Temporal, the
// sandbox (AWS and MongoDB over their real protocols) and a worker with the real
// activities. Nothing is mocked; the sandbox's own state is the judge.
package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
	"github.com/ferryhq/ferry/internal/devtemporal"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/topology"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// stack is the embedded Temporal, the sandbox with MongoDB, and a worker that runs every
// workflow a region move needs.
type stack struct {
	c      client.Client
	ns     string
	sb     *sandbox.Sandbox
	mongo  *sandbox.MongoSets
	ec2    func(region string) *ec2.Client
	r53    *route53.Client
	zoneID string
	ports  []int
}

// startStack is testenv.StartStack plus MongoDB, with a worker built here on the
// sandbox's endpoints (worker.New builds its clients from flags); it registers every kind
// under its descriptor's stable names, as ferry's worker does, and the tests drive
// Temporal directly so they can judge each workflow's own result.
func startStack(t testing.TB) *stack { return startStackWith(t, devtemporal.Options{}) }

// startStackWith is startStack on an embedded Temporal started with o (e.g. its dynamic
// config).
func startStackWith(t testing.TB, o devtemporal.Options) *stack {
	t.Helper()
	ctx := context.Background()
	srv, c, stop := testenv.StartTemporal(t, o)
	t.Cleanup(stop)
	topo := topology.Default()
	for i := range topo.HostedZones {
		for j := range topo.HostedZones[i].Records {
			topo.HostedZones[i].Records[j].TTL = 1 // a shift dwells max(bake, TTL)
		}
	}
	// Free ports instead of 27017..: other tests (and a developer's `ferry dev`) may hold them.
	// Port 0 lets each member's listener pick its own: a port picked first and bound later
	// can be taken in between by a test running in parallel (seen in CI).
	for i := range topo.Mongo.ReplicaSets[0].Members {
		topo.Mongo.ReplicaSets[0].Members[i].Port = 0
	}
	ms, err := sandbox.StartMongo(ctx, topo, true, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ms.Close() })
	var ports []int // in topology order, as the simulator lists its members
	for _, m := range ms.Cluster("rs0").Members() {
		_, port, err := net.SplitHostPort(m.Host)
		require.NoError(t, err)
		p, err := strconv.Atoi(port)
		require.NoError(t, err)
		ports = append(ports, p)
	}
	sb, err := sandbox.Start(ctx, sandbox.Options{Addr: "127.0.0.1:0", Fast: true, Topology: topo, Mongo: ms})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })

	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("sandbox", "sandbox", "")))
	require.NoError(t, err)
	endpoint := aws.String(sb.Addr())
	ec2c := func(region string) *ec2.Client {
		return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = endpoint; o.Region = region })
	}
	r53 := route53.NewFromConfig(cfg, func(o *route53.Options) { o.BaseEndpoint = endpoint })
	cw := func(region string) *cloudwatch.Client {
		return cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) { o.BaseEndpoint = endpoint; o.Region = region })
	}

	w := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{Identity: "e2e-worker"})
	for _, k := range workflows.Kinds() {
		w.RegisterWorkflowWithOptions(k.Workflow, workflow.RegisterOptions{Name: k.WorkflowName})
		w.RegisterWorkflowWithOptions(k.Plan, workflow.RegisterOptions{Name: k.PlanName})
	}
	workflows.RegisterLock(w)
	w.RegisterActivity(&activities.Locks{Temporal: c})
	hc := &http.Client{Timeout: 10 * time.Second}
	w.RegisterActivity(&activities.Route53{Client: r53})
	w.RegisterActivity(&activities.Gates{HTTP: hc, Route53: r53, CloudWatch: cw})
	w.RegisterActivity(&activities.EC2{Client: ec2c})
	mongoActs := activities.NewMongo(slog.New(slog.DiscardHandler))
	w.RegisterActivity(mongoActs)
	require.NoError(t, w.Start())
	t.Cleanup(func() {
		w.Stop()
		_ = mongoActs.Close()
	})
	return &stack{c: c, ns: srv.Namespace(), sb: sb, mongo: ms, ec2: ec2c, r53: r53, zoneID: topo.HostedZones[0].ID, ports: ports}
}

// moveSpec is the marketplace story (examples/region-move.yaml) on this stack's ports and
// sandbox address, with short waits.
func (s *stack) moveSpec(t testing.TB) workflows.RegionMoveInput {
	t.Helper()
	host := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", s.ports[i]) }
	doc := fmt.Sprintf(`
name: shop
reason: e2e region move
approvals: {requiredApprovers: 1}
regionMove:
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  approveBetweenPhases: true
  amiShare:
    sourceRegion: eu-west-1
    imageTags: {app: shop}
    targetRegions: [eu-west-2]
  mongoPrimaryMove:
    uri: mongodb://%s,%s,%s/?replicaSet=rs0
    sourceRegion: eu-west-1
    targetRegion: eu-west-2
    newMembers: [%s, %s, %s]
    maxLag: 1s
    catchUpPeriod: 1s
    takeoverTimeout: 3s
  dnsShift:
    hostedZone: shop.example.
    recordName: www.shop.example.
    from: eu-west-1
    to: eu-west-2
    schedule: [50, 100]
    approveAt: [50]
    bakeTime: 2s
    gateInterval: 1s
    rollbackMode: immediate
    gates:
      - name: eu-west-2 health
        http: {url: %s/_apps/eu-west-2/healthz, timeout: 2s}
`, host(0), host(1), host(2), host(3), host(4), host(5), s.sb.Addr())
	m, err := spec.Parse([]byte(doc), ".yaml")
	require.NoError(t, err)
	in, err := spec.RegionMoveInput(m, "alice")
	require.NoError(t, err)
	in.Spec.AMI.PollInterval = 100 * time.Millisecond // the default 15s suits AWS, not the fast sandbox
	return in
}

func (s *stack) progress(ctx context.Context, id string) (workflows.Progress, bool) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := s.c.QueryWorkflow(qctx, id, "", workflows.QueryProgress)
	if err != nil {
		return workflows.Progress{}, false
	}
	var p workflows.Progress
	if v.Get(&p) != nil {
		return workflows.Progress{}, false
	}
	return p, true
}

func (s *stack) act(ctx context.Context, id, update, identity string) (workflows.ActionResult, error) {
	uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	h, err := s.c.UpdateWorkflow(uctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: update, WaitForStage: client.WorkflowUpdateStageCompleted,
		Args: []any{workflows.ActionRequest{Identity: identity, Reason: "e2e"}},
	})
	if err != nil {
		return workflows.ActionResult{}, err
	}
	var r workflows.ActionResult
	return r, h.Get(uctx, &r)
}

// approver approves every gate as it opens, always through the parent: its own gates
// directly (bob), the running child's by forwarding (carol). It records what it approved.
type approver struct {
	mu       sync.Mutex
	approved []string
	errs     []string
	selfNo   error // alice's attempt at the first gate
	// holdChild, when set, keeps a child's gate unapproved while it says so.
	holdChild func(childID string) bool
}

func (a *approver) run(ctx context.Context, s *stack, id string) {
	forwarded := map[string]bool{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p, ok := s.progress(ctx, id)
		if !ok {
			continue
		}
		if g := p.PendingApproval; g != nil {
			if first {
				_, a.selfNo = s.act(ctx, id, workflows.UpdateApprove, "alice")
				first = false
			}
			_, err := s.act(ctx, id, workflows.UpdateApprove, "bob")
			a.note("parent: "+g.Step, err)
			continue
		}
		for _, ph := range p.Phases {
			if ph.State != workflows.PhaseRunning {
				continue
			}
			cp, ok := s.progress(ctx, ph.MigrationID)
			if !ok || cp.PendingApproval == nil {
				continue
			}
			key := ph.MigrationID + "|" + cp.PendingApproval.Step
			if forwarded[key] || (a.holdChild != nil && a.holdChild(ph.MigrationID)) {
				continue // sent; the child closes the gate when the signal lands
			}
			forwarded[key] = true
			_, err := s.act(ctx, id, workflows.UpdateApprove, "carol")
			a.note(ph.Name+": "+cp.PendingApproval.Step, err)
		}
	}
}

func (a *approver) note(what string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.errs = append(a.errs, what+": "+err.Error())
		return
	}
	a.approved = append(a.approved, what)
}

// runMove plans, starts the move pinned to the plan, approves every gate and returns the
// result.
func (s *stack) runMove(t *testing.T, in workflows.RegionMoveInput) (workflows.RegionMoveResult, *approver) {
	t.Helper()
	id := workflows.RegionMoveWorkflowID(in.Name, in.Spec.SourceRegion, in.Spec.TargetRegion)
	plan := s.planMove(t, in)
	require.Equal(t, id, plan.ID)
	require.NotEmpty(t, plan.Hash)
	require.True(t, slices.ContainsFunc(plan.Steps, func(st workflows.PlannedStep) bool {
		return strings.HasPrefix(st.Name, "mongo-primary-move: ")
	}), "the plan lists the children's steps")

	in.PlanHash = plan.Hash
	var res workflows.RegionMoveResult
	a, err := s.startAndApprove(t, workflows.KindByName(workflows.KindRegionMove), in, &res)
	require.NoError(t, err, "approved: %v; refused: %v", a.approved, a.errs)
	t.Logf("%s: %s", res.State, res.Message)
	for _, ph := range res.Phases {
		t.Logf("  %s %s (%s): %s", ph.Name, ph.State, ph.MigrationID, ph.Detail)
	}
	t.Logf("approved through the parent: %v", a.approved)
	return res, a
}

// weights reads the two weighted record sets of www.
func (s *stack) weights(t testing.TB) map[string]int64 {
	t.Helper()
	out, err := s.r53.ListResourceRecordSets(context.Background(), &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(s.zoneID)})
	require.NoError(t, err)
	w := map[string]int64{}
	for _, rs := range out.ResourceRecordSets {
		if aws.ToString(rs.Name) == "www.shop.example." && rs.SetIdentifier != nil {
			w[aws.ToString(rs.SetIdentifier)] = aws.ToInt64(rs.Weight)
		}
	}
	return w
}

// primaryRegion is the region tag of the primary, as the simulator itself reports it.
func (s *stack) primaryRegion() string { return testenv.PrimaryRegion(s.mongo.Cluster("rs0")) }

// copies lists the images in eu-west-2 that the move's AMI phase made, by state.
func (s *stack) copies(t *testing.T) map[string]string {
	t.Helper()
	out, err := s.ec2("eu-west-2").DescribeImages(context.Background(), &ec2.DescribeImagesInput{
		Owners:  []string{"self"},
		Filters: []ec2types.Filter{{Name: aws.String("tag:" + activities.TagMigration), Values: []string{"ami/eu-west-1/tags:app=shop"}}},
	})
	require.NoError(t, err)
	m := map[string]string{}
	for _, im := range out.Images {
		m[aws.ToString(im.ImageId)] = string(im.State)
	}
	return m
}

func TestRegionMoveEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS and MongoDB")
	}
	s := startStack(t)
	require.Equal(t, map[string]int64{"eu-west-1": 100, "eu-west-2": 0}, s.weights(t))
	require.Equal(t, "eu-west-1", s.primaryRegion())

	res, a := s.runMove(t, s.moveSpec(t))
	require.Equal(t, workflows.StateCompleted, res.State, res.Message)
	for _, ph := range res.Phases {
		require.Equal(t, workflows.PhaseCompleted, ph.State, "%s: %s", ph.Name, ph.Detail)
	}
	require.ErrorContains(t, a.selfNo, "four-eyes", "the initiator cannot approve through the parent")
	require.Empty(t, a.errs)
	// Both kinds of gates were approved through the parent: its own and the children's.
	require.Contains(t, a.approved, "parent: approve mongo-primary-move")
	require.Contains(t, a.approved, "parent: approve dns-shift")
	require.Contains(t, a.approved, "mongo-primary-move: approve primary move")
	require.True(t, slices.ContainsFunc(a.approved, func(s string) bool { return strings.HasPrefix(s, "dns-shift: ") }), "%v", a.approved)

	require.Equal(t, "eu-west-2", s.primaryRegion())
	require.Equal(t, map[string]int64{"eu-west-1": 0, "eu-west-2": 100}, s.weights(t))
	cs := s.copies(t)
	require.Len(t, cs, 2)
	for id, state := range cs {
		require.Equal(t, "available", state, id)
	}
	s.replay(t, workflows.RegionMoveWorkflowID("shop", "eu-west-1", "eu-west-2"))
}

// replay runs the move's recorded history through today's code: a change that would break
// running moves (non-determinism) fails here.
func (s *stack) replay(t *testing.T, id string) {
	t.Helper()
	r := sdkworker.NewWorkflowReplayer()
	r.RegisterWorkflow(workflows.RegionMove)
	require.NoError(t, r.ReplayWorkflowExecution(context.Background(), s.c.WorkflowService(), testenv.QuietLogger(), s.ns,
		workflow.Execution{ID: id}))
}

func TestRegionMoveRollsBackOnFailingGate(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS and MongoDB")
	}
	s := startStack(t)
	before := s.mongo.Cluster("rs0").Members()
	// eu-west-2's app fails its health check: the DNS shift's gate fails at the first
	// step and the whole move unwinds.
	_, err := s.sb.Faults().Add(control.Fault{Target: "app:eu-west-2", Kind: "unhealthy", Rate: 1})
	require.NoError(t, err)

	res, _ := s.runMove(t, s.moveSpec(t))
	require.Equal(t, workflows.StateRolledBack, res.State, res.Message)
	states := map[string]string{}
	for _, ph := range res.Phases {
		states[ph.Name] = ph.State
	}
	require.Equal(t, map[string]string{
		workflows.PhaseAMIShare:         workflows.PhaseRolledBack,
		workflows.PhaseMongoPrimaryMove: workflows.PhaseRolledBack,
		workflows.PhaseDNSShift:         workflows.PhaseRolledBack,
	}, states, res.Message)

	// The sandbox is where it started: all traffic on eu-west-1, the primary there, the
	// copies gone.
	require.Equal(t, map[string]int64{"eu-west-1": 100, "eu-west-2": 0}, s.weights(t))
	require.Equal(t, "eu-west-1", s.primaryRegion())
	// The replica set's config is the one from before: same members in it, same votes and
	// priorities (the eu-west-2 members are started but out of the config again).
	require.Equal(t, testenv.ReplicaSetConfig(before), testenv.ReplicaSetConfig(s.mongo.Cluster("rs0").Members()))
	for id, state := range s.copies(t) {
		require.Equal(t, "deregistered", state, "copy %s was not removed", id)
	}
	s.replay(t, workflows.RegionMoveWorkflowID("shop", "eu-west-1", "eu-west-2"))
}

// Cancelling the move cancels the running phase's child (ParentClosePolicy and the
// parent's context), and nothing after it starts.
func TestRegionMoveCancelReachesRunningChild(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS and MongoDB")
	}
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	in := s.moveSpec(t)
	id := workflows.RegionMoveWorkflowID(in.Name, in.Spec.SourceRegion, in.Spec.TargetRegion)
	run, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, workflows.RegionMove, in)
	require.NoError(t, err)
	testenv.Eventually(t, time.Minute, "the gate before the MongoDB phase", func() bool {
		p, ok := s.progress(ctx, id)
		return ok && p.PendingApproval != nil
	})
	_, err = s.act(ctx, id, workflows.UpdateApprove, "bob")
	require.NoError(t, err)
	child := workflows.MongoPrimaryMoveWorkflowID("rs0", in.Spec.Mongo.URI)
	testenv.Eventually(t, time.Minute, "the MongoDB child waiting for its approval", func() bool {
		p, ok := s.progress(ctx, child)
		return ok && p.PendingApproval != nil
	})
	require.NoError(t, s.c.CancelWorkflow(ctx, id, ""))
	err = run.Get(ctx, nil)
	require.True(t, temporal.IsCanceledError(err), "%v", err)
	d, err := s.c.DescribeWorkflowExecution(ctx, child, "")
	require.NoError(t, err)
	require.Equal(t, "Canceled", d.GetWorkflowExecutionInfo().GetStatus().String())
	p, _ := s.progress(ctx, id)
	require.Equal(t, workflows.StateCancelled, p.State)
	_, err = s.c.DescribeWorkflowExecution(ctx, workflows.DNSShiftWorkflowID("shop.example.", "www.shop.example.", "A"), "")
	require.Error(t, err, "the DNS phase never started")
	require.Equal(t, "eu-west-1", s.primaryRegion(), "the primary had not moved yet")
}
