package workflows

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Error types of the region move's own non-retryable failures.
const (
	// ErrRegionRollbackIncomplete is an unwinding that stopped at a phase it could not
	// undo; the message says which phases are still in effect.
	ErrRegionRollbackIncomplete = "RegionRollbackIncomplete"
	// ErrRegionNoPhase refuses a move with no phase at all.
	ErrRegionNoPhase = "RegionNoPhase"
	// ErrRegionPhaseFailed is a phase that failed; the move then undoes every phase that
	// changed anything, the failed one included.
	ErrRegionPhaseFailed = "RegionPhaseFailed"
)

// RegionMove moves an application from one region to another by running other kinds as
// child workflows, in order: AMI share -> MongoDB primary move -> DNS shift. Launching
// instances from the copied AMIs and decommissioning the old region are not part of it yet.
//
// Before anything changes it plans every phase (read-only children) and, when PlanHash is
// set, refuses on drift. Between phases it can wait for approval; the MongoDB and DNS
// phases begin only inside the maintenance window; the DNS phase begins only once the
// primary is verified in the target region and the copied AMIs are available there.
//
// Each phase runs with OnFailureLeave and reports what it changed (its Changes), on
// success and on failure alike. A rollback (asked for, or a phase that fails or rolls
// itself back) undoes every phase that still has changes in effect, in reverse, each by
// running that kind's undo as a child: traffic back first, then the primary, then the
// copies. Approve, pause and resume sent to the parent reach the running child.
func RegionMove(ctx workflow.Context, in RegionMoveInput) (RegionMoveResult, error) {
	w := &regionMove{}
	if err := w.setup(ctx, in); err != nil {
		return RegionMoveResult{Outcome: Outcome{State: StateFailed, Message: err.Error()}}, err
	}
	return runKind[RegionMoveResult](ctx, "region move", w)
}

type regionMove struct {
	in     RegionMoveInput
	spec   RegionMoveSpec
	id     string
	owner  owner
	s      *Steering
	log    log.Logger
	plan   regionPlan
	phases []PhaseProgress
	// stepOf is the index of each phase's own entry in the step list.
	stepOf map[string]int

	// changes is what each phase reported it changed, by phase name: the compensation
	// recorded with each step. Unwinding undoes exactly these.
	phaseChanges map[string]Changes
	// results holds each completed phase's result as the child returned it; only the
	// traffic shift's precondition reads one (the copies' states).
	results map[string]json.RawMessage

	running *runningChild
	// blockedBy is the child whose blocked state the move shows, or "".
	blockedBy string
}

