package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// unwind undoes, in reverse order, every phase that reported changes in effect: the failed
// phase and the completed ones alike, each by running that kind's undo as a child under the
// phase's own lock. It stops at the first undo that fails, and its error names what is still
// in effect (the run's end turns that into the final message).
func (w *regionMove) unwind(ctx workflow.Context) (RegionMoveResult, error) {
	why := w.s.BeginRollback(ctx)
	w.skipPending(ctx, "not started: rolled back before it")
	phases := regionPhases(w.spec)
	var undone []string
	for i := len(phases) - 1; i >= 0; i-- {
		ph := phases[i]
		ch, ok := w.phaseChanges[ph.name]
		if !ok || ch.None() {
			continue
		}
		w.s.SetPhase(ctx, "rollback: "+ph.name, why)
		w.setPhaseState(ctx, ph.name, PhaseRollingBack, "")
		w.s.Audit(ctx, SystemIdentity, "undo phase", ph.name+": "+ch.InEffect, ph.name)
		detail, err := w.undoPhase(ctx, ph, ch)
		if err != nil {
			if temporal.IsCanceledError(err) || ctx.Err() != nil {
				return RegionMoveResult{}, err
			}
			line := failureLine(err)
			w.setPhaseState(ctx, ph.name, PhaseFailed, "undo failed: "+line)
			return RegionMoveResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("undo of phase %s stopped: %s; undone before it: %s", ph.name, line, orNone(undone)),
				ErrRegionRollbackIncomplete, err)
		}
		delete(w.phaseChanges, ph.name)
		w.setPhaseState(ctx, ph.name, PhaseRolledBack, detail)
		if si, ok := w.stepOf[ph.name]; ok {
			w.s.EndStep(ctx, si, StepRolledBack, detail)
		}
		undone = append(undone, ph.name)
	}
	msg := fmt.Sprintf("rolled back (%s); undone: %s", why, orNone(undone))
	w.s.Audit(ctx, SystemIdentity, "rolled back", msg, "")
	w.s.Finish(ctx, StateRolledBack, msg)
	return w.resultOf(Outcome{State: StateRolledBack, Message: msg, Changes: w.changes()}), nil
}

// undoPhase runs the phase kind's undo of ch as a child and returns what it did. The undo
// child reports what it could not undo, which replaces the phase's record.
func (w *regionMove) undoPhase(ctx workflow.Context, ph regionPhase, ch Changes) (string, error) {
	if len(ch.Record) == 0 {
		return "", temporal.NewNonRetryableApplicationError(ch.InEffect, ErrRegionRollbackIncomplete, nil)
	}
	w.phase(ph.name).RollbackID = ch.ID
	in := ph.kind.UndoInput(ch, Common{
		Name: w.in.Name + " (undo " + ph.name + ")", Reason: "rollback of region move " + w.id,
		Initiator: w.in.Initiator, Approvals: w.in.Approvals, OnFailure: OnFailureLeave, LockedBy: w.id,
		Budgets: w.in.Budgets,
	})
	cctx := w.childOptions(ctx, ch.ID, ph.kind, in, fmt.Sprintf("region move %s rollback: undo %s", w.in.Name, ph.name))
	var out Outcome
	err := workflow.ExecuteChildWorkflow(cctx, ph.kind.WorkflowName, in).Get(ctx, &out)
	if w.blockedBy == ch.ID {
		// The undo child ended while it showed blocked here: so did its block.
		w.blockedBy = ""
		w.s.Unblock(ctx, "undo of "+ph.name)
	}
	if err != nil {
		if o, ok := outcomeOf(err); ok {
			w.phaseChanges[ph.name] = o.Changes
			if o.Failure != "" {
				return "", temporal.NewNonRetryableApplicationError(o.Failure, ErrRegionRollbackIncomplete, nil)
			}
		}
		return "", err
	}
	if out.State != StateRolledBack {
		w.phaseChanges[ph.name] = out.Changes
		return "", fmt.Errorf("undo of %s ended %s: %s", ch.ID, out.State, out.Message)
	}
	return out.Message, nil
}
