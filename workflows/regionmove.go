package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// Error types of the region move's own non-retryable failures.
const (
	// ErrRegionRollbackIncomplete ends an unwinding that stopped at a phase it could not
	// undo; the message says which phases are still in effect.
	ErrRegionRollbackIncomplete = "RegionRollbackIncomplete"
	// ErrRegionNoPhase refuses a move with no phase at all.
	ErrRegionNoPhase = "RegionNoPhase"
)

const regionPlanHashVersion = "ferry/region-move/plan/v1"

// RegionMove moves an application from one region to another by running the other
// migrations as child workflows, in order: AMI share -> MongoDB primary move -> DNS shift.
// Launching instances from the copied AMIs and decommissioning the old region are not
// part of it yet.
//
// Before anything changes it plans every phase (read-only children) and, when PlanHash is
// set, refuses on drift. Between phases it can wait for approval; the MongoDB and DNS
// phases begin only inside the maintenance window; the DNS phase begins only once the
// primary is verified in the target region and the copied AMIs are available there. A
// rollback (asked for, or a phase that fails or rolls itself back) unwinds the completed
// phases in reverse: traffic back first, then the primary, then the copies. Approve,
// pause and resume sent to the parent reach the running child.
func RegionMove(ctx workflow.Context, in RegionMoveInput) (RegionMoveResult, error) {
	w := &regionMove{}
	if err := w.setup(ctx, in); err != nil {
		return RegionMoveResult{State: StateFailed, Message: err.Error()}, err
	}
	return w.run(ctx)
}

// PlanRegionMove is the dry run: it runs each phase's plan workflow as a child (each reads
// only) and returns one plan with every step of every phase in order, the approvals
// between phases, the window waits and one hash over the children's hashes and the spec.
func PlanRegionMove(ctx workflow.Context, in PlanRegionMoveInput) (Plan, error) {
	rp, err := planRegionMove(ctx, in.Spec, in.Name, workflow.GetInfo(ctx).WorkflowExecution.ID)
	return rp.Plan, err
}

// regionPlan is the combined plan and each phase's own hash (to pin the children).
type regionPlan struct {
	Plan   Plan
	Hashes map[string]string
}

type regionPhase struct {
	name   string
	window bool // waits for the maintenance window before it begins
}

// regionPhases lists the phases a spec runs, in order.
func regionPhases(spec RegionMoveSpec) []regionPhase {
	var ps []regionPhase
	if spec.AMI != nil {
		ps = append(ps, regionPhase{name: PhaseAMIShare})
	}
	if spec.Mongo != nil {
		ps = append(ps, regionPhase{name: PhaseMongoPrimaryMove, window: spec.Window != nil})
	}
	if spec.DNS != nil {
		ps = append(ps, regionPhase{name: PhaseDNSShift, window: spec.Window != nil})
	}
	return ps
}

// childID is the id of the child that runs (or undoes) a phase: the phase's own resource
// id, so the resource locks of the single migrations hold for the region move too.
func childID(spec RegionMoveSpec, phase string) string {
	switch phase {
	case PhaseAMIShare:
		// AMISelection sorts the tag keys before use, so map order never reaches the id.
		//workflowcheck:ignore
		return AMIShareWorkflowID(spec.AMI.SourceRegion, AMISelection(*spec.AMI))
	case PhaseMongoPrimaryMove:
		return MongoPrimaryMoveWorkflowID(spec.Mongo.ReplicaSet)
	case PhaseDNSShift:
		return DNSShiftWorkflowID(spec.DNS.Zone, spec.DNS.RecordName, spec.DNS.RecordType)
	}
	return ""
}

func planRegionMove(ctx workflow.Context, spec RegionMoveSpec, name, parentID string) (regionPlan, error) {
	phases := regionPhases(spec)
	if len(phases) == 0 {
		return regionPlan{}, temporal.NewNonRetryableApplicationError("a region move needs at least one phase (amiShare, mongoPrimaryMove or dnsShift)", ErrRegionNoPhase, nil)
	}
	rp := regionPlan{
		Plan: Plan{
			ID:   RegionMoveWorkflowID(name, spec.SourceRegion, spec.TargetRegion),
			Kind: KindRegionMove,
		},
		Hashes: map[string]string{},
	}
	// The children plan in parallel: each only reads, and a region move waits for the
	// slowest anyway.
	futs := make([]workflow.ChildWorkflowFuture, len(phases))
	for i, ph := range phases {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            parentID + "/plan/" + ph.name,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_TERMINATE,
			WorkflowRunTimeout:    5 * time.Minute,
			StaticSummary:         fmt.Sprintf("plan %s of region move %s (read-only)", ph.name, name),
		})
		switch ph.name {
		case PhaseAMIShare:
			futs[i] = workflow.ExecuteChildWorkflow(cctx, PlanAMIShare, PlanAMIShareInput{Spec: *spec.AMI})
		case PhaseMongoPrimaryMove:
			futs[i] = workflow.ExecuteChildWorkflow(cctx, PlanMongoPrimaryMove, PlanMongoPrimaryMoveInput{Spec: *spec.Mongo})
		case PhaseDNSShift:
			futs[i] = workflow.ExecuteChildWorkflow(cctx, PlanDNSShift, PlanDNSShiftInput{Spec: *spec.DNS})
		}
	}
	var hashes []string
	rp.Plan.Observations = append(rp.Plan.Observations, fmt.Sprintf("move %s -> %s: %d phase(s)", spec.SourceRegion, spec.TargetRegion, len(phases)))
	for i, ph := range phases {
		var p Plan
		if err := futs[i].Get(ctx, &p); err != nil {
			return regionPlan{}, err
		}
		rp.Hashes[ph.name] = p.Hash
		hashes = append(hashes, ph.name+"="+p.Hash)
		if i > 0 && spec.ApproveBetweenPhases {
			rp.Plan.Steps = append(rp.Plan.Steps, PlannedStep{
				Name: "approve " + ph.name, NeedsApproval: true,
				Description: fmt.Sprintf("approval before phase %d (%s) begins", i+1, ph.name),
			})
		}
		if ph.window {
			rp.Plan.Steps = append(rp.Plan.Steps, PlannedStep{
				Name:        "window " + ph.name,
				Description: fmt.Sprintf("begin %s only inside the maintenance window %s", ph.name, windowText(*spec.Window)),
			})
		}
		if ph.name == PhaseDNSShift && (spec.AMI != nil || spec.Mongo != nil) {
			rp.Plan.Steps = append(rp.Plan.Steps, PlannedStep{
				Name:        "gate " + ph.name,
				Description: "begin the traffic shift only when " + dnsPreconditionText(spec),
			})
		}
		for _, st := range p.Steps {
			st.Name = ph.name + ": " + st.Name
			rp.Plan.Steps = append(rp.Plan.Steps, st)
		}
		for _, o := range p.Observations {
			rp.Plan.Observations = append(rp.Plan.Observations, ph.name+": "+o)
		}
		rp.Plan.Observations = append(rp.Plan.Observations, fmt.Sprintf("%s: runs as child %s (plan %s)", ph.name, childID(spec, ph.name), p.Hash))
	}
	rp.Plan.Observations = append(rp.Plan.Observations,
		"rollback: unwind completed phases in reverse (traffic back to "+spec.SourceRegion+", then the primary, then the copies)",
		"not covered yet: launching instances from the copied AMIs, decommissioning "+spec.SourceRegion)
	rp.Plan.Hash = RegionMovePlanHash(spec, hashes)
	return rp, nil
}

