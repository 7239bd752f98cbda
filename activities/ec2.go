package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
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
)

// SourceImage is an image as preflight read it.
type SourceImage struct {
	ID          string
	Name        string
	Description string
	State       string
	OwnerID     string
	Encrypted   bool
	KMSKeyID    string
	SnapshotIDs []string
	SizeGiB     int32
	Tags        map[string]string
}

// SourceInstance is an instance an image will be created from.
type SourceInstance struct {
	ID    string
	State string
	Name  string
}

// ResolveAMIsInput selects the images of a share and what preflight checks.
type ResolveAMIsInput struct {
	Region      string
	ImageIDs    []string
	Tags        map[string]string
	InstanceIDs []string
	// TargetRegions must all be enabled for the account.
	TargetRegions []string
	// KMSKeys is the key per target region; an encrypted image needs one for every target
	// region when Sharing, because snapshots encrypted with the AWS-managed key cannot be
	// shared with other accounts.
	KMSKeys map[string]string
	Sharing bool
}

// ResolveAMIsOutput is the observed state a share starts from.
type ResolveAMIsOutput struct {
	// Images are sorted by id.
	Images    []SourceImage
	Instances []SourceInstance
	// EnabledRegions are the regions DescribeRegions lists for the account, sorted.
	EnabledRegions []string
}

// preflightProblem is one thing wrong; preflight collects them all so a person fixes the
// spec once instead of once per problem.
type preflightProblem struct {
	typ, msg string
}

