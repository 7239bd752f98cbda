// What the AMI share does to copies once they exist: tags, launch and snapshot permissions,
// and removal by a rollback (only of images tagged as the migration's own).

package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"go.temporal.io/sdk/activity"
)

// TagAMIInput tags a copy and its snapshots.
type TagAMIInput struct {
	Region      string
	ImageID     string
	SnapshotIDs []string
	Tags        map[string]string
}

// TagAMIOutput says how many tags were written.
type TagAMIOutput struct {
	Tags int
}

// TagAMI writes tags onto the image and its snapshots. CreateTags overwrites, so repeating
// it is harmless. Keys under "aws:" are reserved by AWS and skipped.
func (e *EC2) TagAMI(ctx context.Context, in TagAMIInput) (TagAMIOutput, error) {
	if in.Region == "" || in.ImageID == "" {
		return TagAMIOutput{}, badInput("tag image: region and image are required; got %+v", in)
	}
	tags := map[string]string{}
	for k, v := range in.Tags {
		if !strings.HasPrefix(k, "aws:") {
			tags[k] = v
		}
	}
	if len(tags) == 0 {
		return TagAMIOutput{}, nil
	}
	res := append([]string{in.ImageID}, in.SnapshotIDs...)
	_, err := e.Client(in.Region).CreateTags(ctx, &ec2.CreateTagsInput{Resources: res, Tags: ec2Tags(tags)})
	if code := apiCode(err); code == "InvalidAMIID.NotFound" || code == "InvalidSnapshot.NotFound" {
		return TagAMIOutput{}, permanent(ErrImageNotFound, err, "tag image %s in %s: %v", in.ImageID, in.Region, err)
	} else if err != nil {
		return TagAMIOutput{}, ec2Err(fmt.Sprintf("tag image %s in %s", in.ImageID, in.Region), err)
	}
	return TagAMIOutput{Tags: len(tags)}, nil
}

// ShareAMIInput shares a copy.
type ShareAMIInput struct {
	Region              string
	ImageID             string
	SnapshotIDs         []string
	Accounts            []string
	Organizations       []string
	OrganizationalUnits []string
}

// ShareAMIOutput counts what was shared.
type ShareAMIOutput struct {
	LaunchPermissions int
	Snapshots         int
}

// ShareAMI adds launch permissions for the accounts, organizations and OUs, and
// createVolumePermission on the snapshots for the accounts (snapshots cannot be shared
// with organizations). Adding a permission that exists changes nothing, so it is
// idempotent.
func (e *EC2) ShareAMI(ctx context.Context, in ShareAMIInput) (ShareAMIOutput, error) {
	if in.Region == "" || in.ImageID == "" {
		return ShareAMIOutput{}, badInput("share image: region and image are required; got %+v", in)
	}
	var perms []types.LaunchPermission
	for _, a := range in.Accounts {
		perms = append(perms, types.LaunchPermission{UserId: aws.String(a)})
	}
	for _, o := range in.Organizations {
		perms = append(perms, types.LaunchPermission{OrganizationArn: aws.String(o)})
	}
	for _, o := range in.OrganizationalUnits {
		perms = append(perms, types.LaunchPermission{OrganizationalUnitArn: aws.String(o)})
	}
	if len(perms) == 0 {
		return ShareAMIOutput{}, nil
	}
	c := e.Client(in.Region)
	what := fmt.Sprintf("share image %s in %s", in.ImageID, in.Region)
	_, err := c.ModifyImageAttribute(ctx, &ec2.ModifyImageAttributeInput{
		ImageId: aws.String(in.ImageID), LaunchPermission: &types.LaunchPermissionModifications{Add: perms},
	})
	if err != nil {
		return ShareAMIOutput{}, shareErr(what, err)
	}
	out := ShareAMIOutput{LaunchPermissions: len(perms)}
	if len(in.Accounts) == 0 {
		return out, nil
	}
	for _, sn := range in.SnapshotIDs {
		// The flat form (OperationType + UserId.N) rather than CreateVolumePermission.Add:
		// EC2 takes both, and moto only the flat one, so one request works everywhere.
		_, err := c.ModifySnapshotAttribute(ctx, &ec2.ModifySnapshotAttributeInput{
			SnapshotId:    aws.String(sn),
			Attribute:     types.SnapshotAttributeNameCreateVolumePermission,
			OperationType: types.OperationTypeAdd,
			UserIds:       in.Accounts,
		})
		if err != nil {
			return out, shareErr(fmt.Sprintf("%s: snapshot %s", what, sn), err)
		}
		out.Snapshots++
	}
	return out, nil
}

