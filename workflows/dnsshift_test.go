package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/ferryhq/ferry/activities"
)

func testSpec() DNSShiftSpec {
	return DNSShiftSpec{
		Zone: "shop.example.", RecordName: "www.shop.example.", RecordType: "A",
		From: "eu-west-1", To: "eu-west-2",
		Percents:     []int{10, 25, 50, 100},
		ApproveAfter: make([]bool, 4),
		TotalWeight:  100,
		BakeTime:     60 * time.Second,
		GateInterval: 10 * time.Second,
		Gates: []Gate{{
			Name: "eu-west-2 health", FailureThreshold: 1,
			HTTP: &HTTPProbe{URL: "http://127.0.0.1:4566/_apps/eu-west-2/healthz", ExpectStatus: 200, Timeout: 5 * time.Second},
		}},
		RollbackMode:  RollbackImmediate,
		OnGateFailure: OnGateFailRollback,
	}
}

func testObs() activities.PreflightOutput {
	return activities.PreflightOutput{
		ZoneID: "Z0SHOP", ZoneName: "shop.example.",
		From: activities.RecordSet{Name: "www.shop.example.", Type: "A", SetIdentifier: "eu-west-1", Weight: 100, TTL: 30,
			Values: []string{"10.1.0.10"}, HealthCheckID: "hc-1"},
		To: activities.RecordSet{Name: "www.shop.example.", Type: "A", SetIdentifier: "eu-west-2", Weight: 0, TTL: 30,
			Values: []string{"10.2.0.10"}},
	}
}

type batch struct{ From, To int64 }

// harness runs DNSShift in the time-skipping test environment against mocked activities
// and records every batch the workflow sends.
type harness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	obs activities.PreflightOutput

	mu      sync.Mutex
	batches []batch
	inputs  []activities.ChangeWeightsInput
	evals   int
	// healthy decides a gate evaluation from the batches sent so far; nil means healthy.
	healthy func(batches []batch, eval int) bool
	// verdict, when set, decides instead of healthy, with all three verdicts.
	verdict func(batches []batch, eval int) activities.Verdict
	// refuse, when set, may fail a ChangeWeights call (call counts them from 1): the batch
	// is then not recorded. alreadyApplied makes a call report its batch applied earlier.
	refuse         func(in activities.ChangeWeightsInput, call int) error
	alreadyApplied func(call int) bool
	insyncErr      func(changeID string) error // when set, may fail a WaitInsync call
	calls          int                         // ChangeWeights calls, refused ones included
	preflights     int
	insyncs        []string // change ids waited on
}

