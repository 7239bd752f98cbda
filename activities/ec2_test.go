package activities

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/ferryhq/ferry/sandbox/awssim"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/topology"
)

const (
	shopWeb    = "ami-0a1b2c3d4e5f60001"
	shopWorker = "ami-0a1b2c3d4e5f60002"
	euw2Key    = "2f0c3a52-7d3e-4a59-9c1e-0a1b2c3d4e02"
)

// ec2Sim is the sandbox's EC2 (Query protocol) with the default topology and copies that
// take 10ms per GiB, so waits are real but short.
func ec2Sim(t *testing.T) (*awssim.Server, *EC2) {
	t.Helper()
	topo := topology.Default()
	srv := awssim.New(awssim.Options{Regions: topo.Regions, CopyTimePerGiB: 10 * time.Millisecond})
	require.NoError(t, srv.Seed(topo))
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	cfg := awsConfig(t)
	return srv, &EC2{Client: func(region string) *ec2.Client {
		return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(hs.URL); o.Region = region })
	}}
}

func run[T any](t *testing.T, env *testsuite.TestActivityEnvironment, fn any, in any) (T, error) {
	t.Helper()
	var out T
	v, err := env.ExecuteActivity(fn, in)
	if err != nil {
		return out, err
	}
	require.NoError(t, v.Get(&out))
	return out, nil
}

func TestEC2ResolveByTag(t *testing.T) {
	_, e := ec2Sim(t)
	env := activityEnv(e)
	out, err := run[ResolveAMIsOutput](t, env, e.ResolveAMIs, ResolveAMIsInput{
		Region: "eu-west-1", Tags: map[string]string{"app": "shop"}, TargetRegions: []string{"eu-west-2", "us-east-1"},
		Sharing: true,
	})
	require.NoError(t, err)
	require.Len(t, out.Images, 2)
	require.Equal(t, shopWeb, out.Images[0].ID)
	require.Equal(t, "shop-web", out.Images[0].Name)
	require.Equal(t, "available", out.Images[0].State)
	require.Len(t, out.Images[0].SnapshotIDs, 1)
	require.Equal(t, "web", out.Images[0].Tags["role"])
	require.Equal(t, []string{"eu-west-1", "eu-west-2", "us-east-1"}, out.EnabledRegions)
}

