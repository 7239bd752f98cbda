package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// Error types of the AMI share's own failures.
const (
	// ErrAMIPartialFailure is the cause of a share where some pairs failed; the run then
	// undoes its copies or, with OnFailureLeave, ends ErrMigrationFailed with every pair's
	// outcome in the details.
	ErrAMIPartialFailure = "AMISharePartialFailure"
	// ErrAMIRollbackIncomplete is a rollback that could not remove every copy.
	ErrAMIRollbackIncomplete = "AMIRollbackIncomplete"
)

const (
	amiPlanHashVersion = "ferry/ami-share/plan/v2"
	amiTokenVersion    = "ferry/ami-copy/v1"
	amiShareStep       = "share copies"
	amiApproveStep     = "approve sharing"
	defaultAMIPoll     = 15 * time.Second
	// shortCallTimeout bounds the activities that make a few EC2 calls. EC2's throttling
	// comes back as a retryable error rather than being waited out inside the activity, so
	// a call never needs long; and the bound is how long a worker that died mid-call holds
	// its pair before another worker takes it over (it was minutes, which made a killed
	// worker cost a rehearsal two minutes).
	shortCallTimeout = 30 * time.Second
)

// ec2a is called through a nil pointer: the worker registers the real *activities.EC2.
var ec2a *activities.EC2

// AMIShare copies images from the source region to every target region, exactly once per
// (image, region) pair, with at most MaxParallel copies in flight; tags the copies, waits
// for an approval when asked and shares them. One failing pair does not stop the others.
// A rollback deregisters the copies this execution made and deletes their snapshots.
func AMIShare(ctx workflow.Context, in AMIShareInput) (AMIShareResult, error) {
	w := &amiShare{}
	if err := w.setup(ctx, in); err != nil {
		return AMIShareResult{Outcome: Outcome{State: StateFailed, Message: err.Error()}}, err
	}
	return w.run(ctx)
}

// PlanAMIShare is the dry run: it resolves the images, checks their state, the regions and
// the keys (read-only, on a worker) and returns every step with the plan hash.
func PlanAMIShare(ctx workflow.Context, in PlanAMIShareInput) (Plan, error) {
	obs, err := resolveAMIs(ctx, in.Spec, nil)
	if err != nil {
		return Plan{}, err
	}
	return ComputeAMISharePlan(in.Spec, obs).Plan, nil
}

// --- plan ----------------------------------------------------------------------------------

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

// --- run -----------------------------------------------------------------------------------

type amiShare struct {
	in    AMIShareInput
	spec  AMIShareSpec
	id    string
	runID string
	s     *Steering
	log   log.Logger
	plan  AMISharePlan

	sources map[string]activities.SourceImage
	pairs   []*amiPair
	// created lists every image this execution made, in order, recorded as soon as the
	// activity that made it returns: rollback removes exactly these.
	created     []createdImage
	rollingBack bool
	done        bool
	owner       owner
}

type amiPair struct {
	AMICopyProgress
	step        int
	snapshotIDs []string
}

// createdImage is one entry of the AMI share's change record (see amiUndoRecord).
type createdImage struct {
	Region      string
	ImageID     string
	SnapshotIDs []string
	// FromInstance marks images created in the source region from an instance.
	FromInstance bool
}

var errStoppedForRollback = errors.New("stopped: a rollback was requested")

func (w *amiShare) setup(ctx workflow.Context, in AMIShareInput) error {
	info := workflow.GetInfo(ctx)
	w.in, w.spec, w.id, w.runID = in, in.Spec, info.WorkflowExecution.ID, info.FirstRunID
	w.owner = ownerOf(ctx, in.Undo)
	if in.Undo != nil {
		rec, err := decodeRecord[amiUndoRecord](in.Undo)
		if err != nil {
			return err
		}
		w.spec, w.created = rec.Spec, rec.Created
	}
	if w.spec.MaxParallel < 1 {
		w.spec.MaxParallel = 1
	}
	if w.spec.PollInterval <= 0 {
		w.spec.PollInterval = defaultAMIPoll
	}
	w.sources = map[string]activities.SourceImage{}
	w.log = log.With(workflow.GetLogger(ctx), "migration", w.id)
	s, err := NewSteering(ctx, SteeringOptions{
		Kind: KindAMIShare, Initiator: in.Initiator, PlanHash: in.PlanHash, Approvals: in.Approvals,
		Logger: w.log, Details: w.details,
	})
	if err != nil {
		return err
	}
	w.s = s
	return nil
}

