package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// EC2 copies AMIs between regions and shares them. Client returns the EC2 client of a
// region (the worker builds one per region from one config, so only the region differs).
//
// Exactly-once copies rest on two mechanisms, because neither is enough alone: CopyImage
// carries a ClientToken derived from the migration and the (image, region) pair, so EC2
// answers a resent request with the first copy; and every copy is tagged with the source
// image and the migration, and CopyAMI looks for such a copy before calling CopyImage, so a
// retry finds its copy even on endpoints that ignore the token (moto) or after the token's
// memory has expired.
type EC2 struct {
	Client func(region string) *ec2.Client
}

// Error types of the EC2 activities. Non-retryable unless noted.
const (
	ErrImageNotFound     = "ImageNotFound"
	ErrImageNotAvailable = "ImageNotAvailable"
	ErrNoImagesSelected  = "NoImagesSelected"
	ErrInstanceNotFound  = "InstanceNotFound"
	ErrRegionNotEnabled  = "RegionNotEnabled"
	ErrKMSKeyRequired    = "KMSKeyRequired"
	ErrKMSKeyInvalid     = "KMSKeyInvalid"
	ErrCopyFailed        = "CopyFailed"
	ErrImageNameInUse    = "ImageNameInUse"
	ErrNotOurImage       = "NotOurImage"
	ErrShareRejected     = "ShareRejected"
	// ErrCopyLimit is retryable: EC2's concurrent-copy quota (ResourceLimitExceeded) frees
	// up as other copies finish, so the activity's RetryPolicy backoff is the right answer.
	ErrCopyLimit = "CopyLimit"
)

// Tags ferry puts on everything it creates. They let a retried activity find what an
// earlier attempt started, and let a person see where a copy came from.
const (
	TagSourceImage    = "ferry:source-image"
	TagSourceRegion   = "ferry:source-region"
	TagSourceInstance = "ferry:source-instance"
	TagMigration      = "ferry:migration"
	// TagRun names the run chain (the first run id) that made an image: ferry adopts and
	// deletes only what its own run chain made, never an earlier run's images of the same
	// migration id (which may be in production use).
	TagRun = "ferry:run"
)

// CreateAMIInput creates an image from an instance.
type CreateAMIInput struct {
	Region      string
	InstanceID  string
	Name        string
	Reboot      bool
	MigrationID string
	// RunChain is the run chain the image is made by (see TagRun).
	RunChain string
}

// CreateAMIOutput names the image created (or found from an earlier attempt).
type CreateAMIOutput struct {
	ImageID string
	Adopted bool
}

// CreateAMI images an instance (without a reboot unless asked). CreateImage has no client
// token, so the image is tagged in the same call and an earlier attempt's image is looked
// up by those tags first.
func (e *EC2) CreateAMI(ctx context.Context, in CreateAMIInput) (CreateAMIOutput, error) {
	if in.Region == "" || in.InstanceID == "" || in.Name == "" || in.MigrationID == "" {
		return CreateAMIOutput{}, badInput("create image: region, instance, name and migration are required; got %+v", in)
	}
	c := e.Client(in.Region)
	where := fmt.Sprintf("image of instance %s in %s", in.InstanceID, in.Region)
	// Only this run chain's image is adopted: an image an earlier run made of the same
	// instance may be weeks old, and the migration must copy the instance as it is now.
	if id, _, err := findTagged(ctx, c, map[string]string{TagMigration: in.MigrationID, TagSourceInstance: in.InstanceID}, in.RunChain); err != nil {
		return CreateAMIOutput{}, ec2Err("look up "+where, err)
	} else if id != "" {
		activity.GetLogger(ctx).Info("found the image an earlier attempt created", "instance", in.InstanceID, "image", id)
		return CreateAMIOutput{ImageID: id, Adopted: true}, nil
	}
	out, err := c.CreateImage(ctx, &ec2.CreateImageInput{
		InstanceId: aws.String(in.InstanceID),
		Name:       aws.String(in.Name),
		// NoReboot keeps the instance serving; the file systems are crash-consistent, which
		// is why the spec offers reboot for those who need more.
		NoReboot:    aws.Bool(!in.Reboot),
		Description: aws.String(fmt.Sprintf("created by ferry migration %s from %s", in.MigrationID, in.InstanceID)),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: ec2Tags(runTags(in.RunChain, map[string]string{
			TagMigration: in.MigrationID, TagSourceInstance: in.InstanceID,
		}))}},
	})
	switch code := apiCode(err); {
	case err == nil:
		return CreateAMIOutput{ImageID: aws.ToString(out.ImageId)}, nil
	case code == "InvalidInstanceID.NotFound" || code == "InvalidInstanceID.Malformed":
		return CreateAMIOutput{}, permanent(ErrInstanceNotFound, err, "create %s: instance not found; fix amiShare.createFromInstances", where)
	case code == "IncorrectInstanceState":
		return CreateAMIOutput{}, permanent(ErrImageNotAvailable, err, "create %s: the instance cannot be imaged in its state: %v", where, err)
	case code == "InvalidAMIName.Duplicate":
		return CreateAMIOutput{}, permanent(ErrImageNameInUse, err, "create %s: an image named %q already exists; deregister it or rename it", where, in.Name)
	default:
		return CreateAMIOutput{}, ec2Err("create "+where, err)
	}
}

