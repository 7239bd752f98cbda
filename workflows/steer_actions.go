// The steering's actions (approve, pause, resume and rollback, each a validator and an
// apply serving the signal and the update alike; the four-eyes rule is CheckApprover) and
// how the state reaches the search attributes and the Temporal UI's current details.

package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/proof"
)

var errFinished = errors.New("the migration has finished; nothing to steer")

func (s *Steering) validateApprove(req ActionRequest) error {
	g := s.pending
	switch {
	case s.finished:
		return errFinished
	case g == nil || g.done:
		return errors.New("nothing awaits approval")
	case req.Step != "" && req.Step != g.step:
		return fmt.Errorf("approval is for step %q, but step %q awaits approval", req.Step, g.step)
	case s.checkProof(req, proof.ActionApprove, g.step, "") != nil:
		return s.checkProof(req, proof.ActionApprove, g.step, "")
	case s.CheckApprover(req) != nil:
		return s.CheckApprover(req)
	case slices.Contains(g.approvedBy, req.Identity):
		return fmt.Errorf("%s already approved step %q; it needs %d distinct approvers", req.Identity, g.step, g.required)
	}
	return nil
}

// CheckApprover is the four-eyes rule, in one place: an approval needs an identity, and the
// initiator may not approve unless the policy allows it. A composite that passes an
// approval on to a phase checks it here first, so its caller gets an immediate answer.
func (s *Steering) CheckApprover(req ActionRequest) error {
	switch {
	case strings.TrimSpace(req.Identity) == "":
		return errors.New("an approval needs an identity (who approves)")
	case req.Identity == s.opts.Initiator && !s.opts.Approvals.AllowSelfApproval:
		return fmt.Errorf("%s started this migration and cannot approve it (four-eyes); ask someone else (self-approval needs approvals.allowSelfApproval in the spec, and a server policy that allows it)", req.Identity)
	}
	return nil
}

// ValidateApprove and Approve are the steering's own approve action, for a migration that
// takes the action over (SteeringOptions.Actions) but handles some cases itself.
func (s *Steering) ValidateApprove(req ActionRequest) error { return s.validateApprove(req) }

// Approve applies an approval validated by ValidateApprove.
func (s *Steering) Approve(ctx workflow.Context, req ActionRequest) ActionResult {
	return ActionResult{State: s.state(), Message: s.applyApprove(ctx, req)}
}

// ValidateResume and Resume are the steering's own resume action (see ValidateApprove).
func (s *Steering) ValidateResume(req ActionRequest) error { return s.validateResume(req) }

// Resume applies a resume validated by ValidateResume.
func (s *Steering) Resume(ctx workflow.Context, req ActionRequest) ActionResult {
	return ActionResult{State: s.state(), Message: s.applyResume(ctx, req)}
}

func (s *Steering) applyApprove(ctx workflow.Context, req ActionRequest) string {
	g := s.pending
	s.useProof(req)
	s.lastReq["approve"] = req
	g.approvedBy = append(g.approvedBy, req.Identity)
	if len(g.approvedBy) >= g.required {
		g.done = true
	}
	msg := fmt.Sprintf("approved %d of %d", len(g.approvedBy), g.required)
	s.Audit(ctx, req.Identity, "approve", joinReason(req.Reason, msg), g.step)
	return msg
}

func (s *Steering) validatePause(req ActionRequest) error {
	switch {
	case s.finished:
		return errFinished
	case s.rollingBack || s.rollback != nil:
		return errors.New("a rollback is running; it cannot be paused")
	case s.paused:
		return errors.New("already paused")
	}
	return nil
}

func (s *Steering) applyPause(ctx workflow.Context, req ActionRequest) string {
	s.paused = true
	s.useProof(req)
	s.lastReq["pause"] = req
	s.Audit(ctx, s.unverified(req, proof.ActionPause), "pause", req.Reason, req.Step)
	return "paused: no further step starts until resume (a running dwell keeps counting)"
}

func (s *Steering) validateResume(req ActionRequest) error {
	switch {
	case s.finished:
		return errFinished
	case !s.paused:
		return errors.New("not paused")
	}
	return s.checkProof(req, proof.ActionResume, "", "")
}

func (s *Steering) applyResume(ctx workflow.Context, req ActionRequest) string {
	s.paused = false
	s.useProof(req)
	s.lastReq["resume"] = req
	s.Audit(ctx, req.Identity, "resume", req.Reason, req.Step)
	return "resumed"
}

func (s *Steering) validateRollback(req ActionRequest) error {
	switch {
	case s.finished:
		return errFinished
	case s.rollingBack || s.rollback != nil:
		return errors.New("already rolling back")
	}
	return nil
}

func (s *Steering) applyRollback(ctx workflow.Context, req ActionRequest) string {
	r := req
	s.rollback = &r
	s.rollbackAsked = workflow.Now(ctx)
	s.useProof(req)
	s.lastReq["rollback"] = req
	s.Audit(ctx, s.unverified(req, proof.ActionRollback), "rollback", req.Reason, req.Step)
	return "rollback requested"
}

func joinReason(reason, msg string) string {
	if reason == "" {
		return msg
	}
	return reason + " (" + msg + ")"
}

// refresh writes state, phase and awaiting-approval to the search attributes and the
// current details, when they changed.
func (s *Steering) refresh(ctx workflow.Context) {
	state := s.state()
	awaiting := s.pending != nil && !s.pending.done
	if !s.saWritten || state != s.saState || s.p.Phase != s.saPhase || awaiting != s.saAwaiting {
		err := workflow.UpsertTypedSearchAttributes(ctx,
			SAState.ValueSet(state),
			SAPhase.ValueSet(s.p.Phase),
			SAAwaitingApproval.ValueSet(awaiting),
		)
		if err != nil {
			// Visibility must never stop a migration; the progress query still tells all.
			s.logger.Warn("upsert search attributes", "error", err)
		}
		s.saWritten, s.saState, s.saPhase, s.saAwaiting = true, state, s.p.Phase, awaiting
	}
	render := s.opts.Details
	if render == nil {
		render = RenderDetails
	}
	if d := render(s.Progress()); d != s.details {
		workflow.SetCurrentDetails(ctx, d)
		s.details = d
	}
}

// RenderDetails is the generic current-details markdown: state, phase, message, pending
// approval, steps and the last audit entries.
func RenderDetails(p Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s** · state **%s**", p.Kind, p.State)
	if p.Phase != "" {
		fmt.Fprintf(&b, " · %s", p.Phase)
	}
	b.WriteString("\n\n")
	if p.Message != "" {
		b.WriteString(p.Message + "\n\n")
	}
	if a := p.PendingApproval; a != nil {
		fmt.Fprintf(&b, "⏳ **awaiting approval** of %s: %d of %d", a.Step, len(a.ApprovedBy), a.Required)
		if len(a.ApprovedBy) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(a.ApprovedBy, ", "))
		}
		b.WriteString(" — send signal `approve` or `ferry approve`\n\n")
	}
	if len(p.Steps) > 0 {
		b.WriteString("| step | status |\n| --- | --- |\n")
		for _, st := range p.Steps {
			fmt.Fprintf(&b, "| %s | %s |\n", st.Name, st.Status)
		}
		b.WriteString("\n")
	}
	if n := len(p.Audit); n > 0 {
		b.WriteString("Recent:\n")
		for _, e := range p.Audit[max(0, n-3):] {
			fmt.Fprintf(&b, "- %s %s %s", e.Time.UTC().Format(time.TimeOnly), e.Identity, e.Action)
			if e.Reason != "" {
				fmt.Fprintf(&b, ": %s", e.Reason)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}