func newHarness(t *testing.T) *harness {
	var s testsuite.WorkflowTestSuite
	h := &harness{t: t, env: s.NewTestWorkflowEnvironment(), obs: testObs()}
	env := h.env
	env.RegisterWorkflow(DNSShift)
	env.RegisterWorkflow(PlanDNSShift)
	RegisterLock(env)
	env.RegisterActivity(&activities.Route53{})
	env.RegisterActivity(&activities.Gates{})
	env.OnActivity(r53.Preflight, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.PreflightInput) (activities.PreflightOutput, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.preflights++
			return h.obs, nil
		})
	env.OnActivity(r53.ChangeWeights, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ChangeWeightsInput) (activities.ChangeWeightsOutput, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.calls++
			if h.refuse != nil {
				if err := h.refuse(in, h.calls); err != nil {
					return activities.ChangeWeightsOutput{}, err
				}
			}
			h.batches = append(h.batches, batch{in.FromWeight, in.ToWeight})
			h.inputs = append(h.inputs, in)
			if h.alreadyApplied != nil && h.alreadyApplied(h.calls) {
				return activities.ChangeWeightsOutput{AlreadyApplied: true}, nil
			}
			return activities.ChangeWeightsOutput{ChangeID: fmt.Sprintf("C%d", len(h.batches)), Status: "PENDING"}, nil
		})
	env.OnActivity(r53.WaitInsync, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WaitInsyncInput) (activities.WaitInsyncOutput, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.insyncs = append(h.insyncs, in.ChangeID)
			if h.insyncErr != nil {
				if err := h.insyncErr(in.ChangeID); err != nil {
					return activities.WaitInsyncOutput{}, err
				}
			}
			return activities.WaitInsyncOutput{Status: "INSYNC", Polls: 1}, nil
		})
	env.OnActivity(gates.EvaluateGates, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.EvaluateGatesInput) (activities.EvaluateGatesOutput, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.evals++
			ok := h.healthy == nil || h.healthy(slices.Clone(h.batches), h.evals)
			verdict := activities.VerdictFail
			if ok {
				verdict = activities.VerdictPass
			}
			if h.verdict != nil {
				verdict = h.verdict(slices.Clone(h.batches), h.evals)
			}
			var out activities.EvaluateGatesOutput
			for _, g := range in.Gates {
				detail := map[activities.Verdict]string{activities.VerdictPass: "GET ok: 200 OK", activities.VerdictFail: "GET failed: 503 Service Unavailable",
					activities.VerdictInconclusive: "query returned no series"}[verdict]
				out.Results = append(out.Results, activities.GateResult{Name: g.Name, Healthy: verdict == activities.VerdictPass, Verdict: verdict, Detail: detail})
			}
			return out, nil
		})
	return h
}

func (h *harness) sent() []batch {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.batches)
}

func (h *harness) progress() Progress {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(QueryProgress)
	require.NoError(h.t, err)
	var p Progress
	require.NoError(h.t, v.Get(&p))
	return p
}

func (h *harness) run(in DNSShiftInput) (DNSShiftResult, error) {
	h.env.ExecuteWorkflow(DNSShift, in)
	require.True(h.t, h.env.IsWorkflowCompleted())
	var res DNSShiftResult
	err := h.env.GetWorkflowError()
	if err == nil {
		require.NoError(h.t, h.env.GetWorkflowResult(&res))
	}
	return res, err
}

// at schedules f at workflow time d after start.
func (h *harness) at(d time.Duration, f func()) { h.env.RegisterDelayedCallback(f, d) }

func (h *harness) signal(name, identity, reason string) {
	h.env.SignalWorkflow(name, ActionRequest{Identity: identity, Reason: reason})
}

// updateOutcome is filled in when the test environment delivers an update's answer,
// which happens after the callback that sent it returns.
type updateOutcome struct {
	accepted bool
	rejected error
}

// update sends an update; its outcome is readable once the workflow ran on.
func (h *harness) update(name, identity string) *updateOutcome {
	o := &updateOutcome{}
	h.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnReject:   func(err error) { o.rejected = err },
		OnAccept:   func() { o.accepted = true },
		OnComplete: func(any, error) {},
	}, ActionRequest{Identity: identity, Reason: "test"})
	return o
}

func requireAccepted(t *testing.T, o *updateOutcome) {
	t.Helper()
	require.NoError(t, o.rejected)
	require.True(t, o.accepted, "update was not accepted")
}

func requireRejected(t *testing.T, o *updateOutcome, contains string) {
	t.Helper()
	require.False(t, o.accepted, "update was accepted")
	require.ErrorContains(t, o.rejected, contains)
}

func input(spec DNSShiftSpec) DNSShiftInput {
	return DNSShiftInput{Spec: spec, Common: Common{Name: "www to eu-west-2", Reason: "region move", Initiator: "alice", Approvals: ApprovalPolicy{RequiredApprovers: 1}}}
}

