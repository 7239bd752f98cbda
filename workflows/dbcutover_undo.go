package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// The cutover's undo. Before the point of no return it unfreezes the source at once
// (fencing the target first if a promote was sent) and puts the maintenance record back:
// nothing else changed. After it, it is the same switch in the other direction: freeze the
// target, let the source catch up, promote the source, make the target replicate from it,
// point the database's name back, maintenance page off.

func (w *dbCutover) undoRecorded(ctx workflow.Context) (DBCutoverResult, error) {
	return w.rollback(ctx)
}

func (w *dbCutover) rollback(ctx workflow.Context) (DBCutoverResult, error) {
	why := w.s.BeginRollback(ctx)
	w.log.Info("rolling back", "reason", why)
	err := keepTrying(ctx, w.s, w.in.budgets(), "rollback", w.unwind)
	if err != nil {
		return DBCutoverResult{}, err
	}
	w.rec.Restored = true
	w.publish(ctx)
	w.s.MarkRolledBack(ctx)
	msg := fmt.Sprintf("rolled back: %s is the primary and the application writes to it (%s)", w.primary, why)
	if len(w.notes) > 0 {
		msg += "; " + strings.Join(w.notes, "; ")
	}
	w.s.Audit(ctx, SystemIdentity, "rolled back", msg, "")
	w.s.Finish(ctx, StateRolledBack, msg)
	return w.res(StateRolledBack, msg), nil
}

// unwind brings everything back; each part is idempotent and recorded as it is done, so
// a retry (keepTrying) starts where the last attempt stopped. What it could not check it
// notes for people (w.notes).
func (w *dbCutover) unwind(ctx workflow.Context) error {
	spec := w.spec
	src, tgt := dbConn(spec, spec.Source), dbConn(spec, spec.Target)
	if w.rec.Promoted {
		w.s.SetPhase(ctx, "rollback: switch back", fmt.Sprintf("%s -> %s", spec.Target, spec.Source))
		if err := w.switchBack(ctx, src, tgt); err != nil {
			return err
		}
	} else if w.rec.PromoteAttempted {
		// The promote's answer never came: the target may be writable. Fence it (read_only,
		// replicating from the source again) before the source takes writes; a target that
		// cannot be reached is reported, not waited for: the freeze must end now.
		w.s.SetPhase(ctx, "rollback: fence target", spec.Target)
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts("fence "+spec.Target, 5*time.Second)),
			mysqlActs.DBReplicate, activities.DBReplicateInput{Server: tgt, Source: spec.Source, ReplUser: spec.ReplUser,
				ReplPassword: activities.Secret{Env: spec.ReplPassword.Env, File: spec.ReplPassword.File}}).Get(ctx, nil)
		if err != nil {
			w.notes = append(w.notes, fmt.Sprintf("the target %s could not be fenced (%s): if it comes back, make it read_only and a replica of %s before anything writes to it", spec.Target, failureLine(err), spec.Source))
		}
		w.rec.PromoteAttempted = false
	}
	if w.rec.ReattachTarget {
		w.s.SetPhase(ctx, "rollback: target back to replica", spec.Target)
		if err := w.reattachTarget(ctx, tgt); err != nil {
			return err
		}
	}
	if w.rec.Frozen && !w.rec.Promoted {
		w.s.SetPhase(ctx, "rollback: unfreeze", spec.Source)
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts("unfreeze "+spec.Source, 10*time.Second)),
			mysqlActs.DBUnfreeze, activities.DBUnfreezeInput{Server: src, AppUser: spec.AppUser, AppUserHost: spec.AppUserHost}).Get(ctx, nil); err != nil {
			return err
		}
		w.rec.Frozen = false
		w.primary = spec.Source
		w.s.Audit(ctx, SystemIdentity, "unfrozen", spec.Source+" writable again, "+spec.AppUser+" unlocked", "")
		w.publish(ctx)
	}
	if w.rec.repointed() {
		w.s.SetPhase(ctx, "rollback: repoint back", w.rec.DBBefore.Name)
		if err := w.setRecord(ctx, false, w.rec.DBZoneID, w.rec.DBBefore, w.rec.DBBefore.Values, &w.rec.DBNow); err != nil {
			return err
		}
	}
	if w.rec.maintenanceOn() {
		w.s.SetPhase(ctx, "rollback: maintenance page off", w.rec.MaintBefore.Name)
		if err := w.setRecord(ctx, false, w.rec.MaintZoneID, w.rec.MaintBefore, w.rec.MaintBefore.Values, &w.rec.MaintNow); err != nil {
			return err
		}
	}
	return nil
}