func dnsPreconditionText(spec RegionMoveSpec) string {
	var parts []string
	if spec.Mongo != nil {
		parts = append(parts, "the MongoDB primary is verified in "+spec.TargetRegion)
	}
	if spec.AMI != nil {
		parts = append(parts, "the copied AMIs are available in "+spec.TargetRegion)
	}
	return strings.Join(parts, " and ")
}

// RegionMovePlanHash is sha256 over the parent spec and the children's plan hashes (each
// of which covers its spec and the state it read), first 16 hex characters.
func RegionMovePlanHash(spec RegionMoveSpec, childHashes []string) string {
	doc := struct {
		Version  string
		Spec     RegionMoveSpec
		Children []string
	}{regionPlanHashVersion, spec, childHashes}
	b, err := json.Marshal(doc)
	if err != nil {
		b = fmt.Appendf(nil, "%s unencodable: %v", regionPlanHashVersion, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:planHashPrefixChars]
}

// --- maintenance window (pure) -----------------------------------------------------------------

// ParseWindowClock parses "HH:MM" (24-hour clock).
func ParseWindowClock(s string) (hour, minute int, err error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, 0, fmt.Errorf("%q is not HH:MM", s)
	}
	hour, err1 := strconv.Atoi(h)
	minute, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hour < 0 || hour > 23 || minute < 0 || minute > 59 {
		return 0, 0, fmt.Errorf("%q is not HH:MM (00:00..23:59)", s)
	}
	return hour, minute, nil
}

// WindowAt reports whether t is inside the window and the bounds of the occurrence that
// contains t or, when outside, of the next one. Bounds are wall-clock times in the
// window's zone, so a window keeps its local hours across DST changes (and is an hour
// shorter or longer on the night the clocks change). A start that does not exist that day
// (inside a spring-forward gap) is normalised by time.Date.
func WindowAt(mw MaintenanceWindow, t time.Time) (inside bool, opens, closes time.Time, err error) {
	zone := mw.Zone
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return false, time.Time{}, time.Time{}, fmt.Errorf("maintenance window zone %q: %w", zone, err)
	}
	sh, sm, err := ParseWindowClock(mw.Start)
	if err != nil {
		return false, time.Time{}, time.Time{}, fmt.Errorf("maintenance window start: %w", err)
	}
	eh, em, err := ParseWindowClock(mw.End)
	if err != nil {
		return false, time.Time{}, time.Time{}, fmt.Errorf("maintenance window end: %w", err)
	}
	crosses := eh*60+em <= sh*60+sm
	y, mo, d := t.In(loc).Date()
	// Yesterday's occurrence may still be open (a window crossing midnight); one of today's
	// or tomorrow's is always the next.
	for off := -1; off <= 2; off++ {
		o := time.Date(y, mo, d+off, sh, sm, 0, 0, loc)
		cd := d + off
		if crosses {
			cd++
		}
		c := time.Date(y, mo, cd, eh, em, 0, 0, loc)
		if !t.Before(o) && t.Before(c) {
			return true, o, c, nil
		}
		if o.After(t) {
			return false, o, c, nil
		}
	}
	return false, time.Time{}, time.Time{}, fmt.Errorf("maintenance window %s: no opening found after %s", windowText(mw), t)
}

func windowText(mw MaintenanceWindow) string {
	z := mw.Zone
	if z == "" {
		z = "UTC"
	}
	return mw.Start + "-" + mw.End + " " + z
}

// --- run ---------------------------------------------------------------------------------------

type regionMove struct {
	in     RegionMoveInput
	spec   RegionMoveSpec
	id     string
	s      *Steering
	log    log.Logger
	plan   regionPlan
	phases []PhaseProgress
	// step index of each phase's own entry in the step list
	stepOf map[string]int

	amiResult   *AMIShareResult
	mongoResult *MongoPrimaryMoveResult
	// mongoOriginalPrimary and mongoOriginal are the set before the MongoDB phase, which
	// undoing the phase restores exactly.
	mongoOriginalPrimary string
	mongoOriginal        []activities.MongoMember

	running        *runningChild
	rollingBack    bool
	forwardedPause bool
}

// runningChild is the phase whose child runs now: signals for it are forwarded there.
type runningChild struct {
	phase string
	id    string
	fut   workflow.ChildWorkflowFuture
	done  bool
}

