package workflows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// The SDK's test environment cannot grow a real history, but it can say the server
// suggests continue-as-new; these tests make a DNS shift hand over at each kind of hold
// and check that every piece of state arrives in the next run and the chain ends as one
// run would have. (The embedded-server test in e2e proves the histories stay bounded.)

// chain runs a DNS shift's runs one after another, each in a fresh test environment (a
// new run knows only its input), carrying the batches sent and the locks released.
type chain struct {
	t *testing.T
	// clock, when set, is the next run's start (the previous run's hand-over time): the
	// environment's clock after a run has moved on past it.
	clock   time.Time
	batches []batch
	runs    int
	// released are the lock releases the runs sent: "lock id by holder".
	released []string
}

// run executes one run of the chain with in; setup schedules the run's events. It returns
// the next run's input when the run continued as new, else nil and the run's result.
func (c *chain) run(in DNSShiftInput, setup func(h *harness)) (*DNSShiftInput, DNSShiftResult, error) {
	c.t.Helper()
	h := newHarness(c.t)
	if !c.clock.IsZero() {
		h.env.SetStartTime(c.clock)
	}
	if c.runs > 0 {
		// The locks are the first run's children, which this environment does not hold: the
		// chain's last run releases them by signal.
		h.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", SignalReleaseLock, mock.Anything).Return(
			func(_, id, _, _ string, arg any) error {
				c.released = append(c.released, id+" by "+arg.(LockRelease).Holder)
				return nil
			})
	}
	c.runs++
	setup(h)
	res, err := h.run(in)
	c.batches = append(c.batches, h.sent()...)
	var can *workflow.ContinueAsNewError
	if errors.As(err, &can) {
		require.Equal(c.t, dnsShiftWorkflowName, can.WorkflowType.Name)
		var next DNSShiftInput
		require.NoError(c.t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
		require.NotNil(c.t, next.Continued, "a continued run carries its state")
		return &next, res, nil
	}
	return nil, res, err
}

// suggestAt makes the server suggest continue-as-new d after the run starts.
func suggestAt(h *harness, d time.Duration) {
	h.at(d, func() { h.env.SetContinueAsNewSuggested(true) })
}

func continueInput() DNSShiftInput {
	spec := testSpec()
	spec.Percents = []int{50, 100}
	spec.ApproveAfter = []bool{true, false}
	in := input(spec)
	in.Approvals = ApprovalPolicy{RequiredApprovers: 2}
	in.Budgets = &Budgets{HoldBeat: 10 * time.Second}
	return in
}

// A shift hands over in its first dwell, again while awaiting approval with one of two
// approvers in, and ends completed in its third run: no batch twice, the dwell not
// restarted, the first approver kept, the audit whole.
func TestContinueAsNewCarriesDwellAndApproval(t *testing.T) {
	c := &chain{t: t}
	in := continueInput()

	// Run 1: the 50% batch goes in, then the dwell (60 s, gates every 10 s) hands over.
	next, _, err := c.run(in, func(h *harness) { suggestAt(h, 25*time.Second) })
	require.NoError(t, err)
	require.NotNil(t, next, "run 1 must continue as new in its dwell")
	st := next.Continued
	require.Equal(t, StageDwell, st.At.Stage)
	require.Equal(t, 0, st.At.Step)
	require.Equal(t, 0, st.StepIndex)
	require.Equal(t, []dnsWeights{{From: 50, To: 50}}, st.Applied)
	require.Equal(t, 50, st.To)
	require.True(t, st.Steering.Locks != nil && st.Steering.Locks.State == LocksHeld, "the locks travel: %+v", st.Steering.Locks)
	require.Equal(t, 1, st.Steering.Runs)
	dwellEnd := st.At.DwellEnd
	c.clock = dwellEnd.Add(-30 * time.Second) // handed over at the beat after 25 s: 30 s in
	require.Equal(t, []batch{{50, 50}}, c.batches)

	// Run 2: the dwell ends when it would have (not 60 s after the hand-over), the approval
	// gate opens, bob approves, and the run hands over while it waits for a second approver.
	var handedAt time.Time
	var bob *updateOutcome
	next2, _, err := c.run(*next, func(h *harness) {
		h.at(dwellEnd.Sub(c.clock)+5*time.Second, func() {
			p := h.progress()
			require.Equal(t, StateAwaitingApproval, p.State, "the dwell ended on time: %s", p.Message)
			bob = h.update(UpdateApprove, "bob")
		})
		h.at(dwellEnd.Sub(c.clock)+10*time.Second, func() {
			handedAt = h.env.Now()
			h.env.SetContinueAsNewSuggested(true)
		})
	})
	require.NoError(t, err)
	requireAccepted(t, bob)
	require.NotNil(t, next2, "run 2 must continue as new while awaiting approval")
	require.Equal(t, StageApproval, next2.Continued.At.Stage)
	require.Equal(t, []string{"bob"}, next2.Continued.Steering.Pending.ApprovedBy)
	require.Len(t, c.batches, 1, "no batch was sent in run 2")
	require.False(t, handedAt.IsZero())
	c.clock = handedAt

	// Run 3: bob again is refused (he is in already), carol makes two, the 100% step runs.
	var pending *PendingApproval
	var bobAgain, carol *updateOutcome
	_, res, err := c.run(*next2, func(h *harness) {
		h.at(time.Second, func() {
			p := h.progress()
			pending = p.PendingApproval
			bobAgain = h.update(UpdateApprove, "bob")
		})
		h.at(2*time.Second, func() { carol = h.update(UpdateApprove, "carol") })
	})
	require.NoError(t, err)
	requireRejected(t, bobAgain, "already")
	requireAccepted(t, carol)
	require.Equal(t, StateCompleted, res.State, res.Message)
	require.NotNil(t, pending)
	require.Equal(t, []string{"bob"}, pending.ApprovedBy, "the approver of run 2 counts in run 3")
	require.Equal(t, []batch{{50, 50}, {0, 100}}, c.batches, "each batch exactly once across the chain")
	require.Equal(t, 3, c.runs)
	require.Equal(t, []string{"lock/route53/Z0SHOP/www.shop.example./A by default-test-workflow-id"}, c.released,
		"the chain's last run releases the lock its first run took")
}

