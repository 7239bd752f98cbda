// The AMI share's read-only preflight: which images and instances the selection names, in
// what state, and whether the target regions and keys can take copies.

package activities

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
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
