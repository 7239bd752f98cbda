// The AMI share's plan (pure, so the plan shown and the one executed are the same function
// of the same inputs), its hash, and the copy tokens and texts it is built from.

package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ferryhq/ferry/activities"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// PlanAMIShare is the dry run: it resolves the images, checks their state, the regions and
// the keys (read-only, on a worker) and returns every step with the plan hash.
func PlanAMIShare(ctx workflow.Context, in PlanAMIShareInput) (Plan, error) {
	obs, err := resolveAMIs(ctx, in.Spec, nil)
	if err != nil {
		return Plan{}, err
	}
	return ComputeAMISharePlan(in.Spec, obs).Plan, nil
}

// AMIPair is one (source image, target region) copy of a plan. Pairs of images still to be
// created from instances carry the instance and no image id yet.
type AMIPair struct {
	SourceImageID    string
	SourceInstanceID string
	Region           string
	Step             int // index into Plan.Steps
}

// AMISharePlan is a computed plan: the pairs the workflow copies and the Plan shown.
type AMISharePlan struct {
	Pairs []AMIPair
	// CreateSteps[i] is the step of CreateFromInstances[i].
	CreateSteps []int
	ApproveStep int // -1 without approval
	ShareStep   int // -1 when sharing happens within each pair's step
	Plan        Plan
}

// ComputeAMISharePlan computes the steps from the spec and what preflight read. It is
// pure, so `ferry plan` and the run compute the same plan and hash.
func ComputeAMISharePlan(spec AMIShareSpec, obs activities.ResolveAMIsOutput) AMISharePlan {
	p := AMISharePlan{ApproveStep: -1, ShareStep: -1}
	hold := spec.ApproveBeforeSharing && spec.Sharing()
	var steps []PlannedStep
	var lines []string
	for _, im := range obs.Images {
		enc := "unencrypted"
		if im.Encrypted {
			enc = "encrypted (" + im.KMSKeyID + ")"
		}
		lines = append(lines, fmt.Sprintf("image %s %q in %s: %s, %d GiB, %s, snapshots %s, tags %s",
			im.ID, im.Name, spec.SourceRegion, im.State, im.SizeGiB, enc, strings.Join(im.SnapshotIDs, ","), tagText(im.Tags)))
	}
	for _, in := range obs.Instances {
		lines = append(lines, fmt.Sprintf("instance %s %q in %s: %s", in.ID, in.Name, spec.SourceRegion, in.State))
	}
	lines = append(lines, "enabled regions: "+strings.Join(obs.EnabledRegions, ", "))
	for _, r := range spec.TargetRegions {
		if k := spec.KMSKeys[r]; k != "" {
			lines = append(lines, fmt.Sprintf("copies in %s are encrypted with KMS key %s", r, k))
		}
	}
	for _, id := range spec.CreateFromInstances {
		reboot := "without a reboot"
		if spec.Reboot {
			reboot = "with a reboot"
		}
		p.CreateSteps = append(p.CreateSteps, len(steps))
		steps = append(steps, PlannedStep{Name: "create image from " + id,
			Description: fmt.Sprintf("CreateImage of %s in %s %s, wait until available", id, spec.SourceRegion, reboot)})
	}
	share := shareText(spec)
	pairStep := func(label, region string, im *activities.SourceImage) {
		var d strings.Builder
		fmt.Fprintf(&d, "CopyImage of %s from %s to %s", label, spec.SourceRegion, region)
		if k := spec.KMSKeys[region]; k != "" {
			fmt.Fprintf(&d, " encrypted with %s", k)
		}
		d.WriteString(" (client token per pair), wait until available, tag")
		if spec.CopyTags && im != nil {
			fmt.Fprintf(&d, " (%d source tag(s)", len(copyableTags(im.Tags)))
		} else {
			d.WriteString(" (no source tags")
		}
		fmt.Fprintf(&d, ", %d added, ferry tags)", len(spec.AddTags))
		if share != "" && !hold {
			d.WriteString(", share with " + share)
		}
		steps = append(steps, PlannedStep{Name: "copy " + label + " to " + region, Description: d.String()})
	}
	for i := range obs.Images {
		im := &obs.Images[i]
		for _, r := range spec.TargetRegions {
			p.Pairs = append(p.Pairs, AMIPair{SourceImageID: im.ID, Region: r, Step: len(steps)})
			pairStep(fmt.Sprintf("%s (%s)", im.ID, im.Name), r, im)
		}
	}
	for _, id := range spec.CreateFromInstances {
		for _, r := range spec.TargetRegions {
			p.Pairs = append(p.Pairs, AMIPair{SourceInstanceID: id, Region: r, Step: len(steps)})
			pairStep("image of "+id, r, nil)
		}
	}
	// Steps keep the pair labels short: a pair's name is "copy ami-... to region".
	for i := range p.Pairs {
		if p.Pairs[i].SourceImageID != "" {
			steps[p.Pairs[i].Step].Name = "copy " + p.Pairs[i].SourceImageID + " to " + p.Pairs[i].Region
		}
	}
	if hold {
		p.ApproveStep = len(steps)
		steps = append(steps, PlannedStep{Name: amiApproveStep, NeedsApproval: true,
			Description: "wait for approval after every copy is available and before sharing"})
		p.ShareStep = len(steps)
		steps = append(steps, PlannedStep{Name: amiShareStep,
			Description: "share every available copy with " + share})
	}
	lines = append(lines, fmt.Sprintf("%d pair(s), at most %d copies in flight", len(p.Pairs), max(1, spec.MaxParallel)))
	lines = append(lines, "rollback: deregister the copies this migration made and delete their snapshots")
	p.Plan = Plan{
		ID:           AMIShareWorkflowID(spec.SourceRegion, AMISelection(spec)),
		Kind:         KindAMIShare,
		Steps:        steps,
		Observations: lines,
		Hash:         AMISharePlanHash(spec, obs),
		Resources:    amiResources(spec, obs),
	}
	return p
}