func TestEC2PreflightNamesEveryProblem(t *testing.T) {
	_, e := ec2Sim(t)
	env := activityEnv(e)
	_, err := run[ResolveAMIsOutput](t, env, e.ResolveAMIs, ResolveAMIsInput{
		Region: "eu-west-1", ImageIDs: []string{shopWeb, "ami-0123456789abcdef0"},
		Tags: map[string]string{"app": "nothing"}, TargetRegions: []string{"eu-west-2", "ap-south-1"},
	})
	ae := requireAppError(t, err, ErrImageNotFound)
	require.Contains(t, ae.Error(), "image ami-0123456789abcdef0 not found in eu-west-1")
	require.Contains(t, ae.Error(), "tags app=nothing")
	require.Contains(t, ae.Error(), "target region ap-south-1 is not enabled")
	require.True(t, ae.NonRetryable())

	// An encrypted image shared with other accounts needs a key per target region.
	enc, err := run[CopyAMIOutput](t, env, e.CopyAMI, CopyAMIInput{SourceRegion: "eu-west-1", SourceImageID: shopWeb, Region: "eu-west-2",
		Name: "shop-web-enc", KMSKeyID: euw2Key, ClientToken: "enc", MigrationID: "m-enc"})
	require.NoError(t, err)
	_, err = run[WaitAMIOutput](t, env, e.WaitAMI, WaitAMIInput{Region: "eu-west-2", ImageID: enc.ImageID, PollInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	_, err = run[ResolveAMIsOutput](t, env, e.ResolveAMIs, ResolveAMIsInput{
		Region: "eu-west-2", ImageIDs: []string{enc.ImageID}, TargetRegions: []string{"us-east-1"}, Sharing: true,
	})
	ae = requireAppError(t, err, ErrKMSKeyRequired)
	require.Contains(t, ae.Error(), "set amiShare.kmsKeys.us-east-1")
}

func TestEC2CopyExactlyOnceAndShare(t *testing.T) {
	srv, e := ec2Sim(t)
	env := activityEnv(e)
	in := CopyAMIInput{SourceRegion: "eu-west-1", SourceImageID: shopWeb, Region: "eu-west-2", Name: "shop-web",
		ClientToken: "token-1", MigrationID: "ami/eu-west-1/test"}
	first, err := run[CopyAMIOutput](t, env, e.CopyAMI, in)
	require.NoError(t, err)
	require.False(t, first.Adopted)

	// A retry whose token the endpoint does not honour (moto) still finds the copy by its
	// tags; so does one with the same token.
	in.ClientToken = "token-2"
	again, err := run[CopyAMIOutput](t, env, e.CopyAMI, in)
	require.NoError(t, err)
	require.True(t, again.Adopted)
	require.Equal(t, first.ImageID, again.ImageID)
	calls := srv.Calls(control.CallFilter{Operation: "CopyImage"})
	require.Len(t, calls, 1)
	require.Equal(t, "token-1", calls[0].ClientToken)

	w, err := run[WaitAMIOutput](t, env, e.WaitAMI, WaitAMIInput{Region: "eu-west-2", ImageID: first.ImageID, PollInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, "available", w.State)
	require.Len(t, w.SnapshotIDs, 1)
	require.GreaterOrEqual(t, w.Polls, 1)

	_, err = run[TagAMIOutput](t, env, e.TagAMI, TagAMIInput{Region: "eu-west-2", ImageID: first.ImageID, SnapshotIDs: w.SnapshotIDs,
		Tags: map[string]string{"app": "shop", "aws:reserved": "x"}})
	require.NoError(t, err)
	for i := 0; i < 2; i++ { // sharing twice changes nothing the second time
		sh, err := run[ShareAMIOutput](t, env, e.ShareAMI, ShareAMIInput{Region: "eu-west-2", ImageID: first.ImageID, SnapshotIDs: w.SnapshotIDs,
			Accounts: []string{"111122223333"}, Organizations: []string{"arn:aws:organizations::123456789012:organization/o-exampleorgid"}})
		require.NoError(t, err)
		require.Equal(t, 1, sh.Snapshots)
	}
	c := e.Client("eu-west-2")
	d, err := c.DescribeImages(context.Background(), &ec2.DescribeImagesInput{ImageIds: []string{first.ImageID}})
	require.NoError(t, err)
	tags := map[string]string{}
	for _, tg := range d.Images[0].Tags {
		tags[*tg.Key] = *tg.Value
	}
	require.Equal(t, "shop", tags["app"])
	require.Equal(t, shopWeb, tags[TagSourceImage])
	require.Equal(t, "ami/eu-west-1/test", tags[TagMigration])
	require.NotContains(t, tags, "aws:reserved")
	lp, err := c.DescribeImageAttribute(context.Background(), &ec2.DescribeImageAttributeInput{ImageId: aws.String(first.ImageID), Attribute: types.ImageAttributeNameLaunchPermission})
	require.NoError(t, err)
	require.Len(t, lp.LaunchPermissions, 2)
	sa, err := c.DescribeSnapshotAttribute(context.Background(), &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(w.SnapshotIDs[0]), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	require.NoError(t, err)
	require.Len(t, sa.CreateVolumePermissions, 1)
	require.Equal(t, "111122223333", *sa.CreateVolumePermissions[0].UserId)

	// Another migration's rollback refuses the copy; this one's removes it, twice over.
	_, err = run[DeleteAMICopyOutput](t, env, e.DeleteAMICopy, DeleteAMICopyInput{Region: "eu-west-2", ImageID: first.ImageID, MigrationID: "ami/other"})
	requireAppError(t, err, ErrNotOurImage)
	del, err := run[DeleteAMICopyOutput](t, env, e.DeleteAMICopy, DeleteAMICopyInput{Region: "eu-west-2", ImageID: first.ImageID, MigrationID: "ami/eu-west-1/test"})
	require.NoError(t, err)
	require.True(t, del.Deregistered)
	require.Equal(t, w.SnapshotIDs, del.DeletedSnapshots)
	del, err = run[DeleteAMICopyOutput](t, env, e.DeleteAMICopy, DeleteAMICopyInput{Region: "eu-west-2", ImageID: first.ImageID, SnapshotIDs: w.SnapshotIDs})
	require.NoError(t, err)
	require.False(t, del.Deregistered)
	require.Empty(t, del.DeletedSnapshots)
	snaps, err := c.DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	require.NoError(t, err)
	for _, s := range snaps.Snapshots {
		require.NotEqual(t, w.SnapshotIDs[0], *s.SnapshotId)
	}
}

func TestEC2CopyErrorsAreTyped(t *testing.T) {
	_, e := ec2Sim(t)
	env := activityEnv(e)
	_, err := run[CopyAMIOutput](t, env, e.CopyAMI, CopyAMIInput{SourceRegion: "eu-west-1", SourceImageID: shopWeb, Region: "eu-west-2",
		Name: "shop-web", KMSKeyID: "alias/missing", ClientToken: "k", MigrationID: "m"})
	ae := requireAppError(t, err, ErrKMSKeyInvalid)
	require.Contains(t, ae.Error(), "amiShare.kmsKeys.eu-west-2")
	_, err = run[CopyAMIOutput](t, env, e.CopyAMI, CopyAMIInput{SourceRegion: "eu-west-1", SourceImageID: "ami-0123456789abcdef0", Region: "eu-west-2",
		Name: "x-copy", ClientToken: "k2", MigrationID: "m"})
	requireAppError(t, err, ErrImageNotFound)
	_, err = run[WaitAMIOutput](t, env, e.WaitAMI, WaitAMIInput{Region: "eu-west-2", ImageID: "ami-0123456789abcdef0",
		PollInterval: 5 * time.Millisecond, NotFoundGrace: 20 * time.Millisecond})
	requireAppError(t, err, ErrImageNotFound)
}
