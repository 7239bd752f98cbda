package workflows

import (
	"errors"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"
)

// Continue-as-new. Temporal ends a run whose history reaches 51,200 events, and a
// migration that holds (awaiting approval over a weekend, paused, a long bake with gates
// every few seconds, a step blocked through an outage) adds events at every gate check.
// So a kind that holds long carries its whole state into a new run of the same workflow id
// when the SDK suggests it (the server's history-count threshold): the run chain is one
// migration to callers (the API and CLI address the workflow id, whose current run is the
// newest; the first run id, which owns the changes, is kept by Temporal across the chain).
//
// Only safe points continue: between activities, while the run holds (a dwell's or a
// hold's gate beat, a blocked step's pace). The hold returns errContinue up the kind's
// code, which remembers where it was (its resume point); the kind's workflow function then
// returns the continue-as-new error with its state. Runs started before this existed never
// continue (GetVersion "continue-as-new", asked only when a run would).

// errContinue unwinds a kind's code to its workflow function, which continues as new.
var errContinue = errors.New("continue as new: history is long")

// isContinue reports whether err is the continue-as-new unwind.
func isContinue(err error) bool { return errors.Is(err, errContinue) }

// SteeringState is the steering's part of a run's state carried into the next run of its
// chain: progress and audit, the flags, the open approval gate with its approvers so far,
// the blocked state, the locks held and how many runs the chain has had.
type SteeringState struct {
	Progress     Progress
	Paused       bool
	Rollback     *ActionRequest   `json:",omitempty"`
	Pending      *PendingApproval `json:",omitempty"`
	Blocked      string           `json:",omitempty"`
	BlockedSince time.Time        `json:",omitempty"`
	Locks        *LockResult      `json:",omitempty"`
	// Runs counts the runs before this one in the chain.
	Runs int
	// Nonces are the API proofs the chain has used (a proof is good for one action).
	Nonces []string `json:",omitempty"`
}

// snapshot is the steering's state for the next run.
func (s *Steering) snapshot() SteeringState {
	st := SteeringState{
		Progress: s.Progress(), Paused: s.paused, Rollback: s.rollback,
		Blocked: s.blocked, BlockedSince: s.blockedSince, Locks: s.locks, Runs: s.runs + 1,
	}
	if s.trust != nil {
		st.Nonces = slices.Clone(s.trust.nonces)
	}
	// The derived state is recomputed from the flags in the next run.
	st.Progress.PendingApproval = nil
	if g := s.pending; g != nil && !g.done {
		st.Pending = &PendingApproval{Step: g.step, Required: g.required, ApprovedBy: slices.Clone(g.approvedBy)}
	}
	return st
}

// restore takes a snapshot of the previous run's steering.
func (s *Steering) restore(ctx workflow.Context, st SteeringState) {
	s.p = st.Progress
	s.p.PendingApproval = nil
	s.paused, s.rollback = st.Paused, st.Rollback
	s.blocked, s.blockedSince = st.Blocked, st.BlockedSince
	s.locks, s.runs = st.Locks, st.Runs
	if s.trust != nil {
		s.trust.nonces = slices.Clone(st.Nonces)
	}
	if a := st.Pending; a != nil {
		s.pending = &approvalGate{step: a.Step, required: a.Required, approvedBy: slices.Clone(a.ApprovedBy)}
	}
	s.refresh(ctx)
}

// Runs is how many runs came before this one in the migration's chain.
func (s *Steering) Runs() int { return s.runs }

// shouldContinue reports whether the run should continue as new now: the kind can carry
// its state (SteeringOptions.ContinueAsNew), it is not rolling back (a rollback's steps are
// few and it never stops halfway to hand over), and the server suggests it (its
// history-count or history-size threshold).
func (s *Steering) shouldContinue(ctx workflow.Context) bool {
	if !s.opts.ContinueAsNew || s.rollingBack || s.finished {
		return false
	}
	info := workflow.GetInfo(ctx)
	if !info.GetContinueAsNewSuggested() {
		return false
	}
	// Asked only when a run would continue, so runs that never do record no marker, and a
	// run recorded before continuing existed keeps holding on replay.
	return workflow.GetVersion(ctx, "continue-as-new", workflow.DefaultVersion, 1) != workflow.DefaultVersion
}

// handOver waits for the run's update handlers to finish (an update accepted by this run
// must be answered by it). The hand-over is logged, not audited: the trail is for what
// people and the migration did, and it travels whole into the next run.
func (s *Steering) handOver(ctx workflow.Context, at string) error {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	info := workflow.GetInfo(ctx)
	s.logger.Info("continuing as new", "at", at, "events", info.GetCurrentHistoryLength(), "run", s.runs+1)
	return nil
}
