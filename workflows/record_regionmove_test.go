package workflows_test

import (
	"slices"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/workflows"
)

// recordRegionMove records the marketplace move (AMI copies, then the MongoDB primary, then
// the traffic) on the three paths, each pinned to a fresh plan. A region move's work is
// done by its children, so each path's file comes with one file per child it started:
// the read-only plans, the phases, and the undo runs that unwound them. Every move is
// steered through the parent only, as people do: approvals, the pause, the resume and the
// rollback reach the running phase by forwarding.
func recordRegionMove(r *recorder) {
	k := workflows.KindByName(workflows.KindRegionMove)
	move := r.moveInput()
	mongoID := workflows.MongoPrimaryMoveWorkflowID(move.Spec.Mongo.ReplicaSet, move.Spec.Mongo.URI)
	dnsID := workflows.DNSShiftWorkflowID(move.Spec.DNS.Zone, move.Spec.DNS.RecordName, move.Spec.DNS.RecordType)

	// A rollback asked for while the traffic shift holds at 50%: forwarded to the shift,
	// which rolls itself back; then the move undoes the primary move and the copies.
	run := r.start(k, move.Spec, move.Common, "plan-region-move")
	id := run.GetID()
	for child := r.gate(id); child != dnsID; child = r.gate(id) {
		r.approveGate(id, child)
	}
	r.act(id, workflows.UpdateRollback, "bob")
	r.end(run, workflows.StateRolledBack)
	r.saveTree("region-move-rollback-requested", id, run.GetRunID(), phasesOnly)

	// The MongoDB phase's second reconfig refused for good: the phase fails leaving its
	// changes (a phase's onFailure is leave), and the move undoes it and the copies.
	f, err := r.s.Sandbox.Faults().Add(refuse("replSetReconfig", 1))
	require.NoError(r.t, err)
	run = r.start(k, move.Spec, move.Common, "")
	r.approveUntilDone(run, workflows.StateRolledBack)
	_, err = r.s.Sandbox.Faults().Delete(f.ID)
	require.NoError(r.t, err)
	r.saveTree("region-move-failed-undone", id, run.GetRunID(), phasesOnly)

	// Forward: at the move's own gate before the MongoDB phase the initiator's approval is
	// refused and bob's taken; at the phase's gate the move is paused (forwarded), the phase
	// approved through the move, holds paused, is resumed, and everything completes. The
	// lock children are recorded with this run.
	run = r.start(k, move.Spec, move.Common, "")
	require.Empty(r.t, r.gate(id), "the move's own gate comes first")
	r.signalApprove(id, "alice")
	r.approveGate(id, "")
	require.Equal(r.t, mongoID, r.gate(id))
	r.act(id, workflows.UpdatePause, "alice")
	r.await(mongoID, "the forwarded pause", func(p workflows.Progress) bool {
		return slices.ContainsFunc(p.Audit, func(e workflows.AuditEntry) bool { return e.Action == "pause" })
	})
	r.act(id, workflows.UpdateApprove, "carol")
	r.await(mongoID, "paused before its next step", func(p workflows.Progress) bool { return p.State == workflows.StatePaused })
	r.act(id, workflows.UpdateResume, "alice")
	r.approveUntilDone(run, workflows.StateCompleted)
	r.saveTree("region-move-pause-resume-completed", id, run.GetRunID(), func(typ string) bool {
		return typ == workflows.LockWorkflowName || phasesOnly(typ)
	})
}

// approveGate approves the open gate child returned by gate: the move's own (bob) or its
// phase's through the move (carol), and waits for the forwarded approval to land, so the
// next look does not see the same gate.
func (r *recorder) approveGate(id, child string) {
	r.t.Helper()
	if child == "" {
		r.act(id, workflows.UpdateApprove, "bob")
		return
	}
	r.act(id, workflows.UpdateApprove, "carol")
	r.await(child, "the forwarded approval", func(p workflows.Progress) bool { return p.PendingApproval == nil })
}