func shareErr(what string, err error) error {
	switch code := apiCode(err); {
	case code == "InvalidAMIID.NotFound" || code == "InvalidSnapshot.NotFound":
		return permanent(ErrImageNotFound, err, "%s: %v", what, err)
	case code == "InvalidAMIAttributeItemValue" || code == "InvalidParameterValue" || code == "InvalidParameter" || code == "OperationNotPermitted":
		return permanent(ErrShareRejected, err, "%s: EC2 refused the permission (%v); check amiShare.shareWithAccounts, shareWithOrganizations and shareWithOrganizationalUnits", what, err)
	}
	return ec2Err(what, err)
}

// DeleteAMICopyInput removes one image this migration made.
type DeleteAMICopyInput struct {
	Region  string
	ImageID string
	// SnapshotIDs known from earlier (the image may already be deregistered, and then
	// DescribeImages no longer tells its snapshots).
	SnapshotIDs []string
	// MigrationID guards against deleting an image another migration tagged as its own.
	MigrationID string
	// RunChain, when set, also guards against deleting an image another run of the same
	// migration made (see TagRun).
	RunChain string
}

// DeleteAMICopyOutput says what was removed.
type DeleteAMICopyOutput struct {
	Deregistered     bool
	DeletedSnapshots []string
}

// DeleteAMICopy deregisters an image and deletes its snapshots. Anything already gone
// counts as done, so a rollback can be repeated.
func (e *EC2) DeleteAMICopy(ctx context.Context, in DeleteAMICopyInput) (DeleteAMICopyOutput, error) {
	if in.Region == "" || in.ImageID == "" {
		return DeleteAMICopyOutput{}, badInput("delete image: region and image are required; got %+v", in)
	}
	c := e.Client(in.Region)
	what := fmt.Sprintf("delete image %s in %s", in.ImageID, in.Region)
	snaps := slices.Clone(in.SnapshotIDs)
	out := DeleteAMICopyOutput{}
	d, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{in.ImageID}})
	gone := apiCode(err) == "InvalidAMIID.NotFound"
	if err != nil && !gone {
		return out, ec2Err(what+": describe", err)
	}
	if err == nil && len(d.Images) > 0 && d.Images[0].State != types.ImageStateDeregistered {
		im := sourceImage(d.Images[0])
		if m, ok := im.Tags[TagMigration]; ok && in.MigrationID != "" && m != in.MigrationID {
			return out, permanent(ErrNotOurImage, nil, "%s: the image is tagged %s=%s, not this migration (%s); refusing to delete it", what, TagMigration, m, in.MigrationID)
		}
		if r, ok := im.Tags[TagRun]; ok && in.RunChain != "" && r != in.RunChain {
			return out, permanent(ErrNotOurImage, nil, "%s: an earlier run of this migration made the image (%s=%s, not %s); refusing to delete it", what, TagRun, r, in.RunChain)
		}
		for _, s := range im.SnapshotIDs {
			if !slices.Contains(snaps, s) {
				snaps = append(snaps, s)
			}
		}
		// The snapshot ids are known now; heartbeating them lets a retry after a crash
		// between deregister and delete still find them.
		recordHeartbeat(ctx, snaps)
		_, err := c.DeregisterImage(ctx, &ec2.DeregisterImageInput{ImageId: aws.String(in.ImageID)})
		if err != nil && apiCode(err) != "InvalidAMIID.NotFound" && apiCode(err) != "InvalidAMIID.Unavailable" {
			return out, ec2Err(what+": deregister", err)
		}
		out.Deregistered = err == nil
	} else if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		var prev []string
		if activity.GetHeartbeatDetails(ctx, &prev) == nil {
			for _, s := range prev {
				if !slices.Contains(snaps, s) {
					snaps = append(snaps, s)
				}
			}
		}
	}
	for _, s := range snaps {
		_, err := c.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(s)})
		switch code := apiCode(err); {
		case err == nil:
			out.DeletedSnapshots = append(out.DeletedSnapshots, s)
		case code == "InvalidSnapshot.NotFound":
		case code == "InvalidSnapshot.InUse":
			// The deregistration has not reached the snapshot yet (or another image uses
			// it); retrying later is the only way on.
			return out, fmt.Errorf("%s: snapshot %s still in use: %w", what, s, err)
		default:
			return out, ec2Err(fmt.Sprintf("%s: delete snapshot %s", what, s), err)
		}
	}
	return out, nil
}