// CopyAMIInput copies one image into one region.
type CopyAMIInput struct {
	SourceRegion  string
	SourceImageID string
	Region        string
	Name          string
	Description   string
	// KMSKeyID, when set, encrypts the copy with this key of the target region.
	KMSKeyID string
	// ClientToken makes CopyImage idempotent (at most 64 ASCII characters).
	ClientToken string
	MigrationID string
	// RunChain is the run chain the copy is made by (see TagRun).
	RunChain string
}

// CopyAMIOutput names the copy.
type CopyAMIOutput struct {
	ImageID string
	// Adopted is true when the copy was found (started by an earlier attempt of this run
	// chain) rather than started now.
	Adopted bool
	// NotOurs is true when an earlier run of the same migration made the copy: it is
	// reported and may be used read-only, but this run neither changes nor deletes it.
	NotOurs bool
	// OwnerRun is the run chain that made a NotOurs copy ("" when it predates run tags).
	OwnerRun string
}

// CopyAMI starts a copy unless this migration already started one: it looks for a copy
// tagged with the source image and the migration (pending or available) first, then calls
// CopyImage with the client token and the same tags.
func (e *EC2) CopyAMI(ctx context.Context, in CopyAMIInput) (CopyAMIOutput, error) {
	if in.SourceRegion == "" || in.SourceImageID == "" || in.Region == "" || in.Name == "" || in.MigrationID == "" {
		return CopyAMIOutput{}, badInput("copy image: source region, source image, region, name and migration are required; got %+v", in)
	}
	if len(in.ClientToken) > 64 {
		return CopyAMIOutput{}, badInput("copy image %s to %s: client token is %d characters; EC2 takes at most 64", in.SourceImageID, in.Region, len(in.ClientToken))
	}
	c := e.Client(in.Region)
	what := fmt.Sprintf("copy image %s from %s to %s", in.SourceImageID, in.SourceRegion, in.Region)
	id, other, err := findTagged(ctx, c, map[string]string{TagMigration: in.MigrationID, TagSourceImage: in.SourceImageID}, in.RunChain)
	if err != nil {
		return CopyAMIOutput{}, ec2Err(what+": look up an earlier copy", err)
	}
	if id != "" {
		activity.GetLogger(ctx).Info("found the copy an earlier attempt started", "source", in.SourceImageID, "region", in.Region, "image", id)
		return CopyAMIOutput{ImageID: id, Adopted: true}, nil
	}
	if other.ID != "" {
		// An earlier run's copy (the same image name could not be copied again anyway):
		// reuse it read-only rather than make a second, and never count it as ours.
		activity.GetLogger(ctx).Info("an earlier run made this copy; reusing it read-only", "source", in.SourceImageID, "region", in.Region, "image", other.ID, "run", other.Run)
		return CopyAMIOutput{ImageID: other.ID, NotOurs: true, OwnerRun: other.Run}, nil
	}
	req := &ec2.CopyImageInput{
		SourceRegion:  aws.String(in.SourceRegion),
		SourceImageId: aws.String(in.SourceImageID),
		Name:          aws.String(in.Name),
		ClientToken:   aws.String(in.ClientToken),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: ec2Tags(runTags(in.RunChain, map[string]string{
			TagMigration: in.MigrationID, TagSourceImage: in.SourceImageID, TagSourceRegion: in.SourceRegion,
		}))}},
	}
	if in.Description != "" {
		req.Description = aws.String(in.Description)
	}
	if in.KMSKeyID != "" {
		req.Encrypted, req.KmsKeyId = aws.Bool(true), aws.String(in.KMSKeyID)
	}
	out, err := c.CopyImage(ctx, req)
	switch code := apiCode(err); {
	case err == nil:
		return CopyAMIOutput{ImageID: aws.ToString(out.ImageId)}, nil
	case code == "InvalidAMIID.NotFound" || code == "InvalidAMIID.Malformed":
		return CopyAMIOutput{}, permanent(ErrImageNotFound, err, "%s: the source image is gone; check amiShare.imageIds", what)
	case code == "IncorrectState":
		return CopyAMIOutput{}, permanent(ErrImageNotAvailable, err, "%s: the source image is not available: %v", what, err)
	case code == "InvalidAMIName.Duplicate":
		return CopyAMIOutput{}, permanent(ErrImageNameInUse, err, "%s: an image named %q already exists in %s and was not made by this migration; deregister or rename it", what, in.Name, in.Region)
	case code == "InvalidParameterValue" && strings.Contains(strings.ToLower(err.Error()), "kms"),
		code == "KMSKeyNotAccessibleFault", code == "InvalidKMSKey.InvalidState", code == "NotFoundException":
		return CopyAMIOutput{}, permanent(ErrKMSKeyInvalid, err, "%s: KMS key %q is not usable in %s; fix amiShare.kmsKeys.%s: %v", what, in.KMSKeyID, in.Region, in.Region, err)
	case code == "IdempotentParameterMismatch":
		return CopyAMIOutput{}, permanent(ErrBadInput, err, "%s: client token %s was used for another copy: %v", what, in.ClientToken, err)
	case code == "ResourceLimitExceeded":
		return CopyAMIOutput{}, temporal.NewApplicationErrorWithCause(fmt.Sprintf("%s: concurrent copy quota reached (%v); retrying with backoff", what, err), ErrCopyLimit, err)
	default:
		return CopyAMIOutput{}, ec2Err(what, err)
	}
}

