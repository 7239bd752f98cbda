package awssim

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/sandbox/control"
)

var ctx = context.Background()

func TestDescribeImagesAndErrors(t *testing.T) {
	_, c, _ := startSim(t, simOpts{})
	e := c.ec2("eu-west-1")
	out, err := e.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Owners:  []string{"self"},
		Filters: []types.Filter{{Name: aws.String("tag:app"), Values: []string{"shop"}}, {Name: aws.String("state"), Values: []string{"available"}}},
	})
	require.NoError(t, err)
	require.Len(t, out.Images, 2)
	assert.Equal(t, "shop-web", *out.Images[0].Name)
	assert.Equal(t, int32(8), *out.Images[0].BlockDeviceMappings[0].Ebs.VolumeSize)

	_, err = e.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{"ami-0123456789abcdef0"}})
	assert.Equal(t, "InvalidAMIID.NotFound", apiCode(err))
	_, err = e.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{"bogus"}})
	assert.Equal(t, "InvalidAMIID.Malformed", apiCode(err))

	// Regions are separate: eu-west-2 has no images.
	out, err = c.ec2("eu-west-2").DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	require.NoError(t, err)
	assert.Empty(t, out.Images)

	regions, err := e.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	require.NoError(t, err)
	assert.Len(t, regions.Regions, 3)
}

func TestCopyImagePendingAvailableAndIdempotent(t *testing.T) {
	srv, c, _ := startSim(t, simOpts{copyPerGiB: 20 * time.Millisecond})
	dst := c.ec2("eu-west-2")
	in := &ec2.CopyImageInput{SourceRegion: aws.String("eu-west-1"), SourceImageId: aws.String("ami-0a1b2c3d4e5f60001"),
		Name: aws.String("shop-web"), ClientToken: aws.String("wf-1/ami-0a1b2c3d4e5f60001/eu-west-2"), CopyImageTags: aws.Bool(true)}
	first, err := dst.CopyImage(ctx, in)
	require.NoError(t, err)
	again, err := dst.CopyImage(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, *first.ImageId, *again.ImageId, "same ClientToken, same image")

	img := func() types.Image {
		out, err := dst.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{*first.ImageId}})
		require.NoError(t, err)
		require.Len(t, out.Images, 1)
		return out.Images[0]
	}
	assert.Equal(t, types.ImageStatePending, img().State)
	assert.Equal(t, "shop", tagValue(img().Tags, "app"))
	eventually(t, 5*time.Second, func() bool { return img().State == types.ImageStateAvailable }, "copy becomes available")

	all, err := dst.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	require.NoError(t, err)
	assert.Len(t, all.Images, 1, "the replay started no second copy")

	calls := srv.Calls(control.CallFilter{Operation: "CopyImage"})
	require.Len(t, calls, 2)
	assert.False(t, calls[0].Replay)
	assert.True(t, calls[1].Replay)
	assert.Equal(t, "wf-1/ami-0a1b2c3d4e5f60001/eu-west-2", calls[1].ClientToken)
	assert.Equal(t, "eu-west-2", calls[0].Region)
	assert.Equal(t, "ami-0a1b2c3d4e5f60001", calls[0].Params["SourceImageId"])
	assert.Equal(t, *first.ImageId, calls[0].IDs[0])
}

func TestEncryptedCopyNeedsKMSKeyInTargetRegion(t *testing.T) {
	_, c, _ := startSim(t, simOpts{})
	dst := c.ec2("eu-west-2")
	base := ec2.CopyImageInput{SourceRegion: aws.String("eu-west-1"), SourceImageId: aws.String("ami-0a1b2c3d4e5f60001"), Encrypted: aws.Bool(true)}

	in := base
	in.Name, in.KmsKeyId = aws.String("enc-bad"), aws.String("arn:aws:kms:eu-west-1:000000000000:key/1f0c3a52-7d3e-4a59-9c1e-0a1b2c3d4e01")
	_, err := dst.CopyImage(ctx, &in)
	assert.Equal(t, "InvalidParameterValue", apiCode(err), "a key of the source region is not usable in eu-west-2")

	in = base
	in.Name, in.KmsKeyId = aws.String("enc-ok"), aws.String("alias/shop")
	out, err := dst.CopyImage(ctx, &in)
	require.NoError(t, err)
	d, err := dst.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{*out.ImageId}})
	require.NoError(t, err)
	assert.True(t, *d.Images[0].BlockDeviceMappings[0].Ebs.Encrypted)
	assert.Equal(t, "alias/shop", *d.Images[0].BlockDeviceMappings[0].Ebs.KmsKeyId)

	in = base
	in.Name = aws.String("enc-default")
	_, err = dst.CopyImage(ctx, &in)
	require.NoError(t, err, "alias/aws/ebs is always there")
}