func (w *regionMove) setup(ctx workflow.Context, in RegionMoveInput) error {
	w.in, w.spec = in, in.Spec
	w.id = workflow.GetInfo(ctx).WorkflowExecution.ID
	w.log = log.With(workflow.GetLogger(ctx), "migration", w.id)
	w.stepOf = map[string]int{}
	for _, ph := range regionPhases(in.Spec) {
		w.phases = append(w.phases, PhaseProgress{Name: ph.name, MigrationID: childID(in.Spec, ph.name), State: PhasePending})
	}
	s, err := NewSteering(ctx, SteeringOptions{
		Kind:      KindRegionMove,
		Initiator: in.Initiator,
		PlanHash:  in.PlanHash,
		Approvals: in.Approvals,
		Logger:    w.log,
		Details:   w.details,
		Actions:   w.forwardingActions(),
	})
	if err != nil {
		return err
	}
	w.s = s
	// Whoever started the move may not have set these (a child, `temporal workflow
	// start`); they are what the Temporal UI filters on.
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		SAKind.ValueSet(KindRegionMove),
		SASourceRegion.ValueSet(in.Spec.SourceRegion),
		SATargetRegion.ValueSet(in.Spec.TargetRegion),
		SAInitiator.ValueSet(in.Initiator),
	); err != nil {
		w.log.Warn("upsert search attributes", "error", err)
	}
	w.publish(ctx)
	return nil
}

// forwardingActions takes over approve and resume from the steering: while a child runs
// and the parent itself holds no gate, they reach the child — by API update or by a signal
// from the Temporal UI alike. The child re-checks everything (four-eyes included) with the
// identity carried unchanged; the parent checks what it can first so an API caller gets an
// immediate no in the common cases. (The handlers run after setup, when w.s is set.)
func (w *regionMove) forwardingActions() map[string]ActionHandler {
	parentGate := func() bool { return w.s.pending != nil && !w.s.pending.done }
	validateApprove := func(req ActionRequest) error {
		if parentGate() || w.running == nil || w.running.done || w.s.finished {
			return w.s.validateApprove(req)
		}
		switch {
		case strings.TrimSpace(req.Identity) == "":
			return errors.New("an approval needs an identity (who approves)")
		case req.Identity == w.in.Initiator && !w.in.Approvals.AllowSelfApproval:
			return fmt.Errorf("%s started this migration and cannot approve it (four-eyes); ask someone else, or set approvals.allowSelfApproval in the spec", req.Identity)
		}
		return nil
	}
	applyApprove := func(ctx workflow.Context, req ActionRequest) (ActionResult, error) {
		if parentGate() || w.running == nil || w.running.done {
			msg := w.s.applyApprove(ctx, req)
			return ActionResult{State: w.s.state(), Message: msg}, nil
		}
		return w.forward(ctx, SignalApprove, "approve", req)
	}
	validateResume := func(req ActionRequest) error {
		if w.s.paused || w.running == nil || w.running.done || w.s.finished {
			return w.s.validateResume(req)
		}
		return nil
	}
	applyResume := func(ctx workflow.Context, req ActionRequest) (ActionResult, error) {
		if w.s.paused {
			// The watcher in runChild forwards the resume to the running child.
			msg := w.s.applyResume(ctx, req)
			return ActionResult{State: w.s.state(), Message: msg}, nil
		}
		// The parent is not paused, but the child may be (e.g. its gate paused it).
		return w.forward(ctx, SignalResume, "resume", req)
	}
	return map[string]ActionHandler{
		"approve": {Validate: validateApprove, Apply: applyApprove},
		"resume":  {Validate: validateResume, Apply: applyResume},
	}
}

// forward signals the running child with the request unchanged (identity included).
func (w *regionMove) forward(ctx workflow.Context, signal, action string, req ActionRequest) (ActionResult, error) {
	rc := w.running
	if rc == nil || rc.done {
		return ActionResult{}, errors.New("no phase is running to forward to")
	}
	if err := w.signalChild(ctx, rc, signal, req); err != nil {
		return ActionResult{}, fmt.Errorf("forward %s to %s: %w", action, rc.id, err)
	}
	msg := fmt.Sprintf("forwarded %s to phase %s (%s); it checks its own rules and records the outcome in its audit trail", action, rc.phase, rc.id)
	w.s.Audit(ctx, req.Identity, action+" forwarded", joinReason(req.Reason, rc.id), req.Step)
	return ActionResult{State: w.s.state(), Message: msg}, nil
}