// details renders the Temporal UI's current details: one row per pair.
func (w *amiShare) details(p Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "AMI share from **%s** to %s\n\n", w.spec.SourceRegion, strings.Join(w.spec.TargetRegions, ", "))
	if p.AMI != nil && len(p.AMI.Copies) > 0 {
		b.WriteString("| source | region | copy | state |\n| --- | --- | --- | --- |\n")
		for _, c := range p.AMI.Copies {
			src := c.SourceImageID
			if src == "" {
				src = "image of " + c.SourceInstanceID
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", src, c.Region, c.ImageID, c.State)
		}
		b.WriteString("\n")
	}
	p.Steps = nil // the pair table says it better
	b.WriteString(RenderDetails(p))
	return b.String()
}

func (w *amiShare) copies() []AMICopyProgress {
	out := make([]AMICopyProgress, len(w.pairs))
	for i, p := range w.pairs {
		out[i] = p.AMICopyProgress
	}
	return out
}

// publish writes the pairs into the progress. A fresh slice each time, so a query never
// shares memory with the workflow's state.
func (w *amiShare) publish(ctx workflow.Context) {
	c := w.copies()
	w.s.Update(ctx, func(p *Progress) { p.AMI = &AMIProgress{Copies: c} })
}

func (w *amiShare) setPair(ctx workflow.Context, p *amiPair, state, detail string) {
	p.State, p.Detail = state, detail
	w.publish(ctx)
}

func (w *amiShare) result(state, msg string) AMIShareResult {
	return w.resultWith(Outcome{State: state, Message: msg, Changes: w.changes()})
}

func (w *amiShare) resultWith(o Outcome) AMIShareResult {
	return AMIShareResult{Outcome: o, Copies: w.copies()}
}

func (w *amiShare) run(ctx workflow.Context) (AMIShareResult, error) {
	var res AMIShareResult
	var err error
	if w.in.Undo != nil {
		w.s.Audit(ctx, SystemIdentity, "undo", fmt.Sprintf("undo of %s: %s (%s)", w.in.Undo.ID, w.in.Undo.InEffect, w.in.Reason), "")
		w.s.RequestRollback(ctx, "undo of "+w.in.Undo.ID+": "+w.in.Reason, "")
		res, err = w.rollback(ctx)
	} else {
		res, err = w.execute(ctx)
	}
	w.done = true
	return runEnd[AMIShareResult]{
		ctx: ctx, s: w.s, log: w.log, onFailure: w.in.OnFailure, what: "ami share",
		changes: w.changes,
		undo:    w.rollback,
		result:  w.resultWith,
	}.end(res, err)
}

