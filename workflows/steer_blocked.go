package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// A step that keeps failing (an undo that keeps trying, a forward step held through an
// outage) shows the run blocked. A phase's child tells its parent too, so the region move
// a person watches (and the FerryState alert on it) shows the phase blocked, not running.

// SignalPhaseBlocked carries a child's BlockNote to its parent.
const SignalPhaseBlocked = "ferry.phase-blocked"

// BlockNote is a child's blocked state, as its parent shows it.
type BlockNote struct {
	ChildID string
	Blocked bool
	What    string
	Since   time.Time
	Error   string
}

// Block shows that what runs now keeps failing: the state is "blocked" (search attribute,
// progress, the Temporal UI's details) and the message says what fails and since when,
// until Unblock. The step goes on retrying meanwhile.
func (s *Steering) Block(ctx workflow.Context, what string, since time.Time, err string) {
	msg := fmt.Sprintf("%s blocked: %s, retrying since %s", what, err, since.UTC().Format(time.RFC3339))
	first := s.blocked == ""
	if first {
		s.Audit(ctx, SystemIdentity, what+" blocked", err, "")
	}
	s.blocked, s.blockedSince, s.p.Message = msg, since, msg
	s.refresh(ctx)
	if first {
		s.tellParent(ctx, BlockNote{Blocked: true, What: what, Since: since, Error: err})
	}
}

// Unblock ends a Block once the step succeeded.
func (s *Steering) Unblock(ctx workflow.Context, what string) {
	if s.blocked == "" {
		return
	}
	s.blocked, s.blockedSince = "", time.Time{}
	s.Audit(ctx, SystemIdentity, what+" unblocked", "the step succeeded", "")
	s.refresh(ctx)
	s.tellParent(ctx, BlockNote{What: what})
}

// Blocked is the blocked message, or "" while nothing is blocked.
func (s *Steering) Blocked() string { return s.blocked }

// tellParent signals the parent (if any) that this run is blocked or no longer is. It is
// best effort: a parent that has ended needs no news.
func (s *Steering) tellParent(ctx workflow.Context, note BlockNote) {
	info := workflow.GetInfo(ctx)
	parent := info.ParentWorkflowExecution
	if parent == nil {
		return
	}
	// Runs blocked before parents were told did not signal; their histories must replay.
	if workflow.GetVersion(ctx, "tell-parent-blocked", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	note.ChildID = info.WorkflowExecution.ID
	if err := workflow.SignalExternalWorkflow(ctx, parent.ID, parent.RunID, SignalPhaseBlocked, note).Get(ctx, nil); err != nil {
		s.logger.Warn("tell parent blocked", "parent", parent.ID, "error", err)
	}
}