func (w *regionMove) setup(ctx workflow.Context, in RegionMoveInput) error {
	w.in, w.spec = in, in.Spec
	w.id = workflow.GetInfo(ctx).WorkflowExecution.ID
	w.owner = ownerOf(ctx, in.Undo)
	w.log = log.With(workflow.GetLogger(ctx), "migration", w.id)
	w.stepOf, w.phaseChanges, w.results = map[string]int{}, map[string]Changes{}, map[string]json.RawMessage{}
	if in.Undo != nil {
		rec, err := decodeRecord[regionUndoRecord](in.Undo)
		if err != nil {
			return err
		}
		w.spec = rec.Spec
		for _, pc := range rec.Phases {
			w.phaseChanges[pc.Phase] = pc.Changes
		}
	}
	for _, ph := range regionPhases(w.spec) {
		w.phases = append(w.phases, PhaseProgress{Name: ph.name, MigrationID: ph.id(), State: PhasePending})
	}
	s, err := NewSteering(ctx, SteeringOptions{
		Kind:      KindRegionMove,
		Initiator: in.Initiator,
		PlanHash:  in.PlanHash,
		Approvals: in.Approvals,
		Start:     in.StartProof, StartDigest: StartDigest(in),
		Logger:  w.log,
		Details: w.details,
		Actions: w.forwardingActions(),
	})
	if err != nil {
		return err
	}
	w.s = s
	w.watchPhaseBlocks(ctx)
	// Whoever started the move may not have set these (a child, `temporal workflow
	// start`); they are what the Temporal UI filters on.
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		SAKind.ValueSet(KindRegionMove),
		SASourceRegion.ValueSet(w.spec.SourceRegion),
		SATargetRegions.ValueSet(regionMoveTargets(w.spec)),
		SAInitiator.ValueSet(in.Initiator),
	); err != nil {
		w.log.Warn("upsert search attributes", "error", err)
	}
	w.publish(ctx)
	return nil
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
	if ph := w.phase(phase); ph != nil {
		ph.State = state
		if detail != "" {
			ph.Detail = detail
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

func (w *regionMove) resultOf(o Outcome) RegionMoveResult {
	return RegionMoveResult{Outcome: o, Phases: slices.Clone(w.phases)}
}

func (w *regionMove) steering() *Steering { return w.s }
func (w *regionMove) common() Common      { return w.in.Common }

// undoRecorded is an undo run: the phases' records came in through setup.
func (w *regionMove) undoRecorded(ctx workflow.Context) (RegionMoveResult, error) {
	return w.unwind(ctx)
}

// rollback undoes the move's own changes in place: every phase with changes in effect.
func (w *regionMove) rollback(ctx workflow.Context) (RegionMoveResult, error) { return w.unwind(ctx) }

// skipPending marks the phases that never started, so a finished move shows no phase as
// still to come. (Only the progress changes, no search attribute: replay-safe.)
func (w *regionMove) skipPending(ctx workflow.Context, why string) {
	for _, ph := range w.phases {
		if ph.State == PhasePending {
			w.setPhaseState(ctx, ph.Name, PhaseSkipped, why)
		}
	}
}

func (w *regionMove) execute(ctx workflow.Context) (_ RegionMoveResult, err error) {
	defer func() {
		if err != nil {
			// A move that ends early shows the phases it never began as skipped.
			dctx, cancel := workflow.NewDisconnectedContext(ctx)
			defer cancel()
			w.skipPending(dctx, "not started: the move ended before it")
		}
	}()
	w.s.SetPhase(ctx, "plan", "planning every phase (read-only children)")
	plan, err := planRegionMove(ctx, w.spec, w.in.Name, w.id)
	if err != nil {
		return RegionMoveResult{}, err
	}
	w.plan = plan
	if err := checkDrift(w.in.PlanHash, plan.Plan.Hash, "", regionMovePlanHashV1(w.spec, plan.children)); err != nil {
		return RegionMoveResult{}, err
	}
	// Every phase's resources are held from here to the move's end, so nothing else can
	// change them between phases (and an undo hours later restores what the move saw).
	if err := holdLocks(ctx, w.s, w.in.Common, plan.Plan.Resources); err != nil {
		return RegionMoveResult{}, err
	}
	phases := regionPhases(w.spec)
	var names, descs []string
	for i, ph := range phases {
		for _, g := range regionGateSteps(w.spec, i, ph) {
			names, descs = append(names, g.name), append(descs, g.desc)
		}
		w.stepOf[ph.name] = len(names)
		names, descs = append(names, ph.name), append(descs, "child "+ph.id())
	}
	w.s.SetSteps(ctx, names, descs)
	w.s.Update(ctx, func(p *Progress) { p.PlanHash = plan.Plan.Hash })
	w.s.Audit(ctx, SystemIdentity, "planned", fmt.Sprintf("plan %s: %d phase(s), %d step(s)", plan.Plan.Hash, len(phases), len(plan.Plan.Steps)), "")

	for i, ph := range phases {
		label := fmt.Sprintf("phase %d/%d: %s", i+1, len(phases), ph.name)
		if err := w.s.WaitWhilePaused(ctx); err != nil {
			return RegionMoveResult{}, err
		}
		if w.s.RollbackRequest() != nil {
			return w.unwind(ctx)
		}
		for _, g := range regionGateSteps(w.spec, i, ph) {
			si := slices.Index(names, g.name)
			w.s.StartStep(ctx, si)
			why, err := w.holdAt(ctx, g, ph, label)
			if err != nil {
				return RegionMoveResult{}, err
			}
			if why != "" {
				w.s.EndStep(ctx, si, StepFailed, why)
				w.s.RequestRollback(ctx, why, g.name)
				return w.unwind(ctx)
			}
			w.s.EndStep(ctx, si, StepDone, "")
		}
		if w.s.RollbackRequest() != nil {
			return w.unwind(ctx)
		}
		w.s.SetPhase(ctx, label, "running child "+ph.id())
		w.s.StartStep(ctx, w.stepOf[ph.name])
		out, err := w.runPhase(ctx, ph)
		if err != nil && (temporal.IsCanceledError(err) || ctx.Err() != nil) {
			return RegionMoveResult{}, err
		}
		if err != nil {
			line := failureLine(err)
			if out.Failure != "" {
				line = out.Failure // the child's own line, without its "failed:" and in-effect parts
			}
			w.setPhaseState(ctx, ph.name, PhaseFailed, "failed: "+line)
			w.s.EndStep(ctx, w.stepOf[ph.name], StepFailed, line)
			w.s.AuditDetails(ctx, SystemIdentity, "phase failed", line, ph.name, err.Error())
			// The run's end undoes every phase with changes in effect, this one included
			// (unless this move itself was asked to leave them to its own parent).
			return RegionMoveResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("phase %s: %s", ph.name, line), ErrRegionPhaseFailed, nil)
		}
		switch out.State {
		case StateCompleted:
			w.setPhaseState(ctx, ph.name, PhaseCompleted, out.Message)
			w.s.EndStep(ctx, w.stepOf[ph.name], StepDone, out.Message)
		case StateRolledBack:
			w.setPhaseState(ctx, ph.name, PhaseRolledBack, out.Message)
			w.s.EndStep(ctx, w.stepOf[ph.name], StepRolledBack, out.Message)
			w.s.RequestRollback(ctx, fmt.Sprintf("phase %s rolled back: %s", ph.name, out.Message), ph.name)
			return w.unwind(ctx)
		default:
			return RegionMoveResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("phase %s ended %s: %s", ph.name, out.State, out.Message), ErrRegionPhaseFailed, nil)
		}
	}
	if w.s.RollbackRequest() != nil {
		// Asked while the last phase was finishing: it completed, so it is undone too.
		return w.unwind(ctx)
	}
	msg := fmt.Sprintf("completed: %s moved from %s to %s (%s)", w.in.Name, w.spec.SourceRegion, w.spec.TargetRegion, w.phasesIn(PhaseCompleted))
	w.s.Audit(ctx, SystemIdentity, "completed", msg, "")
	w.s.Finish(ctx, StateCompleted, msg)
	return w.resultOf(Outcome{State: StateCompleted, Message: msg, Changes: w.changes()}), nil
}

