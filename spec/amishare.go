package spec

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

// Defaults and limits of an AMI share spec.
const (
	DefaultMaxParallelCopies = 10
	// MaxParallelCopies is EC2's quota of concurrent copies out of one source region; more
	// in flight would only earn ResourceLimitExceeded.
	MaxParallelCopies = 25
	maxTargetRegions  = 30
)

var (
	// regionRE matches AWS region names: eu-west-1, us-gov-west-1, ap-southeast-2,
	// cn-north-1, us-isob-east-1.
	regionRE = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$`)
	amiIDRE  = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
	instRE   = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	acctRE   = regexp.MustCompile(`^[0-9]{12}$`)
	orgRE    = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::[0-9]{12}:organization/o-[a-z0-9]{10,32}$`)
	ouRE     = regexp.MustCompile(`^arn:aws[a-z-]*:organizations::[0-9]{12}:ou/o-[a-z0-9]{10,32}/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$`)
	kmsIDRE  = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$`)
	aliasRE  = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]{1,250}$`)
	kmsARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:kms:([a-z0-9-]+):[0-9]{12}:(key/[a-zA-Z0-9-]+|alias/[a-zA-Z0-9/_-]+)$`)
)

// AMIShareInput builds a AMIShare workflow's input from a whole spec (see Input).
func AMIShareInput(m *ferryv1.MigrationSpec, initiator string) (workflows.AMIShareInput, error) {
	if m.GetAmiShare() == nil {
		return workflows.AMIShareInput{}, fieldErr("amiShare", "missing; the spec must describe a migration (amiShare)")
	}
	_, in, err := Input(m, initiator, "")
	if err != nil {
		return workflows.AMIShareInput{}, err
	}
	return in.(workflows.AMIShareInput), nil
}

// AMIShare validates an AMI share spec statically (no cloud calls) and applies defaults.
// The first problem found is returned as a *FieldError naming the field; whether images,
// regions and keys exist is the workflow's preflight's business.
func AMIShare(s *ferryv1.AmiShareSpec) (workflows.AMIShareSpec, error) {
	const p = "amiShare"
	out := workflows.AMIShareSpec{}
	if s == nil {
		return out, fieldErr(p, "missing")
	}

	src := strings.TrimSpace(s.GetSourceRegion())
	switch {
	case src == "":
		return out, fieldErr(p+".sourceRegion", "required: the region the images are in, e.g. eu-west-1")
	case !regionRE.MatchString(src):
		return out, fieldErr(p+".sourceRegion", "%q does not look like an AWS region (e.g. eu-west-1)", src)
	}
	out.SourceRegion = src

	ids, err := idList(p+".imageIds", s.GetImageIds(), amiIDRE, "an image id: ami- followed by 8 or 17 hex digits, e.g. ami-0a1b2c3d4e5f60001")
	if err != nil {
		return out, err
	}
	out.ImageIDs = ids
	if tags := s.GetImageTags(); len(tags) > 0 {
		if err := checkTags(p+".imageTags", tags, false); err != nil {
			return out, err
		}
		out.ImageTags = maps.Clone(tags)
	}
	insts, err := idList(p+".createFromInstances", s.GetCreateFromInstances(), instRE, "an instance id: i- followed by 8 or 17 hex digits")
	if err != nil {
		return out, err
	}
	out.CreateFromInstances = insts
	if len(out.ImageIDs)+len(out.ImageTags)+len(out.CreateFromInstances) == 0 {
		return out, fieldErr(p+".imageIds", "select at least one image: imageIds, imageTags (e.g. app: shop) or createFromInstances")
	}
	if s.GetReboot() && len(out.CreateFromInstances) == 0 {
		return out, fieldErr(p+".reboot", "only applies to createFromInstances, which is empty")
	}
	out.Reboot = s.GetReboot()

	targets := s.GetTargetRegions()
	if len(targets) == 0 {
		return out, fieldErr(p+".targetRegions", "required: at least one region to copy into, e.g. [eu-west-2]")
	}
	if len(targets) > maxTargetRegions {
		return out, fieldErr(p+".targetRegions", "%d regions; at most %d", len(targets), maxTargetRegions)
	}
	for i, r := range targets {
		f := p + ".targetRegions[" + strconv.Itoa(i) + "]"
		r = strings.TrimSpace(r)
		switch {
		case r == "":
			return out, fieldErr(f, "empty")
		case !regionRE.MatchString(r):
			return out, fieldErr(f, "%q does not look like an AWS region (e.g. eu-west-2)", r)
		case r == src:
			return out, fieldErr(f, "%s is the source region; copies go to other regions", r)
		case slices.Contains(out.TargetRegions, r):
			return out, fieldErr(f, "%s is listed twice", r)
		}
		out.TargetRegions = append(out.TargetRegions, r)
	}

	if keys := s.GetKmsKeys(); len(keys) > 0 {
		out.KMSKeys = map[string]string{}
		for _, r := range slices.Sorted(maps.Keys(keys)) {
			f := p + ".kmsKeys." + r
			k := strings.TrimSpace(keys[r])
			if !slices.Contains(out.TargetRegions, r) {
				return out, fieldErr(f, "%s is not a target region (targets: %s); keys are per target region", r, strings.Join(out.TargetRegions, ", "))
			}
			if k == "" {
				return out, fieldErr(f, "empty; give a key id, alias/name or key ARN in %s, or leave the region out", r)
			}
			if m := kmsARNRE.FindStringSubmatch(k); m != nil {
				if m[1] != r {
					return out, fieldErr(f, "the key ARN is in %s, but the copy is in %s; a KMS key encrypts only in its own region", m[1], r)
				}
			} else if !kmsIDRE.MatchString(k) && !aliasRE.MatchString(k) {
				return out, fieldErr(f, "%q is not a KMS key id (uuid), alias (alias/name) or key ARN", k)
			}
			out.KMSKeys[r] = k
		}
	}

	if out.ShareWithAccounts, err = idList(p+".shareWithAccounts", s.GetShareWithAccounts(), acctRE, "an AWS account id: 12 digits"); err != nil {
		return out, err
	}
	if out.ShareWithOrganizations, err = idList(p+".shareWithOrganizations", s.GetShareWithOrganizations(), orgRE,
		"an organization ARN such as arn:aws:organizations::123456789012:organization/o-exampleorgid"); err != nil {
		return out, err
	}
	if out.ShareWithOrganizationalUnits, err = idList(p+".shareWithOrganizationalUnits", s.GetShareWithOrganizationalUnits(), ouRE,
		"an OU ARN such as arn:aws:organizations::123456789012:ou/o-exampleorgid/ou-ab12-cd34ef56"); err != nil {
		return out, err
	}

	out.CopyTags = !s.GetSkipCopyTags()
	if tags := s.GetAddTags(); len(tags) > 0 {
		if err := checkTags(p+".addTags", tags, true); err != nil {
			return out, err
		}
		out.AddTags = maps.Clone(tags)
	}

	n := int(s.GetMaxParallelCopies())
	switch {
	case n == 0:
		n = DefaultMaxParallelCopies
	case n > MaxParallelCopies:
		return out, fieldErr(p+".maxParallelCopies", "%d is more than %d, EC2's limit of concurrent copies from one region", n, MaxParallelCopies)
	}
	out.MaxParallel = n

	if s.GetApproveBeforeSharing() && !out.Sharing() {
		return out, fieldErr(p+".approveBeforeSharing", "nothing is shared: add shareWithAccounts, shareWithOrganizations or shareWithOrganizationalUnits, or drop the approval")
	}
	out.ApproveBeforeSharing = s.GetApproveBeforeSharing()
	return out, nil
}

// idList trims, checks and de-duplicates a list of ids; order is kept.
func idList(field string, in []string, re *regexp.Regexp, what string) ([]string, error) {
	var out []string
	for i, v := range in {
		f := field + "[" + strconv.Itoa(i) + "]"
		v = strings.TrimSpace(v)
		switch {
		case v == "":
			return nil, fieldErr(f, "empty; expected %s", what)
		case !re.MatchString(v):
			return nil, fieldErr(f, "%q is not %s", v, what)
		case slices.Contains(out, v):
			return nil, fieldErr(f, "%s is listed twice", v)
		}
		out = append(out, v)
	}
	return out, nil
}

// checkTags applies EC2's tag rules (keys 1..128 characters, values up to 256). Tags
// ferry writes (addTags) may not use the reserved aws: prefix nor ferry's own ferry:
// prefix, which marks where a copy came from.
func checkTags(field string, tags map[string]string, writing bool) error {
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		f := field + "." + k
		switch {
		case strings.TrimSpace(k) == "":
			return fieldErr(field, "a tag key is empty")
		case len(k) > 128:
			return fieldErr(f, "tag key longer than 128 characters")
		case len(tags[k]) > 256:
			return fieldErr(f, "tag value longer than 256 characters")
		case writing && strings.HasPrefix(strings.ToLower(k), "aws:"):
			return fieldErr(f, "the aws: prefix is reserved by AWS")
		case writing && strings.HasPrefix(strings.ToLower(k), "ferry:"):
			return fieldErr(f, "the ferry: prefix is reserved for the tags ferry writes itself")
		}
	}
	return nil
}