// AMISharePlanHash hashes (PlanHash) the spec and the images read. The poll interval is a test knob, not part of the plan.
func AMISharePlanHash(spec AMIShareSpec, obs activities.ResolveAMIsOutput) string {
	spec, images, instances, enabled := amiPlanDoc(spec, obs)
	return PlanHash(amiPlanHashVersion, struct {
		Spec      AMIShareSpec
		Images    any
		Instances []string
		Enabled   []bool
	}{spec, images, instances, enabled})
}

// amiPlanHashV1 is the v1 hash of the same plan (see planhash_v1.go).
func amiPlanHashV1(spec AMIShareSpec, obs activities.ResolveAMIsOutput) string {
	spec, images, instances, enabled := amiPlanDoc(spec, obs)
	return amiSharePlanHashV1(spec, images, instances, enabled)
}

func amiPlanDoc(spec AMIShareSpec, obs activities.ResolveAMIsOutput) (AMIShareSpec, any, []string, []bool) {
	spec.PollInterval = 0
	type canonImage struct {
		ID, Name, State, KMSKeyID string
		Encrypted                 bool
		SnapshotIDs               []string
		Tags                      map[string]string // encoding/json sorts map keys
	}
	images := make([]canonImage, len(obs.Images))
	for i, im := range obs.Images {
		images[i] = canonImage{im.ID, im.Name, im.State, im.KMSKeyID, im.Encrypted, slices.Sorted(slices.Values(im.SnapshotIDs)), im.Tags}
	}
	var instances []string
	for _, in := range obs.Instances {
		instances = append(instances, in.ID)
	}
	enabled := make([]bool, len(spec.TargetRegions))
	for i, r := range spec.TargetRegions {
		enabled[i] = slices.Contains(obs.EnabledRegions, r)
	}
	return spec, images, instances, enabled
}

// AMICopyToken is the CopyImage client token of one pair: a hash of the workflow id, the
// first run id and the pair (64 hex characters, EC2's limit). Every attempt and replay of
// one execution sends the same token; a new execution of the same id (after a rollback)
// gets a new one, so EC2 does not answer it with a copy that was deregistered.
func AMICopyToken(workflowID, firstRunID, sourceImageID, region string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{amiTokenVersion, workflowID, firstRunID, sourceImageID, region}, "\x00")))
	return hex.EncodeToString(sum[:])
}

func shareText(spec AMIShareSpec) string {
	var parts []string
	if n := len(spec.ShareWithAccounts); n > 0 {
		parts = append(parts, fmt.Sprintf("account(s) %s (launch permission and createVolumePermission on the snapshots)", strings.Join(spec.ShareWithAccounts, ", ")))
	}
	if n := len(spec.ShareWithOrganizations); n > 0 {
		parts = append(parts, "organization(s) "+strings.Join(spec.ShareWithOrganizations, ", "))
	}
	if n := len(spec.ShareWithOrganizationalUnits); n > 0 {
		parts = append(parts, "OU(s) "+strings.Join(spec.ShareWithOrganizationalUnits, ", "))
	}
	return strings.Join(parts, "; ")
}

func tagText(m map[string]string) string {
	if len(m) == 0 {
		return "none"
	}
	kv := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kv = append(kv, k+"="+m[k])
	}
	return strings.Join(kv, ",")
}

// copyableTags drops the keys a copy cannot or must not take over: aws:* is reserved, and
// ferry:* describes the source's own origin (the copy gets its own).
func copyableTags(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if !strings.HasPrefix(k, "aws:") && !strings.HasPrefix(k, "ferry:") {
			out[k] = v
		}
	}
	return out
}

// resolveAMIs runs the read-only preflight. instances overrides the spec's instances
// (an empty, non-nil slice resolves images only).
func resolveAMIs(ctx workflow.Context, spec AMIShareSpec, instances []string) (activities.ResolveAMIsOutput, error) {
	if instances == nil {
		instances = spec.CreateFromInstances
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: shortCallTimeout,
		// Missing images, regions and keys come back non-retryable; the rest (network,
		// throttling) is worth a few tries before telling a person.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 20 * time.Second, MaximumAttempts: 5},
		Summary:     fmt.Sprintf("preflight: images %s in %s", AMISelection(spec), spec.SourceRegion),
	})
	var out activities.ResolveAMIsOutput
	err := workflow.ExecuteActivity(actx, ec2a.ResolveAMIs, activities.ResolveAMIsInput{
		Region: spec.SourceRegion, ImageIDs: spec.ImageIDs, Tags: spec.ImageTags, InstanceIDs: instances,
		TargetRegions: spec.TargetRegions, KMSKeys: spec.KMSKeys, Sharing: spec.Sharing(),
	}).Get(ctx, &out)
	return out, err
}

// amiResources are the images (and instances to image) a share reads: two shares of one
// image would each copy it and each roll back the other's view of it.
func amiResources(spec AMIShareSpec, obs activities.ResolveAMIsOutput) []Resource {
	var rs []Resource
	for _, img := range obs.Images {
		rs = append(rs, ImageResource(spec.SourceRegion, img.ID))
	}
	for _, inst := range obs.Instances {
		rs = append(rs, ImageResource(spec.SourceRegion, inst.ID))
	}
	return rs
}