// requireSafe checks the invariants every batch must keep: never both weights 0, and each
// batch names the record sets as ferry last saw them (as read, with the weights the batch
// before set), so Route 53 refuses it if anyone changed them since.
func requireSafe(t *testing.T, h *harness) {
	t.Helper()
	from, to := h.obs.From.Weight, h.obs.To.Weight
	for i, in := range h.inputs {
		require.Greater(t, in.FromWeight+in.ToWeight, int64(0), "batch %d has total weight 0", i)
		require.Equal(t, withWeight(h.obs.From, int(from)), in.From, "batch %d must name the record set as last seen", i)
		require.Equal(t, withWeight(h.obs.To, int(to)), in.To, "batch %d must name the record set as last seen", i)
		require.Equal(t, h.obs.ZoneID, in.ZoneID)
		require.NotEmpty(t, in.Base, "batch %d must be guarded", i)
		from, to = in.FromWeight, in.ToWeight
	}
}

func auditActions(p Progress) []string {
	var out []string
	for _, e := range p.Audit {
		out = append(out, e.Identity+" "+e.Action)
	}
	return out
}

func TestDNSShiftHappyPath(t *testing.T) {
	h := newHarness(t)
	spec := testSpec()
	spec.Percents = []int{1, 10, 25, 50, 100}
	spec.ApproveAfter = make([]bool, 5)
	start := h.env.Now()
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
	require.Equal(t, 0, res.FromWeight)
	require.Equal(t, 100, res.ToWeight)
	require.Equal(t, []batch{{99, 1}, {90, 10}, {75, 25}, {50, 50}, {0, 100}}, h.sent())
	requireSafe(t, h)
	// Five dwells of max(bake 60s, TTL 30s).
	require.GreaterOrEqual(t, h.env.Now().Sub(start), 5*time.Minute)
	// Gates every 10s over a 60s dwell: 6 evaluations per step.
	require.Equal(t, 30, h.evals)

	p := h.progress()
	require.Equal(t, StateCompleted, p.State)
	require.Len(t, p.Steps, 5)
	for _, st := range p.Steps {
		require.Equal(t, "done", st.Status, st.Name)
		require.False(t, st.StartTime.IsZero())
		require.False(t, st.EndTime.Before(st.StartTime))
	}
	require.Equal(t, 0, p.DNS.FromWeight)
	require.Equal(t, 100, p.DNS.ToWeight)
	require.Equal(t, 4, p.DNS.StepIndex)
	require.Len(t, p.DNS.Gates, 1)
	require.True(t, p.DNS.Gates[0].Healthy)
	require.Equal(t, DNSShiftPlanHash(spec, testObs()), p.PlanHash)
	require.Nil(t, p.PendingApproval)
}

func TestDNSShiftApprovalFourEyes(t *testing.T) {
	h := newHarness(t)
	spec := testSpec()
	spec.ApproveAfter = []bool{false, false, true, false} // approve at 50%
	var refusedUpdate, noPending *updateOutcome
	h.at(time.Second, func() { noPending = h.update(UpdateApprove, "bob") })
	h.at(time.Hour, func() {
		p := h.progress()
		require.Equal(t, StateAwaitingApproval, p.State)
		require.NotNil(t, p.PendingApproval)
		require.Equal(t, "shift to 50%", p.PendingApproval.Step)
		require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}}, h.sent(), "nothing moves until approved")
		h.signal(SignalApprove, "alice", "lgtm") // the initiator: refused
		refusedUpdate = h.update(UpdateApprove, "alice")
	})
	h.at(2*time.Hour, func() {
		p := h.progress()
		require.Equal(t, StateAwaitingApproval, p.State, "the initiator's approval must not count")
		require.Empty(t, p.PendingApproval.ApprovedBy)
		require.Contains(t, auditActions(p), "alice approve refused")
		require.Len(t, h.sent(), 3)
		h.signal(SignalApprove, "bob", "checked dashboards")
	})
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
	requireRejected(t, noPending, "nothing awaits approval")
	requireRejected(t, refusedUpdate, "four-eyes")
	require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}, {0, 100}}, h.sent())
	p := h.progress()
	require.Contains(t, auditActions(p), "bob approve")
}