func (w *amiShare) execute(ctx workflow.Context) (AMIShareResult, error) {
	w.s.SetPhase(ctx, "preflight", "resolving images, regions and keys")
	obs, err := resolveAMIs(ctx, w.spec, nil)
	if err != nil {
		return AMIShareResult{}, err
	}
	w.plan = ComputeAMISharePlan(w.spec, obs)
	if err := checkDrift(w.in.PlanHash, w.plan.Plan.Hash, strings.Join(w.plan.Plan.Observations[:min(3, len(w.plan.Plan.Observations))], "; "), amiPlanHashV1(w.spec, obs)); err != nil {
		return AMIShareResult{}, err
	}
	for _, im := range obs.Images {
		w.sources[im.ID] = im
	}
	names, descs := make([]string, len(w.plan.Plan.Steps)), make([]string, len(w.plan.Plan.Steps))
	for i, st := range w.plan.Plan.Steps {
		names[i], descs[i] = st.Name, st.Description
	}
	w.s.SetSteps(ctx, names, descs)
	for _, pp := range w.plan.Pairs {
		w.pairs = append(w.pairs, &amiPair{step: pp.Step, AMICopyProgress: AMICopyProgress{
			SourceImageID: pp.SourceImageID, SourceInstanceID: pp.SourceInstanceID, Region: pp.Region, State: AMICopyPending,
		}})
	}
	w.s.Update(ctx, func(p *Progress) { p.PlanHash = w.plan.Plan.Hash })
	w.publish(ctx)
	w.s.Audit(ctx, SystemIdentity, "preflight", fmt.Sprintf("plan %s: %d pair(s); %s", w.plan.Plan.Hash, len(w.pairs), strings.Join(w.plan.Plan.Observations, "; ")), "")

	// A rollback request cancels the waits at once (they hold nothing), while copy calls
	// in flight finish so that every copy started is recorded before the rollback runs.
	waitCtx, cancelWaits := workflow.WithCancel(ctx)
	workflow.Go(ctx, func(gctx workflow.Context) {
		_ = workflow.Await(gctx, func() bool { return w.s.RollbackRequest() != nil || w.done })
		cancelWaits()
	})

	if n := len(w.spec.CreateFromInstances); n > 0 {
		w.s.SetPhase(ctx, "create images", fmt.Sprintf("imaging %d instance(s) in %s", n, w.spec.SourceRegion))
		if err := w.runBounded(ctx, n, func(gctx workflow.Context, i int) error {
			return w.createFromInstance(gctx, waitCtx, i)
		}, func(ctx workflow.Context, i int, err error) {
			w.instanceDone(ctx, i, err)
		}); err != nil {
			return AMIShareResult{}, err
		}
	}
	if w.s.RollbackRequest() != nil {
		return w.rollback(ctx)
	}

	hold := w.spec.ApproveBeforeSharing && w.spec.Sharing()
	w.s.SetPhase(ctx, "copy", fmt.Sprintf("%d pair(s), at most %d in flight", len(w.pairs), w.spec.MaxParallel))
	todo := []int{}
	for i, p := range w.pairs {
		if p.State == AMICopyPending {
			todo = append(todo, i)
		}
	}
	if err := w.runBounded(ctx, len(todo), func(gctx workflow.Context, k int) error {
		return w.copyPair(gctx, waitCtx, w.pairs[todo[k]], !hold)
	}, func(ctx workflow.Context, k int, err error) {
		w.pairDone(ctx, w.pairs[todo[k]], err, !hold)
	}); err != nil {
		return AMIShareResult{}, err
	}
	if w.s.RollbackRequest() != nil {
		return w.rollback(ctx)
	}

	if hold {
		var ready []*amiPair
		for _, p := range w.pairs {
			if p.State == AMICopyAvailable {
				ready = append(ready, p)
			}
		}
		if len(ready) > 0 {
			w.s.SetPhase(ctx, "approval", fmt.Sprintf("%d cop(ies) available; waiting for approval to share with %s", len(ready), shareText(w.spec)))
			w.s.StartStep(ctx, w.plan.ApproveStep)
			approved, err := w.s.AwaitApproval(ctx, amiApproveStep)
			if err != nil {
				return AMIShareResult{}, err
			}
			if !approved {
				w.s.EndStep(ctx, w.plan.ApproveStep, StepFailed, "not approved: rollback requested")
				return w.rollback(ctx)
			}
			w.s.EndStep(ctx, w.plan.ApproveStep, StepDone, "")
			w.s.SetPhase(ctx, "share", fmt.Sprintf("sharing %d cop(ies)", len(ready)))
			w.s.StartStep(ctx, w.plan.ShareStep)
			if err := w.runBounded(ctx, len(ready), func(gctx workflow.Context, k int) error {
				return w.sharePair(gctx, waitCtx, ready[k])
			}, func(ctx workflow.Context, k int, err error) {
				w.pairDone(ctx, ready[k], err, true)
			}); err != nil {
				return AMIShareResult{}, err
			}
			if w.s.RollbackRequest() != nil {
				return w.rollback(ctx)
			}
			w.s.EndStep(ctx, w.plan.ShareStep, StepDone, "")
		}
	}
	return w.finish(ctx)
}

