package e2e

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/ferryhq/ferry/activities"
	"github.com/ferryhq/ferry/workflows"
)

// availableIn lists the images in region that are not deregistered, by id, with their
// run-chain tag: the sandbox's own view.
func (s *stack) availableIn(t *testing.T, region string) map[string]string {
	t.Helper()
	out, err := s.ec2(region).DescribeImages(context.Background(), &ec2.DescribeImagesInput{Owners: []string{"self"}})
	require.NoError(t, err)
	m := map[string]string{}
	for _, im := range out.Images {
		if im.State == ec2types.ImageStateAvailable || im.State == ec2types.ImageStatePending {
			run := ""
			for _, tg := range im.Tags {
				if aws.ToString(tg.Key) == activities.TagRun {
					run = aws.ToString(tg.Value)
				}
			}
			m[aws.ToString(im.ImageId)] = run
		}
	}
	return m
}

// A second run of one AMI share (run again "to retry", with one more target region) that
// fails and rolls back removes only what it made: the first run's copies, in production
// use, stay available. (On the code before run tags, the second run adopted the first's
// copies and its rollback deregistered them.)
func TestAMIShareSecondRunLeavesTheFirstRunsCopies(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS")
	}
	s := startStack(t)
	k := workflows.KindByName(workflows.KindAMIShare)
	spec := *s.moveSpec(t).Spec.AMI
	common := workflows.Common{Name: "shop images", Initiator: "alice", Approvals: workflows.ApprovalPolicy{RequiredApprovers: 1}}

	var first workflows.AMIShareResult
	require.NoError(t, s.runKind(t, k, k.NewInput(spec, common), &first))
	require.Equal(t, workflows.StateCompleted, first.State, first.Message)
	firstCopies := s.availableIn(t, "eu-west-2")
	require.Len(t, firstCopies, 2)

	// The second run reuses the first's eu-west-2 copies read-only and copies to us-east-1,
	// where its second copy is refused for good: it fails part-way and rolls back.
	spec.TargetRegions = []string{"eu-west-2", "us-east-1"}
	_, err := s.sb.Faults().Add(deny("aws:ec2:CopyImage", 1, 1))
	require.NoError(t, err)
	var second workflows.AMIShareResult
	require.NoError(t, s.runKind(t, k, k.NewInput(spec, common), &second))
	require.Equal(t, workflows.StateRolledBack, second.State, second.Message)
	notOurs := 0
	for _, c := range second.Copies {
		if c.Region == "eu-west-2" {
			require.True(t, c.NotOurs, "%+v", c)
			notOurs++
		}
	}
	require.Equal(t, 2, notOurs)

	require.Equal(t, firstCopies, s.availableIn(t, "eu-west-2"), "the first run's copies are untouched")
	require.Empty(t, s.availableIn(t, "us-east-1"), "the second run removed the copy it made")
	for _, run := range firstCopies {
		require.NotEmpty(t, run, "copies carry the run chain that made them")
	}
}

// An image of an instance that an earlier run made is not adopted: the migration images
// the instance as it is now (seen as two images, each tagged with its own run chain).
func TestCreateAMIDoesNotAdoptAnEarlierRunsImage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: sandbox AWS")
	}
	s := startStack(t)
	ctx := context.Background()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	a := &activities.EC2{Client: s.ec2}
	env.RegisterActivity(a)
	create := func(in activities.CreateAMIInput) (activities.CreateAMIOutput, error) {
		var out activities.CreateAMIOutput
		v, err := env.ExecuteActivity(a.CreateAMI, in)
		if err == nil {
			err = v.Get(&out)
		}
		return out, err
	}
	images, err := s.ec2("eu-west-1").DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	require.NoError(t, err)
	require.NotEmpty(t, images.Images)
	run, err := s.ec2("eu-west-1").RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: images.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1), InstanceType: ec2types.InstanceTypeT3Micro,
	})
	require.NoError(t, err)
	inst := aws.ToString(run.Instances[0].InstanceId)
	in := activities.CreateAMIInput{Region: "eu-west-1", InstanceID: inst, Name: "img-run1", MigrationID: "ami/eu-west-1/instances:" + inst, RunChain: "run-1"}
	first, err := create(in)
	require.NoError(t, err)
	again, err := create(in)
	require.NoError(t, err)
	require.Equal(t, first.ImageID, again.ImageID, "a retry of the same run chain adopts its own image")
	require.True(t, again.Adopted)

	in.RunChain, in.Name = "run-2", "img-run2"
	second, err := create(in)
	require.NoError(t, err)
	require.NotEqual(t, first.ImageID, second.ImageID, "a later run images the instance anew")
	require.False(t, second.Adopted)

	// And a rollback of the later run cannot delete the earlier run's image.
	_, err = env.ExecuteActivity(a.DeleteAMICopy, activities.DeleteAMICopyInput{Region: "eu-west-1", ImageID: first.ImageID, MigrationID: in.MigrationID, RunChain: "run-2"})
	require.True(t, workflows.HasErrorType(err, activities.ErrNotOurImage), "%v", err)
	require.Contains(t, s.availableIn(t, "eu-west-1"), first.ImageID)
}