func TestDNSShiftTwoDistinctApprovers(t *testing.T) {
	h := newHarness(t)
	spec := testSpec()
	spec.ApproveAfter = []bool{true, false, false, false}
	in := input(spec)
	in.Approvals = ApprovalPolicy{RequiredApprovers: 2}
	var first, again, carol *updateOutcome
	h.at(10*time.Minute, func() { first = h.update(UpdateApprove, "bob") })
	h.at(20*time.Minute, func() {
		again = h.update(UpdateApprove, "bob")
		h.signal(SignalApprove, "bob", "twice") // refused too
	})
	h.at(30*time.Minute, func() {
		p := h.progress()
		require.Equal(t, StateAwaitingApproval, p.State)
		require.Equal(t, []string{"bob"}, p.PendingApproval.ApprovedBy)
		require.Equal(t, 2, p.PendingApproval.Required)
		require.Len(t, h.sent(), 1)
		carol = h.update(UpdateApprove, "carol")
	})
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
	requireAccepted(t, first)
	requireRejected(t, again, "already approved")
	requireAccepted(t, carol)
	require.Len(t, h.sent(), 4)
	require.Contains(t, auditActions(h.progress()), "bob approve refused")
}

func TestDNSShiftSelfApprovalAllowed(t *testing.T) {
	h := newHarness(t)
	spec := testSpec()
	spec.ApproveAfter = []bool{true, false, false, false}
	in := input(spec)
	in.Approvals.AllowSelfApproval = true
	h.at(5*time.Minute, func() { h.signal(SignalApprove, "alice", "mine") })
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
}

func TestDNSShiftPauseResume(t *testing.T) {
	h := newHarness(t)
	var doublePause *updateOutcome
	h.at(30*time.Second, func() { h.signal(SignalPause, "bob", "incident elsewhere") })
	h.at(31*time.Second, func() { doublePause = h.update(UpdatePause, "bob") })
	h.at(3*time.Hour, func() {
		p := h.progress()
		require.Equal(t, StatePaused, p.State)
		require.Equal(t, []batch{{90, 10}}, h.sent(), "no step starts while paused")
		h.signal(SignalResume, "bob", "all clear")
	})
	res, err := h.run(input(testSpec()))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
	requireRejected(t, doublePause, "already paused")
	require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}, {0, 100}}, h.sent())
	acts := auditActions(h.progress())
	require.Contains(t, acts, "bob pause")
	require.Contains(t, acts, "bob resume")
}

// failAt50 fails the gate while eu-west-2 holds 50.
func failAt50(b []batch, _ int) bool { return b[len(b)-1].To != 50 }

func TestDNSShiftGateFailureImmediateRollback(t *testing.T) {
	h := newHarness(t)
	h.healthy = failAt50
	res, err := h.run(input(testSpec()))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	require.Equal(t, 100, res.FromWeight)
	require.Equal(t, 0, res.ToWeight)
	require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}, {100, 0}}, h.sent())
	requireSafe(t, h)
	// Step 3 failed at its first evaluation: 6 + 6 healthy evaluations, then one failing.
	require.Equal(t, 13, h.evals, "the failure must act within one gate interval")
	p := h.progress()
	require.Equal(t, StateRolledBack, p.State)
	require.Contains(t, auditActions(p), "ferry gate failed")
	require.Equal(t, []string{"rolled-back", "rolled-back", "rolled-back", "pending"},
		[]string{p.Steps[0].Status, p.Steps[1].Status, p.Steps[2].Status, p.Steps[3].Status})
	require.False(t, p.DNS.Gates[0].Healthy)
}

func TestDNSShiftGateFailureGradualRollback(t *testing.T) {
	h := newHarness(t)
	h.healthy = failAt50
	spec := testSpec()
	spec.RollbackMode = RollbackGradual
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}, {75, 25}, {90, 10}, {100, 0}}, h.sent(),
		"gradual rollback retraces the completed steps in reverse")
	requireSafe(t, h)
	// Each retraced step dwells with gates again: 13 forward + 6 + 6.
	require.Equal(t, 25, h.evals)
}