// taggedImage is an image found by its tags, with the run chain that made it.
type taggedImage struct{ ID, Run string }

// findTagged looks for own pending or available images carrying all tags and returns the
// one run made (the image a retry of this run chain should adopt) and, failing that, one
// another run made (or one older than run tags). More than one of a kind means copies
// raced before any was tagged-and-visible; the oldest is returned so every attempt picks
// the same one.
func findTagged(ctx context.Context, c *ec2.Client, tags map[string]string, run string) (ours string, other taggedImage, err error) {
	filters := []types.Filter{{Name: aws.String("state"), Values: []string{"pending", "available"}}}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		filters = append(filters, types.Filter{Name: aws.String("tag:" + k), Values: []string{tags[k]}})
	}
	out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: filters})
	if err != nil {
		return "", other, err
	}
	oursDate, otherDate := "", ""
	for _, im := range out.Images {
		// Endpoints that ignore a filter must not make us adopt a stranger's image.
		if !hasTags(im.Tags, tags) || (im.State != types.ImageStatePending && im.State != types.ImageStateAvailable) {
			continue
		}
		id, d := aws.ToString(im.ImageId), aws.ToString(im.CreationDate)
		imRun := tagValue(im.Tags, TagRun)
		older := func(bestID, bestDate string) bool {
			return bestID == "" || d < bestDate || (d == bestDate && id < bestID)
		}
		switch {
		case imRun == run: // with no run chain named, untagged images are this caller's
			if older(ours, oursDate) {
				ours, oursDate = id, d
			}
		case older(other.ID, otherDate):
			other, otherDate = taggedImage{ID: id, Run: imRun}, d
		}
	}
	return ours, other, nil
}

// runTags adds the run-chain tag to tags (when the caller names a run chain).
func runTags(run string, tags map[string]string) map[string]string {
	if run != "" {
		tags[TagRun] = run
	}
	return tags
}

func tagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func hasTags(have []types.Tag, want map[string]string) bool {
	n := 0
	for _, t := range have {
		if v, ok := want[aws.ToString(t.Key)]; ok && v == aws.ToString(t.Value) {
			n++
		}
	}
	return n == len(want)
}

// WaitAMIInput waits for an image to become available.
type WaitAMIInput struct {
	Region  string
	ImageID string
	// PollInterval caps the wait between DescribeImages calls; zero means 15s. The first
	// polls come sooner (500ms, doubling up to the cap), so a copy that finishes quickly is
	// seen quickly while an hour-long one costs one call per interval.
	PollInterval time.Duration
	// NotFoundGrace is how long an unknown image id counts as "not visible yet" (EC2's
	// describes are eventually consistent right after CopyImage); zero means 2m.
	NotFoundGrace time.Duration
}

