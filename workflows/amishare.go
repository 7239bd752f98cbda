package workflows

import (
	"errors"
	"fmt"
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
	return runKind[AMIShareResult](ctx, "ami share", w)
}

// --- plan ----------------------------------------------------------------------------------

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
		Start: in.StartProof, StartDigest: StartDigest(in),
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
	return w.resultOf(Outcome{State: state, Message: msg, Changes: w.changes()})
}

func (w *amiShare) resultOf(o Outcome) AMIShareResult {
	return AMIShareResult{Outcome: o, Copies: w.copies()}
}

func (w *amiShare) steering() *Steering { return w.s }
func (w *amiShare) common() Common      { return w.in.Common }

// undoRecorded is an undo run: the recorded images came in through setup; the rollback
// removes exactly those.
func (w *amiShare) undoRecorded(ctx workflow.Context) (AMIShareResult, error) {
	return w.rollback(ctx)
}

func (w *amiShare) execute(ctx workflow.Context) (AMIShareResult, error) {
	// done stops the watcher that cancels the waits on a rollback request.
	defer func() { w.done = true }()
	w.s.SetPhase(ctx, "preflight", "resolving images, regions and keys")
	obs, err := resolveAMIs(ctx, w.spec, nil)
	if err != nil {
		return AMIShareResult{}, err
	}
	w.plan = ComputeAMISharePlan(w.spec, obs)
	if err := checkDrift(w.in.PlanHash, w.plan.Plan.Hash, strings.Join(w.plan.Plan.Observations[:min(3, len(w.plan.Plan.Observations))], "; "), amiPlanHashV1(w.spec, obs)); err != nil {
		return AMIShareResult{}, err
	}
	if err := holdLocks(ctx, w.s, w.in.Common, w.plan.Plan.Resources); err != nil {
		return AMIShareResult{}, err
	}
	for _, im := range obs.Images {
		w.sources[im.ID] = im
	}
	w.s.SetPlannedSteps(ctx, w.plan.Plan.Steps)
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
	summary := fmt.Sprintf("%d of %d pair(s) failed: %s", len(failed), len(w.pairs), failed[0])
	if len(failed) > 1 {
		// Each pair's detail is in the progress; the same cause said for every pair
		// buried the sentence (the Temporal UI shows this message as the failure).
		summary = fmt.Sprintf("%d of %d pair(s) failed (each one in the progress), the first %s", len(failed), len(w.pairs), failed[0])
	}
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

// rollback deregisters every image this execution recorded and deletes its snapshots:
// the copies first, then images made from instances. Each removal is idempotent, so a
// retried or replayed rollback converges.
func (w *amiShare) rollback(ctx workflow.Context) (AMIShareResult, error) {
	w.rollingBack = true
	why := w.s.BeginRollback(ctx)
	total := len(w.created)
	w.s.SetPhase(ctx, "rollback", fmt.Sprintf("removing %d image(s) this migration made (%s)", total, why))
	w.log.Info("rolling back", "reason", why, "images", total)
	var failures []string
	removed := 0
	remove := func(ctx workflow.Context, items []createdImage) error {
		return w.runBounded(ctx, len(items), func(gctx workflow.Context, i int) error {
			c := items[i]
			actx := workflow.WithActivityOptions(gctx, workflow.ActivityOptions{
				StartToCloseTimeout:    2 * time.Minute,
				ScheduleToCloseTimeout: undoAttempt(w.s, w.in.Common),
				// It heartbeats per snapshot deleted, so a dead worker is noticed in seconds.
				HeartbeatTimeout: 30 * time.Second,
				RetryPolicy:      &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
				Summary:          fmt.Sprintf("roll back %s in %s", c.ImageID, c.Region),
			})
			return workflow.ExecuteActivity(actx, ec2a.DeleteAMICopy, activities.DeleteAMICopyInput{
				Region: c.Region, ImageID: c.ImageID, SnapshotIDs: c.SnapshotIDs, MigrationID: w.owner.ID, RunChain: w.owner.RunID,
			}).Get(gctx, nil)
		}, func(ctx workflow.Context, i int, err error) {
			c := items[i]
			if err != nil && HasErrorType(err, activities.ErrNotOurImage) {
				// Its tags now name someone else: a change made behind ferry's back is
				// reported and left in place, never overwritten or deleted.
				w.forget(c)
				w.s.Audit(ctx, SystemIdentity, "left in place", fmt.Sprintf("%s in %s: %s", c.ImageID, c.Region, failureLine(err)), "rollback")
				return
			}
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s in %s: %s", c.ImageID, c.Region, failureLine(err)))
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
	// Each attempt removes what is still recorded (a removed image is forgotten): the
	// copies first, in parallel, then the images made from instances, because a copy still
	// pending reads its source. It keeps trying until everything is gone.
	err := keepTrying(ctx, w.s, w.in.budgets(), "rollback", func(ctx workflow.Context) error {
		failures = nil
		var copies, fromInstances []createdImage
		for _, c := range w.created {
			if c.FromInstance {
				fromInstances = append(fromInstances, c)
			} else {
				copies = append(copies, c)
			}
		}
		if err := remove(ctx, copies); err != nil {
			return err
		}
		if err := remove(ctx, fromInstances); err != nil {
			return err
		}
		if len(failures) > 0 {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("removed %d of %d image(s); still there: %s",
				removed, total, strings.Join(failures, "; ")), ErrAMIRollbackIncomplete, nil)
		}
		return nil
	})
	if err != nil {
		return AMIShareResult{}, err
	}
	for _, p := range w.pairs {
		if p.ImageID == "" && p.State != AMICopyFailed && p.State != AMICopyRolledBack {
			w.setPair(ctx, p, AMICopyRolledBack, "not copied")
		}
	}
	msg := fmt.Sprintf("rolled back: removed %d image(s) and their snapshots (%s)", removed, why)
	w.s.Audit(ctx, SystemIdentity, "rolled back", msg, "")
	w.s.Finish(ctx, StateRolledBack, msg)
	return w.result(StateRolledBack, msg), nil
}