// ResolveAMIs resolves the images by id and by tag, checks each is available, the
// instances exist, every target region is enabled and encrypted images have a key where
// they need one. It is read-only, so plans and every execution run it.
func (e *EC2) ResolveAMIs(ctx context.Context, in ResolveAMIsInput) (ResolveAMIsOutput, error) {
	if in.Region == "" {
		return ResolveAMIsOutput{}, badInput("resolve images: no source region")
	}
	if len(in.ImageIDs) == 0 && len(in.Tags) == 0 && len(in.InstanceIDs) == 0 {
		return ResolveAMIsOutput{}, badInput("resolve images: select images by id, by tag or by instance")
	}
	c := e.Client(in.Region)
	var problems []preflightProblem
	byID := map[string]SourceImage{}

	if len(in.ImageIDs) > 0 {
		out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: in.ImageIDs})
		switch {
		case apiCode(err) == "InvalidAMIID.NotFound" || apiCode(err) == "InvalidAMIID.Malformed":
			// EC2 names only the missing ids, and only in the message; describing one by
			// one names each for the person fixing the spec.
			for _, id := range in.ImageIDs {
				one, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
				if err != nil || len(one.Images) == 0 {
					if err != nil && apiCode(err) != "InvalidAMIID.NotFound" && apiCode(err) != "InvalidAMIID.Malformed" {
						return ResolveAMIsOutput{}, ec2Err(fmt.Sprintf("describe image %s in %s", id, in.Region), err)
					}
					problems = append(problems, preflightProblem{ErrImageNotFound,
						fmt.Sprintf("image %s not found in %s (check amiShare.imageIds and amiShare.sourceRegion)", id, in.Region)})
					continue
				}
				byID[id] = sourceImage(one.Images[0])
			}
		case err != nil:
			return ResolveAMIsOutput{}, ec2Err(fmt.Sprintf("describe images %s in %s", strings.Join(in.ImageIDs, ","), in.Region), err)
		default:
			for _, im := range out.Images {
				byID[aws.ToString(im.ImageId)] = sourceImage(im)
			}
			for _, id := range in.ImageIDs {
				if _, ok := byID[id]; !ok {
					problems = append(problems, preflightProblem{ErrImageNotFound,
						fmt.Sprintf("image %s not found in %s (deregistered?); fix amiShare.imageIds", id, in.Region)})
				}
			}
		}
	}
	if len(in.Tags) > 0 {
		filters := make([]types.Filter, 0, len(in.Tags))
		for _, k := range slices.Sorted(maps.Keys(in.Tags)) {
			filters = append(filters, types.Filter{Name: aws.String("tag:" + k), Values: []string{in.Tags[k]}})
		}
		// Owners self: a tag selection copies the account's own images, never a public
		// image that happens to carry the same tag.
		p := ec2.NewDescribeImagesPaginator(c, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: filters})
		n := 0
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				return ResolveAMIsOutput{}, ec2Err(fmt.Sprintf("describe images tagged %s in %s", tagString(in.Tags), in.Region), err)
			}
			for _, im := range out.Images {
				n++
				byID[aws.ToString(im.ImageId)] = sourceImage(im)
			}
		}
		if n == 0 {
			problems = append(problems, preflightProblem{ErrNoImagesSelected,
				fmt.Sprintf("no image owned by this account in %s has the tags %s; check amiShare.imageTags", in.Region, tagString(in.Tags))})
		}
	}

	out := ResolveAMIsOutput{}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		im := byID[id]
		out.Images = append(out.Images, im)
		if im.State != string(types.ImageStateAvailable) {
			problems = append(problems, preflightProblem{ErrImageNotAvailable,
				fmt.Sprintf("image %s (%s) in %s is %s, not available; wait until it is available or leave it out", im.ID, im.Name, in.Region, im.State)})
		}
		if im.Encrypted && in.Sharing {
			for _, r := range in.TargetRegions {
				if in.KMSKeys[r] == "" {
					problems = append(problems, preflightProblem{ErrKMSKeyRequired,
						fmt.Sprintf("image %s (%s) is encrypted and its copy in %s is shared with other accounts, which the AWS-managed EBS key does not allow; set amiShare.kmsKeys.%s to a customer-managed key in %s", im.ID, im.Name, r, r, r)})
				}
			}
		}
	}

	if len(in.InstanceIDs) > 0 {
		insts, p, err := e.describeInstances(ctx, c, in.Region, in.InstanceIDs)
		if err != nil {
			return ResolveAMIsOutput{}, err
		}
		out.Instances, problems = insts, append(problems, p...)
	}

	regions, err := c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	if err != nil {
		return ResolveAMIsOutput{}, ec2Err("describe regions", err)
	}
	for _, r := range regions.Regions {
		out.EnabledRegions = append(out.EnabledRegions, aws.ToString(r.RegionName))
	}
	sort.Strings(out.EnabledRegions)
	for _, r := range in.TargetRegions {
		if !slices.Contains(out.EnabledRegions, r) {
			problems = append(problems, preflightProblem{ErrRegionNotEnabled,
				fmt.Sprintf("target region %s is not enabled for this account (enabled: %s); enable it (opt-in regions) or fix amiShare.targetRegions", r, strings.Join(out.EnabledRegions, ", "))})
		}
	}

	if len(problems) > 0 {
		msgs := make([]string, len(problems))
		for i, p := range problems {
			msgs[i] = p.msg
		}
		return out, permanent(problems[0].typ, nil, "preflight: %s", strings.Join(msgs, "; "))
	}
	return out, nil
}

func (e *EC2) describeInstances(ctx context.Context, c *ec2.Client, region string, ids []string) ([]SourceInstance, []preflightProblem, error) {
	var insts []SourceInstance
	var problems []preflightProblem
	found := map[string]bool{}
	for _, id := range ids {
		// One by one, so a missing instance is named rather than failing the whole call.
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if code := apiCode(err); code == "InvalidInstanceID.NotFound" || code == "InvalidInstanceID.Malformed" {
			problems = append(problems, preflightProblem{ErrInstanceNotFound,
				fmt.Sprintf("instance %s not found in %s; fix amiShare.createFromInstances", id, region)})
			continue
		} else if err != nil {
			return nil, nil, ec2Err(fmt.Sprintf("describe instance %s in %s", id, region), err)
		}
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				si := SourceInstance{ID: aws.ToString(i.InstanceId)}
				if i.State != nil {
					si.State = string(i.State.Name)
				}
				for _, t := range i.Tags {
					if aws.ToString(t.Key) == "Name" {
						si.Name = aws.ToString(t.Value)
					}
				}
				found[si.ID] = true
				insts = append(insts, si)
				if si.State == string(types.InstanceStateNameTerminated) || si.State == string(types.InstanceStateNameShuttingDown) {
					problems = append(problems, preflightProblem{ErrInstanceNotFound,
						fmt.Sprintf("instance %s in %s is %s and cannot be imaged; fix amiShare.createFromInstances", si.ID, region, si.State)})
				}
			}
		}
		if !found[id] {
			problems = append(problems, preflightProblem{ErrInstanceNotFound,
				fmt.Sprintf("instance %s not found in %s; fix amiShare.createFromInstances", id, region)})
		}
	}
	return insts, problems, nil
}