// WaitAMIOutput is the image once available.
type WaitAMIOutput struct {
	ImageID     string
	State       string
	SnapshotIDs []string
	Encrypted   bool
	Polls       int
}

// WaitAMIHeartbeat is what WaitAMI heartbeats: a resumed attempt continues with the same
// image and counts its polls on, and the Temporal UI shows where the wait is.
type WaitAMIHeartbeat struct {
	ImageID string
	State   string
	Polls   int
}

// WaitAMI polls DescribeImages until the image is available, heartbeating every poll. A
// failed copy is non-retryable (a new attempt would watch the same failed image).
func (e *EC2) WaitAMI(ctx context.Context, in WaitAMIInput) (WaitAMIOutput, error) {
	if in.Region == "" || in.ImageID == "" {
		return WaitAMIOutput{}, badInput("wait image: region and image are required; got %+v", in)
	}
	ceiling := in.PollInterval
	if ceiling <= 0 {
		ceiling = 15 * time.Second
	}
	every := min(500*time.Millisecond, ceiling)
	grace := in.NotFoundGrace
	if grace <= 0 {
		grace = 2 * time.Minute
	}
	hb := WaitAMIHeartbeat{ImageID: in.ImageID}
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		var prev WaitAMIHeartbeat
		if err := activity.GetHeartbeatDetails(ctx, &prev); err == nil && prev.ImageID == in.ImageID {
			hb = prev
			activity.GetLogger(ctx).Info("resuming wait", "image", in.ImageID, "region", in.Region, "polls", prev.Polls, "state", prev.State)
		}
	}
	c := e.Client(in.Region)
	start := time.Now()
	for {
		hb.Polls++
		out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{in.ImageID}})
		switch code := apiCode(err); {
		case err == nil && len(out.Images) > 0:
			im := out.Images[0]
			hb.State = string(im.State)
			switch im.State {
			case types.ImageStateAvailable:
				si := sourceImage(im)
				return WaitAMIOutput{ImageID: in.ImageID, State: hb.State, SnapshotIDs: si.SnapshotIDs, Encrypted: si.Encrypted, Polls: hb.Polls}, nil
			case types.ImageStatePending:
			default:
				reason := ""
				if im.StateReason != nil {
					reason = ": " + aws.ToString(im.StateReason.Message)
				}
				return WaitAMIOutput{}, permanent(ErrCopyFailed, nil, "image %s in %s is %s%s; roll back or deregister it and run the migration again", in.ImageID, in.Region, im.State, reason)
			}
		case err == nil || code == "InvalidAMIID.NotFound":
			hb.State = "not visible yet"
			if time.Since(start) > grace {
				return WaitAMIOutput{}, permanent(ErrImageNotFound, err, "image %s in %s has not been visible for %s; it was deregistered or the copy never started", in.ImageID, in.Region, grace.Round(time.Second))
			}
		case isThrottle(err):
			hb.State = "throttled"
		default:
			return WaitAMIOutput{}, ec2Err(fmt.Sprintf("describe image %s in %s", in.ImageID, in.Region), err)
		}
		recordHeartbeat(ctx, hb)
		if err := sleepCtx(ctx, every); err != nil {
			return WaitAMIOutput{}, err
		}
		every = min(every*2, ceiling)
	}
}

// ec2Err classifies an EC2 error: throttling becomes the retryable Throttled type (the
// SDK's own retries are spent; the RetryPolicy backs off longer), missing permissions
// are non-retryable, the rest is wrapped and retried.
func ec2Err(what string, err error) error {
	if err == nil {
		return nil
	}
	if isThrottle(err) {
		return temporal.NewApplicationErrorWithCause(fmt.Sprintf("%s: throttled by EC2 (%v); retrying with backoff", what, err), ErrThrottled, err)
	}
	if apiCode(err) == "ResourceLimitExceeded" {
		return temporal.NewApplicationErrorWithCause(fmt.Sprintf("%s: %v; retrying with backoff", what, err), ErrCopyLimit, err)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return awsErr(what, err)
}

func ec2Tags(m map[string]string) []types.Tag {
	out := make([]types.Tag, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

func tagString(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}