// holdAt holds at one of the move's own gates before a phase. It returns why the move
// must not go on (a rollback was asked for, the precondition failed), or "".
func (w *regionMove) holdAt(ctx workflow.Context, g regionGate, ph regionPhase, label string) (string, error) {
	switch g.kind {
	case "approve":
		w.s.SetPhase(ctx, label, "waiting for approval to begin "+ph.name)
		approved, err := w.s.AwaitApproval(ctx, g.name)
		if err != nil || !approved {
			return "not approved: rollback requested", err
		}
		return "", w.s.WaitWhilePaused(ctx)
	case "window":
		interrupted, err := w.waitWindow(ctx, ph.name)
		if err != nil || interrupted {
			return "rollback requested", err
		}
	case "gate":
		w.s.SetPhase(ctx, label, "checking "+dnsPreconditionText(w.spec))
		why, err := w.dnsPrecondition(ctx)
		if why != "" {
			why = "traffic shift not started: " + why
		}
		return why, err
	}
	return "", nil
}

// childOptions are the options of a child that runs or undoes a phase.
// childOptions starts a phase's child (or its undo) with kind's search attributes for
// input in: its own regions (an AMI phase may share to more than the move's target).
func (w *regionMove) childOptions(ctx workflow.Context, id string, kind *KindDef, in any, summary string) workflow.Context {
	source, targets := kind.Regions(in)
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
			SAKind.ValueSet(kind.Name),
			SAState.ValueSet(StateRunning),
			SAPhase.ValueSet("starting"),
			SAInitiator.ValueSet(w.in.Initiator),
			SASourceRegion.ValueSet(source),
			SATargetRegions.ValueSet(targets),
			SAAwaitingApproval.ValueSet(false),
		),
		StaticSummary: summary,
		StaticDetails: fmt.Sprintf("**%s**\n\npart of region move `%s`, started by %s; reason: %s", summary, w.id, w.in.Initiator, w.in.Reason),
	})
}

