package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// steerWorkflow drives a Steering the way a migration would, without any activities, so
// the engine's rules are tested on their own: approval, then a rollback that runs for an
// hour of workflow time.
func steerWorkflow(ctx workflow.Context, required int) (Progress, error) {
	s, err := NewSteering(ctx, SteeringOptions{Kind: "test", Initiator: "alice",
		Approvals: ApprovalPolicy{RequiredApprovers: required}})
	if err != nil {
		return Progress{}, err
	}
	s.SetSteps(ctx, []string{"copy", "switch"}, []string{"copy things", "switch over"})
	s.StartStep(ctx, 0)
	s.EndStep(ctx, 0, "done", "")
	s.SetPhase(ctx, "gate", "waiting")
	approved, err := s.AwaitApproval(ctx, "switch")
	if err != nil {
		return Progress{}, err
	}
	if !approved {
		return Progress{}, nil
	}
	s.StartStep(ctx, 1)
	// Wait for a rollback request, then hold the rollback for an hour.
	if _, err := s.Sleep(ctx, 24*time.Hour, "until rollback"); err != nil {
		return Progress{}, err
	}
	s.BeginRollback(ctx)
	if _, err := s.Sleep(ctx, time.Hour, "rolling back"); err != nil {
		return Progress{}, err
	}
	s.EndStep(ctx, 1, "rolled-back", "")
	s.Finish(ctx, StateRolledBack, "rolled back")
	return s.Progress(), nil
}

func TestSteeringRules(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(steerWorkflow)
	send := func(name string, req ActionRequest) *updateOutcome {
		o := &updateOutcome{}
		env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { o.rejected = err }, OnAccept: func() { o.accepted = true }, OnComplete: func(any, error) {},
		}, req)
		return o
	}
	query := func() Progress {
		v, err := env.QueryWorkflow(QueryProgress)
		require.NoError(t, err)
		var p Progress
		require.NoError(t, v.Get(&p))
		return p
	}
	var wrongStep, anonymous, resumeNotPaused, bob, carol, pauseInRollback, rollback, rollbackAgain *updateOutcome
	var atGate, inRollback Progress
	env.RegisterDelayedCallback(func() {
		atGate = query()
		wrongStep = send(UpdateApprove, ActionRequest{Identity: "bob", Step: "copy"})
		anonymous = send(UpdateApprove, ActionRequest{})
		resumeNotPaused = send(UpdateResume, ActionRequest{Identity: "bob"})
		bob = send(UpdateApprove, ActionRequest{Identity: "bob", Step: "switch", Reason: "looked"})
	}, time.Minute)
	env.RegisterDelayedCallback(func() { carol = send(UpdateApprove, ActionRequest{Identity: "carol"}) }, 2*time.Minute)
	env.RegisterDelayedCallback(func() { rollback = send(UpdateRollback, ActionRequest{Identity: "dave", Reason: "errors"}) }, 3*time.Minute)
	env.RegisterDelayedCallback(func() {
		inRollback = query()
		pauseInRollback = send(UpdatePause, ActionRequest{Identity: "bob"})
		rollbackAgain = send(UpdateRollback, ActionRequest{Identity: "bob"})
	}, 10*time.Minute)
	env.ExecuteWorkflow(steerWorkflow, 2)
	require.NoError(t, env.GetWorkflowError())
	var p Progress
	require.NoError(t, env.GetWorkflowResult(&p))

	require.Equal(t, StateAwaitingApproval, atGate.State)
	require.Equal(t, &PendingApproval{Step: "switch", Required: 2}, atGate.PendingApproval)
	require.Equal(t, []string{"done", "pending"}, []string{atGate.Steps[0].Status, atGate.Steps[1].Status})
	requireRejected(t, wrongStep, `approval is for step "copy"`)
	requireRejected(t, anonymous, "needs an identity")
	requireRejected(t, resumeNotPaused, "not paused")
	requireAccepted(t, bob)
	requireAccepted(t, carol)
	requireAccepted(t, rollback)
	require.Equal(t, StateRollingBack, inRollback.State)
	requireRejected(t, pauseInRollback, "cannot be paused")
	requireRejected(t, rollbackAgain, "already rolling back")

	require.Equal(t, StateRolledBack, p.State)
	require.Equal(t, "rolled-back", p.Steps[1].Status)
	var trail []string
	for _, e := range p.Audit {
		trail = append(trail, e.Identity+" "+e.Action+" "+e.Reason)
	}
	require.Equal(t, []string{
		"ferry awaiting approval 2 approver(s) needed",
		"bob approve looked (approved 1 of 2)",
		"carol approve approved 2 of 2",
		"dave rollback errors",
	}, trail)
}

func TestRenderDetails(t *testing.T) {
	d := RenderDetails(Progress{
		Kind: KindDNSShift, State: StateAwaitingApproval, Phase: "step 2/3: 50%", Message: "holding",
		PendingApproval: &PendingApproval{Step: "shift to 50%", Required: 2, ApprovedBy: []string{"bob"}},
		Steps:           []StepProgress{{Name: "shift to 10%", Status: "done"}},
		Audit:           []AuditEntry{{Time: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), Identity: "bob", Action: "approve"}},
	})
	for _, want := range []string{"**dns-shift**", "awaiting-approval", "step 2/3: 50%", "1 of 2 (bob)", "| shift to 10% | done |", "10:00:00 bob approve"} {
		require.Contains(t, d, want)
	}
}