// finish decides the outcome: completed only if every pair succeeded.
func (w *amiShare) finish(ctx workflow.Context) (AMIShareResult, error) {
	var failed []string
	for _, p := range w.pairs {
		if p.State == AMICopyFailed {
			failed = append(failed, fmt.Sprintf("%s to %s: %s", pairSource(p), p.Region, p.Detail))
		}
	}
	if len(failed) == 0 {
		msg := fmt.Sprintf("completed: %d cop(ies) available", len(w.pairs))
		if w.spec.Sharing() {
			msg = fmt.Sprintf("completed: %d cop(ies) available and shared", len(w.pairs))
		}
		w.s.Audit(ctx, SystemIdentity, "completed", msg, "")
		w.s.Finish(ctx, StateCompleted, msg)
		w.log.Info("ami share completed", "pairs", len(w.pairs))
		return w.result(StateCompleted, msg), nil
	}
	summary := fmt.Sprintf("%d of %d pair(s) failed: %s", len(failed), len(w.pairs), strings.Join(failed, "; "))
	w.log.Warn("ami share partially failed", "failed", len(failed), "pairs", len(w.pairs))
	// The run's end undoes the copies made (the default) or leaves them and reports them.
	return AMIShareResult{}, temporal.NewNonRetryableApplicationError(summary, ErrAMIPartialFailure, nil)
}

func pairSource(p *amiPair) string {
	if p.SourceImageID != "" {
		return p.SourceImageID
	}
	return "image of " + p.SourceInstanceID
}

// runBounded runs fn(i) for i in [0, n) with at most MaxParallel in flight, as coroutines
// whose futures one selector waits on; done(i, err) runs on the workflow's main coroutine
// as each finishes. A pause holds new starts (running ones go on); a rollback request
// stops new starts; it returns once nothing is in flight.
func (w *amiShare) runBounded(ctx workflow.Context, n int, fn func(workflow.Context, int) error, done func(workflow.Context, int, error)) error {
	limit := max(1, w.spec.MaxParallel)
	sel := workflow.NewSelector(ctx)
	next, inflight, watching := 0, 0, false
	stop := func() bool { return !w.rollingBack && w.s.RollbackRequest() != nil || ctx.Err() != nil }
	for {
		for inflight < limit && next < n && !stop() && !w.s.Paused() {
			i := next
			next++
			inflight++
			f, set := workflow.NewFuture(ctx)
			workflow.Go(ctx, func(gctx workflow.Context) { set.Set(nil, fn(gctx, i)) })
			sel.AddFuture(f, func(f workflow.Future) {
				inflight--
				done(ctx, i, f.Get(ctx, nil))
			})
		}
		if next >= n && inflight == 0 || stop() && inflight == 0 {
			return ctx.Err()
		}
		if inflight == 0 {
			if err := w.s.WaitWhilePaused(ctx); err != nil {
				return err
			}
			continue
		}
		if w.s.Paused() && next < n && !watching {
			// Wake the loop on resume, not only when a running copy ends.
			watching = true
			f, set := workflow.NewFuture(ctx)
			workflow.Go(ctx, func(gctx workflow.Context) {
				set.Set(nil, workflow.Await(gctx, func() bool { return !w.s.Paused() || stop() }))
			})
			sel.AddFuture(f, func(workflow.Future) { watching = false })
		}
		sel.Select(ctx)
	}
}

// record notes an image this execution made, before anything else can fail.
func (w *amiShare) record(region, imageID string, snaps []string, fromInstance bool) {
	for i := range w.created {
		if w.created[i].Region == region && w.created[i].ImageID == imageID {
			if len(snaps) > 0 {
				w.created[i].SnapshotIDs = snaps
			}
			return
		}
	}
	w.created = append(w.created, createdImage{Region: region, ImageID: imageID, SnapshotIDs: snaps, FromInstance: fromInstance})
}

func (w *amiShare) copyOpts(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// A few API calls (look for our copy, CopyImage, tag it); the bound is also how
		// long a dead worker holds the pair before another takes it over.
		StartToCloseTimeout: shortCallTimeout,
		// RequestLimitExceeded (the CopyImage bucket refills at 1/s) and
		// ResourceLimitExceeded (concurrent copy quotas) come back retryable; the backoff
		// up to a minute lets the buckets refill and other copies finish. Every attempt
		// sends the same client token and first looks for its own tagged copy.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 30},
		Summary:     summary,
	})
}

func (w *amiShare) waitOpts(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// AWS copy time is best effort: large images take hours.
		StartToCloseTimeout:    12 * time.Hour,
		ScheduleToCloseTimeout: 24 * time.Hour,
		// A dead worker is noticed within a few polls and the wait resumes elsewhere.
		HeartbeatTimeout: max(30*time.Second, 3*w.spec.PollInterval),
		RetryPolicy:      &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
		Summary:          summary,
	})
}

