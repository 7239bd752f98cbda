package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"
)

// A decision gate is an approval gate the kind does not block on: a broker drain that ran
// past its timeout asks a person (approve: shovel the rest; roll back; or leave it open and
// the drain may still finish on its own) while it keeps sampling. The approve action,
// its four-eyes rule and its signed proofs are the steering's own, unchanged.

// OpenDecision opens an approval gate for step (a gate the previous run of the chain
// opened stays open with its approvers so far).
func (s *Steering) OpenDecision(ctx workflow.Context, step string) {
	if g := s.pending; g != nil && g.step == step && !g.done {
		return
	}
	s.pending = &approvalGate{step: step, required: s.opts.Approvals.RequiredApprovers, opened: workflow.Now(ctx)}
	s.Audit(ctx, SystemIdentity, "awaiting decision", fmt.Sprintf("%d approver(s) needed", s.pending.required), step)
	s.refresh(ctx)
}

// Decided reports whether the open decision gate got its approvals.
func (s *Steering) Decided() bool { return s.pending != nil && s.pending.done }

// CloseDecision closes the decision gate, approved or not (the question went away).
func (s *Steering) CloseDecision(ctx workflow.Context) {
	if s.pending == nil {
		return
	}
	if s.pending.done {
		s.countApprovalWait(ctx, s.pending.opened)
	}
	s.pending = nil
	s.refresh(ctx)
}