func TestLaunchAndSnapshotPermissions(t *testing.T) {
	_, c, _ := startSim(t, simOpts{})
	e := c.ec2("eu-west-1")
	img := "ami-0a1b2c3d4e5f60001"
	_, err := e.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(img),
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{
			{UserId: aws.String("111122223333")},
			{OrganizationArn: aws.String("arn:aws:organizations::000000000000:organization/o-abc123")},
		}}})
	require.NoError(t, err)
	attr, err := e.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(img), Attribute: types.ImageAttributeNameLaunchPermission})
	require.NoError(t, err)
	require.Len(t, attr.LaunchPermissions, 2)
	assert.Equal(t, "111122223333", *attr.LaunchPermissions[0].UserId)

	_, err = e.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{ImageId: aws.String(img),
		LaunchPermission: &types.LaunchPermissionModifications{Remove: []types.LaunchPermission{{UserId: aws.String("111122223333")}}}})
	require.NoError(t, err)
	attr, err = e.DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{ImageId: aws.String(img), Attribute: types.ImageAttributeNameLaunchPermission})
	require.NoError(t, err)
	assert.Len(t, attr.LaunchPermissions, 1)

	d, err := e.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{img}})
	require.NoError(t, err)
	snap := *d.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId
	_, err = e.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{SnapshotId: aws.String(snap),
		Attribute: types.SnapshotAttributeNameCreateVolumePermission, OperationType: types.OperationTypeAdd, UserIds: []string{"111122223333"}})
	require.NoError(t, err)
	sa, err := e.DescribeSnapshotAttribute(ctx, &ec2.DescribeSnapshotAttributeInput{SnapshotId: aws.String(snap), Attribute: types.SnapshotAttributeNameCreateVolumePermission})
	require.NoError(t, err)
	require.Len(t, sa.CreateVolumePermissions, 1)
	assert.Equal(t, "111122223333", *sa.CreateVolumePermissions[0].UserId)

	// A snapshot of a registered image cannot go; after deregistering it can.
	_, err = e.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snap)})
	assert.Equal(t, "InvalidSnapshot.InUse", apiCode(err))
	_, err = e.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(img)})
	require.NoError(t, err)
	_, err = e.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snap)})
	require.NoError(t, err)
	_, err = e.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}})
	assert.Equal(t, "InvalidSnapshot.NotFound", apiCode(err))
}

func TestRunInstancesFromCopiedImage(t *testing.T) {
	_, c, _ := startSim(t, simOpts{})
	e := c.ec2("eu-west-1")
	run, err := e.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: aws.String("ami-0a1b2c3d4e5f60002"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("w1")}}}}})
	require.NoError(t, err)
	id := *run.Instances[0].InstanceId
	assert.Equal(t, types.InstanceStateNamePending, run.Instances[0].State.Name)
	eventually(t, 5*time.Second, func() bool {
		d, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		return err == nil && d.Reservations[0].Instances[0].State.Name == types.InstanceStateNameRunning
	}, "instance running")
	img, err := e.CreateImage(ctx, &ec2.CreateImageInput{InstanceId: aws.String(id), Name: aws.String("from-w1"), NoReboot: aws.Bool(true)})
	require.NoError(t, err)
	_, err = e.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{*img.ImageId}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	require.NoError(t, err)
	tags, err := e.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("resource-id"), Values: []string{*img.ImageId}}}})
	require.NoError(t, err)
	require.Len(t, tags.Tags, 1)
	_, err = e.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}})
	require.NoError(t, err)
	_, err = e.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	assert.Equal(t, "InvalidInstanceID.NotFound", apiCode(err))
}

func TestEC2ThrottlingWithLimits(t *testing.T) {
	_, _, c := startSim(t, simOpts{limits: true})
	e := c.ec2("eu-west-1")
	var code string
	for i := 0; i < 60 && code == ""; i++ {
		_, err := e.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"ami-0a1b2c3d4e5f60001"}, Tags: []types.Tag{{Key: aws.String("n"), Value: aws.String("v")}}})
		code = apiCode(err)
	}
	assert.Equal(t, "RequestLimitExceeded", code, "the mutating bucket holds 50")
	// Another region has its own bucket.
	_, err := c.ec2("eu-west-2").DescribeImages(ctx, &ec2.DescribeImagesInput{})
	require.NoError(t, err)
}

func TestFaultsOnEC2(t *testing.T) {
	reg := control.NewRegistry([]string{"eu-west-1"}, 1)
	srv, _, c := startSim(t, simOpts{faults: reg})
	e := c.ec2("eu-west-1")
	_, err := reg.Add(control.Fault{Target: "aws:ec2:CopyImage", Kind: control.KindThrottle, Rate: 1, Count: 1})
	require.NoError(t, err)
	in := &ec2.CopyImageInput{SourceRegion: aws.String("eu-west-1"), SourceImageId: aws.String("ami-0a1b2c3d4e5f60001"), Name: aws.String("copy-1")}
	_, err = e.CopyImage(ctx, in)
	assert.Equal(t, "RequestLimitExceeded", apiCode(err))
	_, err = e.CopyImage(ctx, in)
	require.NoError(t, err, "count 1 fault is used up")
	assert.Equal(t, "RequestLimitExceeded", srv.Calls(control.CallFilter{Operation: "CopyImage"})[0].Result)

	_, err = reg.Add(control.Fault{Target: "aws:*", Kind: control.KindError, Rate: 1, Count: 1})
	require.NoError(t, err)
	_, err = e.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	assert.Equal(t, "InternalError", apiCode(err))

	_, err = reg.Add(control.Fault{Target: "aws:ec2:DescribeRegions", Kind: control.KindLatency, LatencyMs: 150, Count: 1})
	require.NoError(t, err)
	start := time.Now()
	_, err = e.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
}

func tagValue(tags []types.Tag, k string) string {
	for _, t := range tags {
		if *t.Key == k {
			return *t.Value
		}
	}
	return ""
}