func (w *amiShare) shortOpts(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: shortCallTimeout,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
		Summary:             summary,
	})
}

// createFromInstance images instance i in the source region and resolves the image, so
// its pairs can be copied like any other.
func (w *amiShare) createFromInstance(ctx, waitCtx workflow.Context, i int) error {
	inst := w.spec.CreateFromInstances[i]
	step := w.plan.CreateSteps[i]
	w.s.StartStep(ctx, step)
	name := fmt.Sprintf("ferry-%s-%s", inst, AMICopyToken(w.id, w.runID, inst, w.spec.SourceRegion)[:12])
	var out activities.CreateAMIOutput
	err := workflow.ExecuteActivity(w.copyOpts(ctx, fmt.Sprintf("create image from %s", inst)), ec2a.CreateAMI, activities.CreateAMIInput{
		Region: w.spec.SourceRegion, InstanceID: inst, Name: name, Reboot: w.spec.Reboot, MigrationID: w.id,
	}).Get(ctx, &out)
	if err != nil {
		return err
	}
	w.record(w.spec.SourceRegion, out.ImageID, nil, true)
	w.s.EndStep(ctx, step, "running", "image "+out.ImageID+" pending")
	if w.s.RollbackRequest() != nil {
		return errStoppedForRollback
	}
	var wo activities.WaitAMIOutput
	err = workflow.ExecuteActivity(w.waitOpts(waitCtx, fmt.Sprintf("wait %s (from %s) available in %s", out.ImageID, inst, w.spec.SourceRegion)), ec2a.WaitAMI, activities.WaitAMIInput{
		Region: w.spec.SourceRegion, ImageID: out.ImageID, PollInterval: w.spec.PollInterval,
	}).Get(ctx, &wo)
	if err != nil {
		return err
	}
	w.record(w.spec.SourceRegion, out.ImageID, wo.SnapshotIDs, true)
	// The new image gets the same checks as a selected one (state, keys for sharing).
	sp := w.spec
	sp.ImageIDs, sp.ImageTags = []string{out.ImageID}, nil
	obs, err := resolveAMIs(ctx, sp, []string{})
	if err != nil {
		return err
	}
	if len(obs.Images) != 1 {
		return fmt.Errorf("resolve image %s of %s: got %d images", out.ImageID, inst, len(obs.Images))
	}
	w.sources[out.ImageID] = obs.Images[0]
	for _, p := range w.pairs {
		if p.SourceInstanceID == inst {
			p.SourceImageID = out.ImageID
		}
	}
	return nil
}

func (w *amiShare) instanceDone(ctx workflow.Context, i int, err error) {
	inst := w.spec.CreateFromInstances[i]
	step := w.plan.CreateSteps[i]
	if err == nil {
		w.s.EndStep(ctx, step, StepDone, "")
		w.publish(ctx)
		return
	}
	detail := "could not create the image: " + errText(err)
	w.s.EndStep(ctx, step, StepFailed, detail)
	for _, p := range w.pairs {
		if p.SourceInstanceID == inst && p.SourceImageID == "" {
			p.State, p.Detail = AMICopyFailed, detail
			w.s.EndStep(ctx, p.step, StepFailed, detail)
		}
	}
	w.publish(ctx)
	w.s.Audit(ctx, SystemIdentity, "create image failed", detail, "create image from "+inst)
}