// A shift paused by a person in its dwell hands over while paused; the next run stays
// paused until resumed, and its audit still names who paused.
func TestContinueAsNewCarriesPause(t *testing.T) {
	c := &chain{t: t}
	in := continueInput()
	in.Spec.ApproveAfter = []bool{false, false}
	var pause, resume *updateOutcome
	next, _, err := c.run(in, func(h *harness) {
		h.at(15*time.Second, func() { pause = h.update(UpdatePause, "alice") })
		// The dwell runs to its end (a pause holds the next step, not the clock), then the
		// shift holds paused and hands over there.
		h.at(90*time.Second, func() { h.env.SetContinueAsNewSuggested(true) })
	})
	require.NoError(t, err)
	requireAccepted(t, pause)
	require.NotNil(t, next)
	require.Equal(t, StageForward, next.Continued.At.Stage)
	require.Equal(t, 1, next.Continued.At.Step, "paused before step 2's batch")
	require.True(t, next.Continued.Steering.Paused)

	_, res, err := c.run(*next, func(h *harness) {
		h.at(time.Minute, func() {
			p := h.progress()
			require.Equal(t, StatePaused, p.State)
			require.True(t, auditedBy(p, "alice", "pause"), "the audit kept alice's pause: %+v", p.Audit)
			require.Len(t, c.batches, 1, "nothing sent while paused")
			resume = h.update(UpdateResume, "bob")
		})
	})
	require.NoError(t, err)
	requireAccepted(t, resume)
	require.Equal(t, StateCompleted, res.State, res.Message)
	require.Equal(t, []batch{{50, 50}, {0, 100}}, c.batches)
}

// A step blocked by a Route 53 outage hands over between attempts; the next run keeps the
// time the block began, and once Route 53 is back the step goes in once.
func TestContinueAsNewCarriesBlocked(t *testing.T) {
	c := &chain{t: t}
	in := continueInput()
	in.Spec.ApproveAfter = []bool{false, false}
	in.Budgets = &Budgets{StepAttempt: 20 * time.Second, BlockedPace: 10 * time.Second}
	outage := temporal.NewApplicationError("Rate exceeded", "Throttling")
	next, _, err := c.run(in, func(h *harness) {
		h.refuse = refuseAll(outage)
		h.at(2*time.Minute, func() { h.env.SetContinueAsNewSuggested(true) })
	})
	require.NoError(t, err)
	require.NotNil(t, next)
	st := next.Continued
	require.Equal(t, StageForward, st.At.Stage)
	require.Equal(t, 0, st.At.Step)
	require.NotEmpty(t, st.Steering.Blocked)
	since := st.Steering.BlockedSince
	require.False(t, since.IsZero())
	require.Empty(t, c.batches)

	_, res, err := c.run(*next, func(h *harness) {
		h.refuse = refuseAll(outage)
		h.at(time.Minute, func() {
			p := h.progress()
			require.Equal(t, StateBlocked, p.State)
			require.Contains(t, p.Message, "retrying since "+since.UTC().Format(time.RFC3339), "the block's start is kept")
			h.mu.Lock()
			h.refuse = nil // Route 53 is back
			h.mu.Unlock()
		})
	})
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State, res.Message)
	require.Equal(t, []batch{{50, 50}, {0, 100}}, c.batches)
}

// refuseAll fails every batch with err (a Route 53 outage).
func refuseAll(err error) func(activities.ChangeWeightsInput, int) error {
	return func(activities.ChangeWeightsInput, int) error { return err }
}

// auditedBy reports whether identity's action is in the audit trail.
func auditedBy(p Progress, identity, action string) bool {
	for _, e := range p.Audit {
		if e.Identity == identity && strings.HasPrefix(e.Action, action) {
			return true
		}
	}
	return false
}