func TestDNSShiftGradualRollbackFallsToImmediate(t *testing.T) {
	h := newHarness(t)
	// Fails at 50%, and again at 25% on the way down.
	h.healthy = func(b []batch, _ int) bool {
		last := b[len(b)-1].To
		return last != 50 && !(last == 25 && len(b) > 3)
	}
	spec := testSpec()
	spec.RollbackMode = RollbackGradual
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}, {75, 25}, {100, 0}}, h.sent())
	require.Contains(t, auditActions(h.progress()), "ferry rollback immediate")
}

func TestDNSShiftRollbackSignalMidDwell(t *testing.T) {
	h := newHarness(t)
	var again *updateOutcome
	h.at(90*time.Second, func() { // step 2's dwell
		h.signal(SignalRollback, "bob", "latency up")
		again = h.update(UpdateRollback, "carol")
	})
	start := h.env.Now()
	res, err := h.run(input(testSpec()))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	require.Equal(t, []batch{{90, 10}, {75, 25}, {100, 0}}, h.sent())
	require.Less(t, h.env.Now().Sub(start), 2*time.Minute, "the rollback must not wait for the dwell to end")
	requireRejected(t, again, "already rolling back")
	p := h.progress()
	require.Contains(t, auditActions(p), "bob rollback")
	require.Contains(t, p.Message, "latency up")
}

func TestDNSShiftGateFailurePause(t *testing.T) {
	h := newHarness(t)
	// Fails once at 50%, healthy afterwards.
	failed := false
	h.healthy = func(b []batch, _ int) bool {
		if b[len(b)-1].To == 50 && !failed {
			failed = true
			return false
		}
		return true
	}
	spec := testSpec()
	spec.OnGateFailure = OnGateFailPause
	h.at(time.Hour, func() {
		p := h.progress()
		require.Equal(t, StatePaused, p.State)
		require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}}, h.sent())
		require.Contains(t, auditActions(p), "ferry pause")
		h.signal(SignalResume, "bob", "checked: a blip")
	})
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
	require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}, {0, 100}}, h.sent())
}

func TestDNSShiftFailureThreshold(t *testing.T) {
	h := newHarness(t)
	// Every second evaluation fails: never two in a row.
	h.healthy = func(_ []batch, eval int) bool { return eval%2 == 0 }
	spec := testSpec()
	spec.Gates[0].FailureThreshold = 2
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
}

func TestDNSShiftPlanDrift(t *testing.T) {
	h := newHarness(t)
	in := input(testSpec())
	in.PlanHash = DNSShiftPlanHash(in.Spec, testObs())
	h.obs.From.Weight = 80 // someone changed the weights since the plan
	h.obs.To.Weight = 20
	_, err := h.run(in)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "%v", err)
	require.True(t, HasErrorType(err, ErrPlanDrifted), "%v", err)
	require.True(t, ae.NonRetryable())
	require.Contains(t, err.Error(), "plan drifted")
	require.Empty(t, h.sent())
	require.Equal(t, StateFailed, h.progress().State)
}

func TestDNSShiftPlanHashMatches(t *testing.T) {
	h := newHarness(t)
	in := input(testSpec())
	in.PlanHash = DNSShiftPlanHash(in.Spec, testObs())
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
}

func TestDNSShiftCancel(t *testing.T) {
	h := newHarness(t)
	h.at(90*time.Second, h.env.CancelWorkflow)
	_, err := h.run(input(testSpec()))
	var ce *temporal.CanceledError
	require.True(t, errors.As(err, &ce), "%v", err)
	require.Equal(t, []batch{{90, 10}, {75, 25}}, h.sent(), "cancel stops without undoing")
	p := h.progress()
	require.Equal(t, StateCancelled, p.State)
	require.Contains(t, auditActions(p), "ferry cancelled")
	require.Equal(t, 75, p.DNS.FromWeight)
}