// copyPair copies one pair, waits until available, tags, and shares unless sharing waits
// for an approval.
func (w *amiShare) copyPair(ctx, waitCtx workflow.Context, p *amiPair, share bool) error {
	src, ok := w.sources[p.SourceImageID]
	if !ok {
		return fmt.Errorf("copy %s to %s: source image not resolved", pairSource(p), p.Region)
	}
	w.s.StartStep(ctx, p.step)
	w.setPair(ctx, p, AMICopyCopying, "starting CopyImage")
	token := AMICopyToken(w.id, w.runID, p.SourceImageID, p.Region)
	var out activities.CopyAMIOutput
	err := workflow.ExecuteActivity(w.copyOpts(ctx, fmt.Sprintf("copy %s to %s", p.SourceImageID, p.Region)), ec2a.CopyAMI, activities.CopyAMIInput{
		SourceRegion: w.spec.SourceRegion, SourceImageID: p.SourceImageID, Region: p.Region,
		Name: src.Name, Description: copyDescription(src, w.spec.SourceRegion), KMSKeyID: w.spec.KMSKeys[p.Region],
		ClientToken: token, MigrationID: w.id,
	}).Get(ctx, &out)
	if err != nil {
		return err
	}
	w.record(p.Region, out.ImageID, nil, false)
	p.ImageID, p.Adopted = out.ImageID, out.Adopted
	how := "copy started"
	if out.Adopted {
		how = "found the copy an earlier attempt started"
	}
	w.setPair(ctx, p, AMICopyCopying, how+"; waiting until available")
	if w.s.RollbackRequest() != nil {
		return errStoppedForRollback
	}
	var wo activities.WaitAMIOutput
	err = workflow.ExecuteActivity(w.waitOpts(waitCtx, fmt.Sprintf("wait %s (copy of %s) available in %s", out.ImageID, p.SourceImageID, p.Region)), ec2a.WaitAMI, activities.WaitAMIInput{
		Region: p.Region, ImageID: out.ImageID, PollInterval: w.spec.PollInterval,
	}).Get(ctx, &wo)
	if err != nil {
		return err
	}
	w.record(p.Region, out.ImageID, wo.SnapshotIDs, false)
	p.snapshotIDs = wo.SnapshotIDs

	tags := map[string]string{}
	if w.spec.CopyTags {
		maps.Copy(tags, copyableTags(src.Tags))
	}
	maps.Copy(tags, w.spec.AddTags)
	// Ferry's tags last, so neither the source nor the spec can disguise where a copy
	// came from.
	tags[activities.TagMigration] = w.id
	tags[activities.TagSourceImage] = p.SourceImageID
	tags[activities.TagSourceRegion] = w.spec.SourceRegion
	err = workflow.ExecuteActivity(w.shortOpts(waitCtx, fmt.Sprintf("tag %s in %s", out.ImageID, p.Region)), ec2a.TagAMI, activities.TagAMIInput{
		Region: p.Region, ImageID: out.ImageID, SnapshotIDs: wo.SnapshotIDs, Tags: tags,
	}).Get(ctx, nil)
	if err != nil {
		return err
	}
	w.setPair(ctx, p, AMICopyAvailable, fmt.Sprintf("available after %d poll(s), %d tag(s)", wo.Polls, len(tags)))
	if share && w.spec.Sharing() {
		return w.sharePair(ctx, waitCtx, p)
	}
	return nil
}

func copyDescription(src activities.SourceImage, region string) string {
	d := fmt.Sprintf("Copy of %s (%s) from %s by ferry", src.ID, src.Name, region)
	if len(d) > 255 {
		d = d[:255]
	}
	return d
}

func (w *amiShare) sharePair(ctx, waitCtx workflow.Context, p *amiPair) error {
	if w.s.RollbackRequest() != nil {
		return errStoppedForRollback
	}
	var out activities.ShareAMIOutput
	err := workflow.ExecuteActivity(w.shortOpts(waitCtx, fmt.Sprintf("share %s in %s", p.ImageID, p.Region)), ec2a.ShareAMI, activities.ShareAMIInput{
		Region: p.Region, ImageID: p.ImageID, SnapshotIDs: p.snapshotIDs,
		Accounts: w.spec.ShareWithAccounts, Organizations: w.spec.ShareWithOrganizations, OrganizationalUnits: w.spec.ShareWithOrganizationalUnits,
	}).Get(ctx, &out)
	if err != nil {
		return err
	}
	w.setPair(ctx, p, AMICopyShared, fmt.Sprintf("shared: %d launch permission(s), %d snapshot(s)", out.LaunchPermissions, out.Snapshots))
	return nil
}