func sourceImage(im types.Image) SourceImage {
	s := SourceImage{
		ID: aws.ToString(im.ImageId), Name: aws.ToString(im.Name), Description: aws.ToString(im.Description),
		State: string(im.State), OwnerID: aws.ToString(im.OwnerId), Tags: map[string]string{},
	}
	for _, b := range im.BlockDeviceMappings {
		if b.Ebs == nil {
			continue
		}
		if id := aws.ToString(b.Ebs.SnapshotId); id != "" {
			s.SnapshotIDs = append(s.SnapshotIDs, id)
		}
		s.SizeGiB += aws.ToInt32(b.Ebs.VolumeSize)
		if aws.ToBool(b.Ebs.Encrypted) {
			s.Encrypted = true
			if k := aws.ToString(b.Ebs.KmsKeyId); k != "" {
				s.KMSKeyID = k
			}
		}
	}
	for _, t := range im.Tags {
		s.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return s
}

// CreateAMIInput creates an image from an instance.
type CreateAMIInput struct {
	Region      string
	InstanceID  string
	Name        string
	Reboot      bool
	MigrationID string
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
	if id, err := findTagged(ctx, c, map[string]string{TagMigration: in.MigrationID, TagSourceInstance: in.InstanceID}); err != nil {
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
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: ec2Tags(map[string]string{
			TagMigration: in.MigrationID, TagSourceInstance: in.InstanceID,
		})}},
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
}

// CopyAMIOutput names the copy.
type CopyAMIOutput struct {
	ImageID string
	// Adopted is true when the copy was found (started by an earlier attempt) rather than
	// started now.
	Adopted bool
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
	id, err := findTagged(ctx, c, map[string]string{TagMigration: in.MigrationID, TagSourceImage: in.SourceImageID})
	if err != nil {
		return CopyAMIOutput{}, ec2Err(what+": look up an earlier copy", err)
	}
	if id != "" {
		activity.GetLogger(ctx).Info("found the copy an earlier attempt started", "source", in.SourceImageID, "region", in.Region, "image", id)
		return CopyAMIOutput{ImageID: id, Adopted: true}, nil
	}
	req := &ec2.CopyImageInput{
		SourceRegion:  aws.String(in.SourceRegion),
		SourceImageId: aws.String(in.SourceImageID),
		Name:          aws.String(in.Name),
		ClientToken:   aws.String(in.ClientToken),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeImage, Tags: ec2Tags(map[string]string{
			TagMigration: in.MigrationID, TagSourceImage: in.SourceImageID, TagSourceRegion: in.SourceRegion,
		})}},
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

// findTagged returns the id of an own pending or available image carrying all tags, or "".
// More than one means two copies raced before any was tagged-and-visible; the oldest is
// returned so every attempt picks the same one.
func findTagged(ctx context.Context, c *ec2.Client, tags map[string]string) (string, error) {
	filters := []types.Filter{{Name: aws.String("state"), Values: []string{"pending", "available"}}}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		filters = append(filters, types.Filter{Name: aws.String("tag:" + k), Values: []string{tags[k]}})
	}
	out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}, Filters: filters})
	if err != nil {
		return "", err
	}
	best, bestDate := "", ""
	for _, im := range out.Images {
		// Endpoints that ignore a filter must not make us adopt a stranger's image.
		if !hasTags(im.Tags, tags) || (im.State != types.ImageStatePending && im.State != types.ImageStateAvailable) {
			continue
		}
		d := aws.ToString(im.CreationDate)
		if best == "" || d < bestDate || (d == bestDate && aws.ToString(im.ImageId) < best) {
			best, bestDate = aws.ToString(im.ImageId), d
		}
	}
	return best, nil
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