// switchBack is the cutover in the other direction, from the target (the primary since
// the promote) back to the source. The database's name still points at the source unless
// the repoint went in, in which case it is pointed back after the source is writable.
func (w *dbCutover) switchBack(ctx workflow.Context, src, tgt activities.DBConn) error {
	spec := w.spec
	repl := activities.Secret{Env: spec.ReplPassword.Env, File: spec.ReplPassword.File}
	var frozen activities.DBFreezeOutput
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts("freeze writes on "+spec.Target, 10*time.Second)),
		mysqlActs.DBFreeze, activities.DBFreezeInput{Server: tgt, AppUser: spec.AppUser, AppUserHost: spec.AppUserHost, Settle: spec.FreezeSettle}).Get(ctx, &frozen)
	switch {
	case err == nil:
	case HasErrorType(err, activities.ErrDBUnreachable) && !w.rec.repointed():
		// The target died after its promote, before the database's name pointed at it:
		// no application write can have reached it (the source was locked meanwhile), so
		// the source, which has everything up to the freeze, takes writes back.
		w.notes = append(w.notes, fmt.Sprintf("the target %s became unreachable after its promote and before the repoint; the source took the writes back. If %s comes back, it is writable: make it read_only and a replica of %s before anything writes to it", spec.Target, spec.Target, spec.Source))
		return w.promoteSource(ctx, src, "")
	default:
		// After the repoint the application may have written to the target: switching
		// back without its writes would lose them, so this waits for a person (blocked).
		return err
	}
	// The source must hold everything the target wrote; if it never started replicating
	// back, it does now.
	if !w.rec.ReplicatedBack {
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts(spec.Source+" replicates from "+spec.Target, 10*time.Second)),
			mysqlActs.DBReplicate, activities.DBReplicateInput{Server: src, Source: spec.Target, ReplUser: spec.ReplUser, ReplPassword: repl, FormerPrimary: true}).Get(ctx, nil); err != nil {
			return err
		}
		w.rec.ReplicatedBack = true
	}
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts("wait for "+spec.Source+" to catch up", spec.CatchUpTimeout+5*time.Second)),
		mysqlActs.DBCatchUp, activities.DBCatchUpInput{Server: src, Position: frozen.Position, Timeout: spec.CatchUpTimeout}).Get(ctx, nil); err != nil {
		return err
	}
	return w.promoteSource(ctx, src, frozen.Position)
}

// promoteSource makes the source the primary again (after it executed position, when
// known).
func (w *dbCutover) promoteSource(ctx workflow.Context, src activities.DBConn, position string) error {
	spec := w.spec
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts("promote "+spec.Source, 10*time.Second)),
		mysqlActs.DBPromote, activities.DBPromoteInput{Server: src, Position: position, AppUser: spec.AppUser, AppUserHost: spec.AppUserHost}).Get(ctx, nil); err != nil {
		return err
	}
	w.rec.Promoted, w.rec.PromoteAttempted, w.rec.ReplicatedBack, w.rec.Frozen, w.primary = false, false, false, false, spec.Source
	w.rec.ReattachTarget = true
	w.s.Audit(ctx, SystemIdentity, "switched back", spec.Source+" is writable again", "")
	w.publish(ctx)
	return nil
}

// reattachTarget makes the target the source's replica again (the original topology) and
// unlocks the application user its freeze locked there (read_only stays on: a replica).
// A failure here leaves a working primary; keepTrying repeats only this.
func (w *dbCutover) reattachTarget(ctx workflow.Context, tgt activities.DBConn) error {
	spec := w.spec
	repl := activities.Secret{Env: spec.ReplPassword.Env, File: spec.ReplPassword.File}
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts(spec.Target+" replicates from "+spec.Source, 10*time.Second)),
		mysqlActs.DBReplicate, activities.DBReplicateInput{Server: tgt, Source: spec.Source, ReplUser: spec.ReplUser, ReplPassword: repl, FormerPrimary: true}).Get(ctx, nil); err != nil {
		if HasErrorType(err, activities.ErrDBUnreachable) {
			// A dead target blocks nothing: the primary works; it is reported.
			w.notes = append(w.notes, fmt.Sprintf("the target %s could not be made a replica of %s (%s); do it when it is back", spec.Target, spec.Source, failureLine(err)))
			w.rec.ReattachTarget = false
			return nil
		}
		return err
	}
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts("unlock "+spec.AppUser+" on "+spec.Target, 10*time.Second)),
		mysqlActs.DBUnlockUser, activities.DBUnfreezeInput{Server: tgt, AppUser: spec.AppUser, AppUserHost: spec.AppUserHost}).Get(ctx, nil); err != nil {
		return err
	}
	w.rec.ReattachTarget = false
	return nil
}