func (w *regionMove) details(p Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "region move **%s → %s**\n\n| phase | state | migration |\n| --- | --- | --- |\n", w.spec.SourceRegion, w.spec.TargetRegion)
	for _, ph := range p.Phases {
		id := ph.MigrationID
		if ph.RollbackID != "" {
			id += " (undone by " + ph.RollbackID + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` |\n", ph.Name, ph.State, id)
	}
	b.WriteString("\n")
	if w.running != nil && !w.running.done {
		fmt.Fprintf(&b, "Running phase **%s**: approvals of its gates go to `%s` (or `ferry approve %s`, which forwards).\n\n", w.running.phase, w.running.id, w.id)
	}
	b.WriteString(RenderDetails(p))
	return b.String()
}

func (w *regionMove) publish(ctx workflow.Context) {
	phases := slices.Clone(w.phases)
	w.s.Update(ctx, func(p *Progress) { p.Phases = phases })
}

func (w *regionMove) setPhaseState(ctx workflow.Context, phase, state, detail string) {
	for i := range w.phases {
		if w.phases[i].Name == phase {
			w.phases[i].State = state
			if detail != "" {
				w.phases[i].Detail = detail
			}
		}
	}
	w.publish(ctx)
}

func (w *regionMove) phase(name string) *PhaseProgress {
	for i := range w.phases {
		if w.phases[i].Name == name {
			return &w.phases[i]
		}
	}
	return nil
}

func (w *regionMove) result(state, msg string) RegionMoveResult {
	return RegionMoveResult{State: state, Message: msg, Phases: slices.Clone(w.phases)}
}

func (w *regionMove) run(ctx workflow.Context) (RegionMoveResult, error) {
	res, err := w.execute(ctx)
	if err == nil {
		return res, nil
	}
	if temporal.IsCanceledError(err) || errors.Is(ctx.Err(), workflow.ErrCanceled) {
		// Cancelling stops where it is: the running child was cancelled with the parent
		// (and leaves its resource in a valid state); completed phases stay done.
		dctx, cancel := workflow.NewDisconnectedContext(ctx)
		defer cancel()
		msg := "cancelled; completed phases stay in effect: " + w.completedText()
		w.skipPending(dctx, "not started: the move was cancelled")
		w.s.Audit(dctx, SystemIdentity, "cancelled", msg, "")
		w.s.Finish(dctx, StateCancelled, msg)
		return w.result(StateCancelled, msg), err
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Type() == ErrRegionRollbackIncomplete {
		return res, err // finished with its own message
	}
	msg := "failed: " + errText(err)
	w.skipPending(ctx, "not started: the move failed before it")
	w.s.Audit(ctx, SystemIdentity, "failed", errText(err), "")
	w.s.Finish(ctx, StateFailed, msg)
	w.log.Error("region move failed", "error", err)
	return w.result(StateFailed, msg), err
}

// skipPending marks the phases that never started, so a finished move shows no phase as
// still to come. (Only the progress changes, no search attribute: replay-safe.)
func (w *regionMove) skipPending(ctx workflow.Context, why string) {
	for _, ph := range w.phases {
		if ph.State == PhasePending {
			w.setPhaseState(ctx, ph.Name, PhaseSkipped, why)
		}
	}
}

func (w *regionMove) completedText() string {
	var done []string
	for _, ph := range w.phases {
		if ph.State == PhaseCompleted {
			done = append(done, ph.Name)
		}
	}
	if len(done) == 0 {
		return "none"
	}
	return strings.Join(done, ", ")
}

func (w *regionMove) execute(ctx workflow.Context) (RegionMoveResult, error) {
	w.s.SetPhase(ctx, "plan", "planning every phase (read-only children)")
	plan, err := planRegionMove(ctx, w.spec, w.in.Name, w.id)
	if err != nil {
		return RegionMoveResult{}, err
	}
	w.plan = plan
	if w.in.PlanHash != "" && w.in.PlanHash != plan.Plan.Hash {
		msg := fmt.Sprintf("plan drifted: the plan approved had hash %s, but the state read now gives %s; run `ferry plan` again and start with the new hash",
			w.in.PlanHash, plan.Plan.Hash)
		return RegionMoveResult{}, temporal.NewNonRetryableApplicationError(msg, ErrPlanDrifted, nil)
	}
	var names, descs []string
	phases := regionPhases(w.spec)
	for i, ph := range phases {
		if i > 0 && w.spec.ApproveBetweenPhases {
			names, descs = append(names, "approve "+ph.name), append(descs, "approval before "+ph.name)
		}
		if ph.window {
			names, descs = append(names, "window "+ph.name), append(descs, "wait for the maintenance window "+windowText(*w.spec.Window))
		}
		if ph.name == PhaseDNSShift && (w.spec.AMI != nil || w.spec.Mongo != nil) {
			names, descs = append(names, "gate "+ph.name), append(descs, dnsPreconditionText(w.spec))
		}
		w.stepOf[ph.name] = len(names)
		names, descs = append(names, ph.name), append(descs, "child "+childID(w.spec, ph.name))
	}
	w.s.SetSteps(ctx, names, descs)
	w.s.Update(ctx, func(p *Progress) { p.PlanHash = plan.Plan.Hash })
	w.s.Audit(ctx, SystemIdentity, "planned", fmt.Sprintf("plan %s: %d phase(s), %d step(s)", plan.Plan.Hash, len(phases), len(plan.Plan.Steps)), "")

	for i, ph := range phases {
		if err := w.s.WaitWhilePaused(ctx); err != nil {
			return RegionMoveResult{}, err
		}
		if w.s.RollbackRequest() != nil {
			return w.unwind(ctx, "")
		}
		if i > 0 && w.spec.ApproveBetweenPhases {
			step := "approve " + ph.name
			si := slices.Index(names, step)
			w.s.SetPhase(ctx, fmt.Sprintf("phase %d/%d: %s", i+1, len(phases), ph.name), "waiting for approval to begin "+ph.name)
			w.s.StartStep(ctx, si)
			approved, err := w.s.AwaitApproval(ctx, step)
			if err != nil {
				return RegionMoveResult{}, err
			}
			if !approved {
				w.s.EndStep(ctx, si, "failed", "not approved: rollback requested")
				return w.unwind(ctx, "")
			}
			w.s.EndStep(ctx, si, "done", "")
			if err := w.s.WaitWhilePaused(ctx); err != nil {
				return RegionMoveResult{}, err
			}
		}
		if ph.window {
			si := slices.Index(names, "window "+ph.name)
			w.s.StartStep(ctx, si)
			interrupted, err := w.waitWindow(ctx, ph.name)
			if err != nil {
				return RegionMoveResult{}, err
			}
			if interrupted {
				w.s.EndStep(ctx, si, "failed", "rollback requested")
				return w.unwind(ctx, "")
			}
			w.s.EndStep(ctx, si, "done", "")
		}
		if ph.name == PhaseDNSShift && (w.spec.AMI != nil || w.spec.Mongo != nil) {
			si := slices.Index(names, "gate "+ph.name)
			w.s.StartStep(ctx, si)
			w.s.SetPhase(ctx, fmt.Sprintf("phase %d/%d: %s", i+1, len(phases), ph.name), "checking "+dnsPreconditionText(w.spec))
			if why, err := w.dnsPrecondition(ctx); err != nil {
				return RegionMoveResult{}, err
			} else if why != "" {
				w.s.EndStep(ctx, si, "failed", why)
				w.s.RequestRollback(ctx, "traffic shift not started: "+why, "gate "+ph.name)
				return w.unwind(ctx, "")
			}
			w.s.EndStep(ctx, si, "done", "")
		}
		if w.s.RollbackRequest() != nil {
			return w.unwind(ctx, "")
		}
		w.s.SetPhase(ctx, fmt.Sprintf("phase %d/%d: %s", i+1, len(phases), ph.name), "running child "+childID(w.spec, ph.name))
		w.s.StartStep(ctx, w.stepOf[ph.name])
		state, msg, err := w.runPhase(ctx, ph.name)
		if err != nil && (temporal.IsCanceledError(err) || ctx.Err() != nil) {
			return RegionMoveResult{}, err
		}
		switch {
		case err != nil:
			detail := "failed: " + errText(err)
			w.setPhaseState(ctx, ph.name, PhaseFailed, detail)
			w.s.EndStep(ctx, w.stepOf[ph.name], "failed", detail)
			w.s.RequestRollback(ctx, fmt.Sprintf("phase %s failed: %s", ph.name, errText(err)), ph.name)
			return w.unwind(ctx, ph.name)
		case state == StateCompleted:
			w.setPhaseState(ctx, ph.name, PhaseCompleted, msg)
			w.s.EndStep(ctx, w.stepOf[ph.name], "done", msg)
		case state == StateRolledBack:
			w.setPhaseState(ctx, ph.name, PhaseRolledBack, msg)
			w.s.EndStep(ctx, w.stepOf[ph.name], "rolled-back", msg)
			w.s.RequestRollback(ctx, fmt.Sprintf("phase %s rolled back: %s", ph.name, msg), ph.name)
			return w.unwind(ctx, ph.name)
		default:
			detail := fmt.Sprintf("ended %s: %s", state, msg)
			w.setPhaseState(ctx, ph.name, PhaseFailed, detail)
			w.s.EndStep(ctx, w.stepOf[ph.name], "failed", detail)
			w.s.RequestRollback(ctx, fmt.Sprintf("phase %s %s", ph.name, detail), ph.name)
			return w.unwind(ctx, ph.name)
		}
	}
	if w.s.RollbackRequest() != nil {
		// Asked while the last phase was finishing: it completed, so it is undone too.
		return w.unwind(ctx, "")
	}
	msg := fmt.Sprintf("completed: %s moved from %s to %s (%s)", w.in.Name, w.spec.SourceRegion, w.spec.TargetRegion, w.completedText())
	w.s.Audit(ctx, SystemIdentity, "completed", msg, "")
	w.s.Finish(ctx, StateCompleted, msg)
	return w.result(StateCompleted, msg), nil
}

// waitWindow holds until the maintenance window is open; true when a rollback interrupted.
// The opening is computed from workflow time in a SideEffect, so the decision is recorded
// in history and a worker with other time-zone data replays the same wait.
func (w *regionMove) waitWindow(ctx workflow.Context, phase string) (bool, error) {
	mw := *w.spec.Window
	for {
		type at struct {
			Inside bool
			Opens  time.Time
			Local  string // the opening in the window's zone, for people
			Err    string
		}
		now := workflow.Now(ctx)
		var a at
		err := workflow.SideEffect(ctx, func(workflow.Context) any {
			inside, opens, _, err := WindowAt(mw, now)
			if err != nil {
				return at{Err: err.Error()}
			}
			return at{Inside: inside, Opens: opens, Local: opens.Format("2006-01-02 15:04 MST")}
		}).Get(&a)
		if err != nil {
			return false, err
		}
		if a.Err != "" {
			return false, temporal.NewNonRetryableApplicationError(a.Err, ErrPlanInvalid, nil)
		}
		if a.Inside {
			w.s.Audit(ctx, SystemIdentity, "window open", fmt.Sprintf("maintenance window %s is open; %s may begin", windowText(mw), phase), "window "+phase)
			w.setPhaseState(ctx, phase, PhasePending, "")
			return false, nil
		}
		msg := fmt.Sprintf("waiting for maintenance window (opens at %s)", a.Local)
		w.s.SetMessage(ctx, msg)
		w.setPhaseState(ctx, phase, PhasePending, msg)
		wait := min(a.Opens.Sub(now), regionWindowPollCap)
		interrupted, err := w.s.Sleep(ctx, wait, fmt.Sprintf("%s: %s", phase, msg))
		if err != nil || interrupted {
			return interrupted, err
		}
		// A pause while waiting holds the phase even once the window opens.
		if err := w.s.WaitWhilePaused(ctx); err != nil {
			return false, err
		}
		if w.s.RollbackRequest() != nil {
			return true, nil
		}
	}
}

// dnsPrecondition checks the cross-phase gate of the traffic shift: the primary is in the
// target region now (read from the set, not only the child's word, since an election may
// have moved it since) and every copy in the target region is available. It returns why
// the gate fails, or "".
func (w *regionMove) dnsPrecondition(ctx workflow.Context) (string, error) {
	if w.spec.AMI != nil {
		if w.amiResult == nil {
			return "the AMI phase has no result", nil
		}
		n := 0
		for _, c := range w.amiResult.Copies {
			if c.Region != w.spec.TargetRegion {
				continue
			}
			n++
			if c.State != AMICopyAvailable && c.State != AMICopyShared {
				return fmt.Sprintf("copy of %s in %s is %s, not available", c.SourceImageID, c.Region, c.State), nil
			}
		}
		if n == 0 {
			return "no AMI copy in " + w.spec.TargetRegion, nil
		}
	}
	if w.spec.Mongo != nil {
		obs, err := readMongo(ctx, *w.spec.Mongo, "gate: primary of "+w.spec.Mongo.ReplicaSet+" in "+w.spec.TargetRegion+"?")
		if err != nil {
			return "", err
		}
		region := ""
		for _, m := range obs.Config.Members {
			if m.Host == obs.Primary {
				region = m.Tags[w.spec.Mongo.RegionTag]
			}
		}
		if region != w.spec.Mongo.TargetRegion {
			return fmt.Sprintf("the primary of %s is %s (%s=%q), not in %s", w.spec.Mongo.ReplicaSet, orDash(obs.Primary), w.spec.Mongo.RegionTag, region, w.spec.Mongo.TargetRegion), nil
		}
		w.s.Audit(ctx, SystemIdentity, "gate passed", fmt.Sprintf("primary %s is in %s", obs.Primary, region), "gate "+PhaseDNSShift)
	}
	return "", nil
}

func (w *regionMove) childOptions(ctx workflow.Context, id, kind, summary string) workflow.Context {
	return workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID: id,
		// A finished migration of the same resource may run again (the undo of a phase
		// reuses the phase's id); a running one makes this start fail: the lock holds.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// Cancelling (or terminating) the parent cancels the running child, which stops
		// in a valid state; the parent waits for it so its own record is complete.
		ParentClosePolicy:   enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WaitForCancellation: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			SAKind.ValueSet(kind),
			SAState.ValueSet(StateRunning),
			SAPhase.ValueSet("starting"),
			SAInitiator.ValueSet(w.in.Initiator),
			SASourceRegion.ValueSet(w.spec.SourceRegion),
			SATargetRegion.ValueSet(w.spec.TargetRegion),
			SAAwaitingApproval.ValueSet(false),
		),
		StaticSummary: summary,
		StaticDetails: fmt.Sprintf("**%s**\n\npart of region move `%s`, started by %s; reason: %s", summary, w.id, w.in.Initiator, w.in.Reason),
	})
}

// runPhase runs a phase's child and returns its final state and message.
func (w *regionMove) runPhase(ctx workflow.Context, phase string) (string, string, error) {
	id := childID(w.spec, phase)
	pin := func() string {
		if w.in.PlanHash == "" {
			return ""
		}
		return w.plan.Hashes[phase]
	}()
	name := w.in.Name + " (" + phase + ")"
	summary := fmt.Sprintf("region move %s: %s %s -> %s", w.in.Name, phase, w.spec.SourceRegion, w.spec.TargetRegion)
	switch phase {
	case PhaseAMIShare:
		cctx := w.childOptions(ctx, id, KindAMIShare, summary)
		fut := workflow.ExecuteChildWorkflow(cctx, AMIShare, AMIShareInput{
			Spec: *w.spec.AMI, Name: name, Reason: w.in.Reason, Initiator: w.in.Initiator, Approvals: w.in.Approvals, PlanHash: pin,
		})
		var r AMIShareResult
		err := w.await(ctx, phase, id, fut, &r)
		if err == nil {
			w.amiResult = &r
		}
		return r.State, r.Message, err
	case PhaseMongoPrimaryMove:
		// The set as it is before the move: undoing the phase puts the primary back on
		// this member, and the audit trail keeps the config for people.
		obs, err := readMongo(ctx, *w.spec.Mongo, "record "+w.spec.Mongo.ReplicaSet+" before the move")
		if err != nil {
			return "", "", err
		}
		w.mongoOriginalPrimary, w.mongoOriginal = obs.Primary, obs.Config.Members
		w.s.Audit(ctx, SystemIdentity, "recorded set", fmt.Sprintf("%s config v%d before the move: primary %s; %s",
			w.spec.Mongo.ReplicaSet, obs.Config.Version, orDash(obs.Primary), activities.DescribeMembers(obs.Config.Members)), phase)
		cctx := w.childOptions(ctx, id, KindMongoPrimaryMove, summary)
		fut := workflow.ExecuteChildWorkflow(cctx, MongoPrimaryMove, MongoPrimaryMoveInput{
			Spec: *w.spec.Mongo, Name: name, Reason: w.in.Reason, Initiator: w.in.Initiator, Approvals: w.in.Approvals, PlanHash: pin,
		})
		var r MongoPrimaryMoveResult
		err = w.await(ctx, phase, id, fut, &r)
		if err == nil {
			w.mongoResult = &r
		}
		return r.State, r.Message, err
	case PhaseDNSShift:
		cctx := w.childOptions(ctx, id, KindDNSShift, summary)
		fut := workflow.ExecuteChildWorkflow(cctx, DNSShift, DNSShiftInput{
			Spec: *w.spec.DNS, Name: name, Reason: w.in.Reason, Initiator: w.in.Initiator, Approvals: w.in.Approvals, PlanHash: pin,
		})
		var r DNSShiftResult
		err := w.await(ctx, phase, id, fut, &r)
		return r.State, r.Message, err
	}
	return "", "", fmt.Errorf("unknown phase %q", phase)
}

// await waits for a child while forwarding the parent's rollback, pause and resume to it:
// a rollback requested while a phase runs is the phase's own rollback first (the child
// knows how to undo its partial work), then the parent unwinds the earlier phases.
func (w *regionMove) await(ctx workflow.Context, phase, id string, fut workflow.ChildWorkflowFuture, out any) error {
	rc := &runningChild{phase: phase, id: id, fut: fut}
	w.running = rc
	w.setPhaseState(ctx, phase, PhaseRunning, "")
	defer func() {
		rc.done = true
		w.running = nil
		w.publish(ctx)
	}()
	var err error
	workflow.Go(ctx, func(gctx workflow.Context) {
		err = fut.Get(gctx, out)
		rc.done = true
	})
	rollbackSent := false
	w.forwardedPause = false
	for {
		if werr := workflow.Await(ctx, func() bool {
			return rc.done || (!rollbackSent && w.s.RollbackRequest() != nil) || w.s.Paused() != w.forwardedPause
		}); werr != nil {
			// Cancelled: the child is cancelled with the parent's context; wait for it
			// (WaitForCancellation) so the phase's record is final.
			dctx, cancel := workflow.NewDisconnectedContext(ctx)
			defer cancel()
			_ = workflow.Await(dctx, func() bool { return rc.done })
			return werr
		}
		if rc.done {
			return err
		}
		if !rollbackSent && w.s.RollbackRequest() != nil {
			req := *w.s.RollbackRequest()
			rollbackSent = true
			w.setPhaseState(ctx, phase, PhaseRollingBack, "")
			if serr := w.signalChild(ctx, rc, SignalRollback, req); serr != nil && !rc.done {
				w.log.Warn("forward rollback", "child", id, "error", serr)
			}
			w.s.Audit(ctx, SystemIdentity, "rollback forwarded", "to running phase "+phase+" ("+id+")", phase)
			continue
		}
		if w.s.Paused() != w.forwardedPause {
			w.forwardedPause = w.s.Paused()
			sig, action := SignalPause, "pause"
			if !w.forwardedPause {
				sig, action = SignalResume, "resume"
			}
			req := w.lastAction(action)
			if serr := w.signalChild(ctx, rc, sig, req); serr != nil && !rc.done {
				w.log.Warn("forward "+action, "child", id, "error", serr)
			}
			w.s.Audit(ctx, req.Identity, action+" forwarded", "to running phase "+phase+" ("+id+")", phase)
		}
	}
}

// signalChild signals the running child. Its id is the resource lock, so the current run
// of that id is this child once it has started; before that the signal fails (no other
// run can be running under the id) and is sent again once the start is recorded.
func (w *regionMove) signalChild(ctx workflow.Context, rc *runningChild, signal string, req ActionRequest) error {
	exec := rc.fut.GetChildWorkflowExecution()
	runID := ""
	if exec.IsReady() {
		var e workflow.Execution
		if err := exec.Get(ctx, &e); err != nil {
			return err
		}
		runID = e.RunID
	}
	err := workflow.SignalExternalWorkflow(ctx, rc.id, runID, signal, req).Get(ctx, nil)
	if err == nil || rc.done || runID != "" {
		return err
	}
	if aerr := workflow.Await(ctx, func() bool { return exec.IsReady() || rc.done }); aerr != nil || rc.done {
		return err
	}
	var e workflow.Execution
	if gerr := exec.Get(ctx, &e); gerr != nil {
		return gerr
	}
	return workflow.SignalExternalWorkflow(ctx, rc.id, e.RunID, signal, req).Get(ctx, nil)
}

// lastAction returns the latest audited request of action, so a forwarded signal carries
// the identity and reason of who sent it to the parent.
func (w *regionMove) lastAction(action string) ActionRequest {
	for i := len(w.s.p.Audit) - 1; i >= 0; i-- {
		e := w.s.p.Audit[i]
		if e.Action == action {
			return ActionRequest{Identity: e.Identity, Reason: e.Reason, Step: e.Step}
		}
	}
	return ActionRequest{Identity: SystemIdentity, Reason: "forwarded by the region move"}
}

// --- unwinding -------------------------------------------------------------------------------

// unwind undoes the completed phases in reverse: traffic back first, then the primary,
// then the copies. It stops at the first phase it cannot undo, saying what is still in
// effect. failed names the phase that ended the forward run, if any (it undid itself or
// failed; either way it is not undone again).
func (w *regionMove) unwind(ctx workflow.Context, failed string) (RegionMoveResult, error) {
	req := w.s.RollbackRequest()
	why := "rollback"
	if req != nil {
		why = fmt.Sprintf("rollback by %s: %s", req.Identity, req.Reason)
	}
	w.s.BeginRollback(ctx)
	w.rollingBack = true
	w.skipPending(ctx, "not started: rolled back before it")
	var done []string
	for i := len(w.phases) - 1; i >= 0; i-- {
		ph := w.phases[i]
		if ph.State != PhaseCompleted {
			continue
		}
		w.s.SetPhase(ctx, "rollback: "+ph.Name, why)
		w.setPhaseState(ctx, ph.Name, PhaseRollingBack, "")
		w.s.Audit(ctx, SystemIdentity, "undo phase", ph.Name, ph.Name)
		detail, err := w.undo(ctx, ph.Name)
		if err != nil {
			if temporal.IsCanceledError(err) || ctx.Err() != nil {
				return RegionMoveResult{}, err
			}
			var still []string
			for j := i; j >= 0; j-- {
				if w.phases[j].State == PhaseCompleted || w.phases[j].State == PhaseRollingBack {
					still = append(still, w.phases[j].Name)
				}
			}
			w.setPhaseState(ctx, ph.Name, PhaseFailed, "undo failed: "+errText(err))
			msg := fmt.Sprintf("rollback stopped at %s: %s; still in effect: %s; undone: %s; fix the cause and roll back the remaining phases by hand or start the move again",
				ph.Name, errText(err), strings.Join(still, ", "), orNone(done))
			w.s.Audit(ctx, SystemIdentity, "rollback incomplete", msg, ph.Name)
			w.s.Finish(ctx, StateFailed, msg)
			res := w.result(StateFailed, msg)
			return res, temporal.NewNonRetryableApplicationError(msg, ErrRegionRollbackIncomplete, nil, res)
		}
		w.setPhaseState(ctx, ph.Name, PhaseRolledBack, detail)
		if si, ok := w.stepOf[ph.Name]; ok {
			w.s.EndStep(ctx, si, "rolled-back", detail)
		}
		done = append(done, ph.Name)
	}
	msg := fmt.Sprintf("rolled back (%s); undone: %s", why, orNone(done))
	if failed != "" {
		msg = fmt.Sprintf("rolled back after phase %s ended (%s); undone: %s", failed, why, orNone(done))
	}
	w.s.Audit(ctx, SystemIdentity, "rolled back", msg, "")
	w.s.Finish(ctx, StateRolledBack, msg)
	return w.result(StateRolledBack, msg), nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// undo reverses one completed phase and returns what it did.
func (w *regionMove) undo(ctx workflow.Context, phase string) (string, error) {
	switch phase {
	case PhaseDNSShift:
		return w.undoDNS(ctx)
	case PhaseMongoPrimaryMove:
		return w.undoMongo(ctx)
	case PhaseAMIShare:
		return w.undoAMI(ctx)
	}
	return "", fmt.Errorf("unknown phase %q", phase)
}

// ReverseDNSShiftSpec is the spec that takes traffic back: from and to swapped, no gates
// (they watch the region being left) and no approvals (a rollback must not stall). An
// immediate rollback moves everything in one batch; a gradual one retraces the original
// schedule in reverse with the same bake time.
func ReverseDNSShiftSpec(s DNSShiftSpec) DNSShiftSpec {
	r := s
	r.From, r.To = s.To, s.From
	r.Gates, r.GateInterval = nil, 0
	r.OnGateFailure = OnGateFailRollback
	r.RollbackMode = RollbackImmediate
	r.Percents = []int{100}
	if s.RollbackMode == RollbackGradual {
		var ps []int
		for i := len(s.Percents) - 2; i >= 0; i-- {
			ps = append(ps, 100-s.Percents[i])
		}
		r.Percents = append(ps, 100)
	} else {
		r.BakeTime = 0
	}
	r.ApproveAfter = make([]bool, len(r.Percents))
	return r
}

func (w *regionMove) undoDNS(ctx workflow.Context) (string, error) {
	id := childID(w.spec, PhaseDNSShift)
	w.phase(PhaseDNSShift).RollbackID = id
	rs := ReverseDNSShiftSpec(*w.spec.DNS)
	cctx := w.childOptions(ctx, id, KindDNSShift, fmt.Sprintf("region move %s rollback: traffic back %s -> %s", w.in.Name, rs.From, rs.To))
	var r DNSShiftResult
	err := workflow.ExecuteChildWorkflow(cctx, DNSShift, DNSShiftInput{
		Spec: rs, Name: w.in.Name + " (rollback dns-shift)", Reason: "rollback of region move " + w.id,
		Initiator: w.in.Initiator, Approvals: w.in.Approvals,
	}).Get(ctx, &r)
	if err != nil {
		return "", err
	}
	if r.State != StateCompleted {
		return "", fmt.Errorf("traffic back to %s ended %s: %s", rs.To, r.State, r.Message)
	}
	return fmt.Sprintf("traffic back: %s=%d %s=%d", rs.From, r.FromWeight, rs.To, r.ToWeight), nil
}

func (w *regionMove) undoMongo(ctx workflow.Context) (string, error) {
	spec := *w.spec.Mongo
	if len(w.mongoOriginal) == 0 {
		return "", fmt.Errorf("no config of %s was recorded before the phase; nothing to restore", spec.ReplicaSet)
	}
	id := childID(w.spec, PhaseMongoPrimaryMove)
	w.phase(PhaseMongoPrimaryMove).RollbackID = id
	cctx := w.childOptions(ctx, id, KindMongoPrimaryMove, fmt.Sprintf("region move %s rollback: restore %s with primary %s", w.in.Name, spec.ReplicaSet, w.mongoOriginalPrimary))
	// The MongoDB workflow's restore mode runs its own rollback planner from the set as it
	// is now back to the recorded config: votes one per reconfig, the primary moved back,
	// the members the phase added removed last.
	var r MongoPrimaryMoveResult
	err := workflow.ExecuteChildWorkflow(cctx, MongoPrimaryMove, MongoPrimaryMoveInput{
		Spec: spec, Name: w.in.Name + " (rollback mongo-primary-move)", Reason: "rollback of region move " + w.id,
		Initiator: w.in.Initiator, Approvals: w.in.Approvals,
		Restore: &MongoRestore{Members: w.mongoOriginal, Primary: w.mongoOriginalPrimary},
	}).Get(ctx, &r)
	if err != nil {
		return "", err
	}
	if r.State != StateCompleted {
		return "", fmt.Errorf("restore of %s ended %s: %s", spec.ReplicaSet, r.State, r.Message)
	}
	return fmt.Sprintf("%s restored: %s", spec.ReplicaSet, r.Message), nil
}

// undoAMI removes the images the AMI phase made, as its result lists them (copies in the
// target regions, and images it created from instances in the source region), with the
// AMI workflow's own idempotent activity. The migration tag guard is the AMI child's id,
// so an image another migration owns is never deleted.
func (w *regionMove) undoAMI(ctx workflow.Context) (string, error) {
	if w.amiResult == nil {
		return "nothing recorded", nil
	}
	mid := childID(w.spec, PhaseAMIShare)
	type item struct{ region, image string }
	var items []item
	seen := map[item]bool{}
	add := func(it item) {
		if it.image != "" && !seen[it] {
			seen[it] = true
			items = append(items, it)
		}
	}
	for _, c := range w.amiResult.Copies {
		if c.State == AMICopyRolledBack || c.State == AMICopyFailed {
			continue
		}
		add(item{c.Region, c.ImageID})
	}
	// Images made from instances go last: the copies were made from them.
	for _, c := range w.amiResult.Copies {
		if c.SourceInstanceID != "" {
			add(item{w.spec.AMI.SourceRegion, c.SourceImageID})
		}
	}
	for _, it := range items {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 2 * time.Minute,
			HeartbeatTimeout:    30 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10},
			Summary:             fmt.Sprintf("region move rollback: remove %s in %s", it.image, it.region),
		})
		if err := workflow.ExecuteActivity(actx, ec2a.DeleteAMICopy, activities.DeleteAMICopyInput{
			Region: it.region, ImageID: it.image, MigrationID: mid,
		}).Get(ctx, nil); err != nil {
			return "", err
		}
		w.s.Audit(ctx, SystemIdentity, "removed image", fmt.Sprintf("%s in %s", it.image, it.region), PhaseAMIShare)
	}
	return fmt.Sprintf("removed %d image(s) and their snapshots", len(items)), nil
}