// pairDone records a pair's outcome; finalStep says the pair's step ends here.
func (w *amiShare) pairDone(ctx workflow.Context, p *amiPair, err error, finalStep bool) {
	switch {
	case err == nil:
		if finalStep {
			w.s.EndStep(ctx, p.step, StepDone, p.Detail)
		} else {
			w.s.EndStep(ctx, p.step, StepDone, p.Detail+"; sharing waits for approval")
		}
	case w.s.RollbackRequest() != nil && (errors.Is(err, errStoppedForRollback) || temporal.IsCanceledError(err)):
		w.setPair(ctx, p, p.State, "stopped: rollback requested")
	default:
		detail := errText(err)
		w.log.Warn("pair failed", "source", pairSource(p), "region", p.Region, "error", detail)
		w.setPair(ctx, p, AMICopyFailed, detail)
		w.s.EndStep(ctx, p.step, StepFailed, detail)
		w.s.Audit(ctx, SystemIdentity, "copy failed", detail, fmt.Sprintf("copy %s to %s", pairSource(p), p.Region))
	}
}

// rollback deregisters every image this execution recorded and deletes its snapshots:
// the copies first, then images made from instances. Each removal is idempotent, so a
// retried or replayed rollback converges.
func (w *amiShare) rollback(ctx workflow.Context) (AMIShareResult, error) {
	req := w.s.RollbackRequest()
	why := "rollback"
	if req != nil {
		why = fmt.Sprintf("rollback by %s: %s", req.Identity, req.Reason)
	}
	w.rollingBack = true
	w.s.BeginRollback(ctx)
	var copies, fromInstances []createdImage
	for _, c := range w.created {
		if c.FromInstance {
			fromInstances = append(fromInstances, c)
		} else {
			copies = append(copies, c)
		}
	}
	total := len(w.created)
	w.s.SetPhase(ctx, "rollback", fmt.Sprintf("removing %d image(s) this migration made (%s)", total, why))
	w.log.Info("rolling back", "reason", why, "images", total)
	var failures []string
	removed := 0
	remove := func(items []createdImage) error {
		return w.runBounded(ctx, len(items), func(gctx workflow.Context, i int) error {
			c := items[i]
			actx := workflow.WithActivityOptions(gctx, workflow.ActivityOptions{
				StartToCloseTimeout: 2 * time.Minute,
				// It heartbeats per snapshot deleted, so a dead worker is noticed in seconds.
				HeartbeatTimeout: 30 * time.Second,
				RetryPolicy:      &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10},
				Summary:          fmt.Sprintf("roll back %s in %s", c.ImageID, c.Region),
			})
			return workflow.ExecuteActivity(actx, ec2a.DeleteAMICopy, activities.DeleteAMICopyInput{
				Region: c.Region, ImageID: c.ImageID, SnapshotIDs: c.SnapshotIDs, MigrationID: w.id,
			}).Get(gctx, nil)
		}, func(ctx workflow.Context, i int, err error) {
			c := items[i]
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s in %s: %s", c.ImageID, c.Region, errText(err)))
				return
			}
			removed++
			w.forget(c)
			for _, p := range w.pairs {
				if p.ImageID == c.ImageID && p.Region == c.Region {
					w.setPair(ctx, p, AMICopyRolledBack, "deregistered, snapshots deleted")
					w.s.EndStep(ctx, p.step, StepRolledBack, "")
				}
			}
		})
	}
	// Copies first, in parallel; the images made from instances after them, because a
	// copy still pending reads its source.
	if err := remove(copies); err != nil {
		return AMIShareResult{}, err
	}
	if err := remove(fromInstances); err != nil {
		return AMIShareResult{}, err
	}
	for _, p := range w.pairs {
		if p.ImageID == "" && p.State != AMICopyFailed && p.State != AMICopyRolledBack {
			w.setPair(ctx, p, AMICopyRolledBack, "not copied")
		}
	}
	if len(failures) > 0 {
		msg := fmt.Sprintf("rollback incomplete: removed %d of %d image(s); still there: %s; remove them by hand (DeregisterImage, then DeleteSnapshot)", removed, total, strings.Join(failures, "; "))
		return AMIShareResult{}, temporal.NewNonRetryableApplicationError(msg, ErrAMIRollbackIncomplete, nil)
	}
	msg := fmt.Sprintf("rolled back: removed %d image(s) and their snapshots (%s)", removed, why)
	w.s.Audit(ctx, SystemIdentity, "rolled back", msg, "")
	w.s.Finish(ctx, StateRolledBack, msg)
	return w.result(StateRolledBack, msg), nil
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