// runPhase runs a phase's child and records what it reports it changed, whether it
// completed or failed (a failed kind attaches its result to its error).
func (w *regionMove) runPhase(ctx workflow.Context, ph regionPhase) (Outcome, error) {
	pin := ""
	if w.in.PlanHash != "" {
		pin = w.plan.Hashes[ph.name]
	}
	in := ph.input(Common{
		Name: w.in.Name + " (" + ph.name + ")", Reason: w.in.Reason, Initiator: w.in.Initiator,
		Approvals: w.in.Approvals, PlanHash: pin, OnFailure: OnFailureLeave, LockedBy: w.id,
		Budgets: w.in.Budgets, // a phase holds and retries on the move's budgets
	})
	summary := fmt.Sprintf("region move %s: %s %s -> %s", w.in.Name, ph.name, w.spec.SourceRegion, w.spec.TargetRegion)
	cctx := w.childOptions(ctx, ph.id(), ph.kind, in, summary)
	fut := workflow.ExecuteChildWorkflow(cctx, ph.kind.WorkflowName, in)
	var raw json.RawMessage
	err := w.await(ctx, ph.name, ph.id(), fut, &raw)
	var out Outcome
	if err == nil {
		if derr := json.Unmarshal(raw, &out); derr != nil {
			return out, temporal.NewNonRetryableApplicationError("read the result of "+ph.id()+": "+derr.Error(), ErrPlanInvalid, derr)
		}
		w.results[ph.name] = raw
	} else if o, ok := outcomeOf(err); ok {
		out = o
	} else {
		// No report: the child died without one (terminated, timed out). What it changed
		// is unknown, which the unwinding says rather than guessing.
		w.phaseChanges[ph.name] = Changes{Kind: ph.kind.Name, ID: ph.id(), InEffect: "unknown: " + ph.id() + " ended without a change report (" + failureLine(err) + "); check it by hand"}
		return out, err
	}
	w.phaseChanges[ph.name] = out.Changes
	return out, err
}

// dnsPrecondition checks the cross-phase gate of the traffic shift: the primary is in the
// target region now (read from the set, not only the child's word, since an election may
// have moved it since) and every copy in the target region is available. It returns why
// the gate fails, or "".
func (w *regionMove) dnsPrecondition(ctx workflow.Context) (string, error) {
	if w.spec.AMI != nil {
		var r AMIShareResult
		if raw, ok := w.results[PhaseAMIShare]; !ok || json.Unmarshal(raw, &r) != nil {
			return "the AMI phase has no result", nil
		}
		n := 0
		for _, c := range r.Copies {
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

// phasesIn lists the phases in state, for messages.
func (w *regionMove) phasesIn(state string) string {
	var names []string
	for _, ph := range w.phases {
		if ph.State == state {
			names = append(names, ph.Name)
		}
	}
	return orNone(names)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