func TestDNSShiftRollbackWhilePaused(t *testing.T) {
	h := newHarness(t)
	spec := testSpec()
	spec.RollbackMode = RollbackGradual
	h.at(70*time.Second, func() { h.signal(SignalPause, "bob", "hold") })
	var rb *updateOutcome
	h.at(time.Hour, func() { rb = h.update(UpdateRollback, "bob") })
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	requireAccepted(t, rb)
	require.Equal(t, []batch{{90, 10}, {75, 25}, {90, 10}, {100, 0}}, h.sent())
}

func TestDNSShiftPreflightFailure(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Route53{})
	env.RegisterActivity(&activities.Gates{})
	env.OnActivity(r53.Preflight, mock.Anything, mock.Anything).Return(activities.PreflightOutput{},
		temporal.NewNonRetryableApplicationError("no hosted zone named nope.example.", activities.ErrNoSuchZone, nil))
	env.ExecuteWorkflow(DNSShift, input(testSpec()))
	err := env.GetWorkflowError()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "%v", err)
	require.True(t, HasErrorType(err, activities.ErrNoSuchZone), "%v", err)
	require.Contains(t, ae.Error(), "nothing was changed")
}

func TestPlanDNSShiftWorkflow(t *testing.T) {
	h := newHarness(t)
	spec := testSpec()
	spec.ApproveAfter = []bool{false, false, true, false}
	h.env.ExecuteWorkflow(PlanDNSShift, PlanDNSShiftInput{Spec: spec})
	require.NoError(t, h.env.GetWorkflowError())
	var p Plan
	require.NoError(t, h.env.GetWorkflowResult(&p))
	require.Equal(t, KindDNSShift, p.Kind)
	require.Equal(t, "dns/shop.example/www.shop.example/A", p.ID)
	require.Equal(t, DNSShiftPlanHash(spec, testObs()), p.Hash)
	require.Len(t, p.Steps, 4)
	require.True(t, p.Steps[2].NeedsApproval)
	require.Equal(t, time.Minute, p.Steps[0].Wait)
	require.True(t, strings.Contains(p.Steps[0].Description, "eu-west-1=90 eu-west-2=10"), p.Steps[0].Description)
	require.Empty(t, h.sent(), "a plan changes nothing")
}

func TestDNSShiftGateFailsWhileAwaitingApproval(t *testing.T) {
	h := newHarness(t)
	spec := testSpec()
	spec.ApproveAfter = []bool{false, true, false, false} // hold at 25%
	// Healthy through the dwells, failing once the shift holds for approval.
	h.healthy = func(b []batch, eval int) bool { return eval <= 12 }
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	require.Equal(t, []batch{{90, 10}, {75, 25}, {100, 0}}, h.sent(), "a failing gate rolls back even with nobody approving")
	require.Equal(t, 13, h.evals, "12 in the two dwells, then one during the hold")
	p := h.progress()
	require.Nil(t, p.PendingApproval)
	acts := auditActions(p)
	require.Contains(t, acts, "ferry gate failed")
	require.Contains(t, acts, "ferry rollback")
}

func TestDNSShiftGateFailureAuditedOnce(t *testing.T) {
	h := newHarness(t)
	spec := testSpec()
	spec.OnGateFailure = OnGateFailPause
	h.healthy = func(b []batch, _ int) bool { return b[len(b)-1].To != 50 } // keeps failing at 50%
	h.at(2*time.Hour, func() { h.signal(SignalRollback, "bob", "not recovering") })
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	n := 0
	for _, a := range auditActions(h.progress()) {
		if a == "ferry gate failed" {
			n++
		}
	}
	require.Equal(t, 1, n, "a gate that stays failing is audited when it crosses its threshold, not every evaluation")
	require.Greater(t, h.evals, 13, "gates keep running while paused")
}
