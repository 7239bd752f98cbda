package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// Error types of the DNS shift's own non-retryable failures.
const (
	ErrPlanDrifted = "PlanDrifted"
	ErrPlanInvalid = "PlanInvalid"
)

// Activity method values, called through nil pointers: the worker registers the real
// structs, the workflow only needs the names and types.
var (
	r53   *activities.Route53
	gates *activities.Gates
)

// DNSShift moves traffic between two weighted record sets along the spec's schedule:
// preflight, optional plan-hash check, then per step one UPSERT batch of both weights,
// INSYNC, a dwell of max(bake, TTL) with gates, and an approval when asked. Gate failures
// and rollback requests restore the original weights (immediately or gradually).
func DNSShift(ctx workflow.Context, in DNSShiftInput) (DNSShiftResult, error) {
	w := &dnsShift{}
	if err := w.setup(ctx, in); err != nil {
		return DNSShiftResult{Outcome: Outcome{State: StateFailed, Message: err.Error()}}, err
	}
	return runKind[DNSShiftResult](ctx, "dns shift", w)
}

// PlanDNSShift is the dry run: it reads the record sets (on a worker, which holds the cloud
// credentials) and returns the plan with its hash. It changes nothing.
func PlanDNSShift(ctx workflow.Context, in PlanDNSShiftInput) (Plan, error) {
	obs, err := preflight(ctx, in.Spec)
	if err != nil {
		return Plan{}, err
	}
	p, err := ComputeDNSShiftPlan(in.Spec, obs)
	if err != nil {
		return Plan{}, temporal.NewNonRetryableApplicationError("plan dns shift: "+err.Error(), ErrPlanInvalid, err)
	}
	return p.Plan, nil
}

// holdGateInterval is the slowest gate beat while waiting for approval or resume.
const holdGateInterval = 30 * time.Second

type dnsShift struct {
	in     DNSShiftInput
	spec   DNSShiftSpec
	s      *Steering
	log    log.Logger
	obs    activities.PreflightOutput
	plan   DNSShiftPlan
	from   int // weights in force (as last submitted)
	to     int
	step   int // index of the step whose weights are in force; -1 before the first
	fails  map[string]int
	result []GateResult
	// undoRec is the record an undo run restores (Common.Undo).
	undoRec dnsUndoRecord
	owner   owner

	// The change record (see dnsUndoRecord): a batch was sent, the weights each applied
	// batch set, and whether the last batch's outcome is unknown (it failed in a way that
	// does not prove Route 53 refused it).
	attempted bool
	applied   []dnsWeights
	uncertain bool
}

func (w *dnsShift) setup(ctx workflow.Context, in DNSShiftInput) error {
	w.in, w.spec, w.step = in, in.Spec, -1
	w.fails = map[string]int{}
	w.owner = ownerOf(ctx, in.Undo)
	if in.Undo != nil {
		rec, err := decodeRecord[dnsUndoRecord](in.Undo)
		if err != nil {
			return err
		}
		w.spec, w.undoRec = rec.Spec, rec
	}
	w.log = log.With(workflow.GetLogger(ctx), "migration", workflow.GetInfo(ctx).WorkflowExecution.ID)
	s, err := NewSteering(ctx, SteeringOptions{
		Kind:      KindDNSShift,
		Initiator: in.Initiator,
		PlanHash:  in.PlanHash,
		Approvals: in.Approvals,
		Logger:    w.log,
		Details:   w.details,
		Watch:     w.watch,
		// Holds can last hours; a slower beat than the dwell's keeps the history small
		// (each evaluation is a timer and an activity) while still catching a dying target.
		WatchInterval: max(in.Spec.GateInterval, holdGateInterval),
	})
	if err != nil {
		return err
	}
	w.s = s
	return nil
}

func (w *dnsShift) details(p Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "`%s %s` in %s: **%s=%d → %s=%d**\n\n", w.spec.RecordName, w.spec.RecordType, w.spec.Zone, w.spec.From, w.from, w.spec.To, w.to)
	for _, g := range w.result {
		mark := "✅"
		if !g.Healthy {
			mark = "❌"
		}
		fmt.Fprintf(&b, "%s %s: %s\n\n", mark, g.Name, g.Detail)
	}
	b.WriteString(RenderDetails(p))
	return b.String()
}

func (w *dnsShift) steering() *Steering { return w.s }
func (w *dnsShift) common() Common      { return w.in.Common }

func (w *dnsShift) res(state, msg string) DNSShiftResult {
	return w.resultOf(Outcome{State: state, Message: msg, Changes: w.changes()})
}

func (w *dnsShift) resultOf(o Outcome) DNSShiftResult {
	return DNSShiftResult{Outcome: o, FromWeight: w.from, ToWeight: w.to}
}

func (w *dnsShift) execute(ctx workflow.Context) (DNSShiftResult, error) {
	w.s.SetPhase(ctx, "preflight", "reading the record sets")
	obs, err := preflight(ctx, w.spec)
	if err != nil {
		return DNSShiftResult{}, err
	}
	w.obs = obs
	plan, err := ComputeDNSShiftPlan(w.spec, obs)
	if err != nil {
		return DNSShiftResult{}, temporal.NewNonRetryableApplicationError("plan dns shift: "+err.Error(), ErrPlanInvalid, err)
	}
	w.plan = plan
	w.from, w.to = plan.OriginalFrom, plan.OriginalTo
	if err := checkDrift(w.in.PlanHash, plan.Plan.Hash, strings.Join(plan.Plan.Observations[:3], "; "), dnsShiftPlanHashV1(w.spec, obs)); err != nil {
		return DNSShiftResult{}, err
	}
	if err := holdLocks(ctx, w.s, w.in.Common, plan.Plan.Resources); err != nil {
		return DNSShiftResult{}, err
	}
	names, descs := make([]string, len(plan.Steps)), make([]string, len(plan.Steps))
	for i, st := range plan.Steps {
		names[i], descs[i] = st.Name, st.Description
	}
	w.s.SetSteps(ctx, names, descs)
	w.s.Update(ctx, func(p *Progress) {
		p.PlanHash = plan.Plan.Hash
		p.DNS = &DNSProgress{FromWeight: w.from, ToWeight: w.to, StepIndex: -1}
	})
	w.s.Audit(ctx, SystemIdentity, "preflight",
		fmt.Sprintf("plan %s: %d step(s); %s", plan.Plan.Hash, len(plan.Steps), strings.Join(plan.Plan.Observations, "; ")), "")

	for i, st := range plan.Steps {
		if err := w.s.WaitWhilePaused(ctx); err != nil {
			return DNSShiftResult{}, err
		}
		if w.s.RollbackRequest() != nil {
			return w.rollback(ctx)
		}
		w.s.SetPhase(ctx, fmt.Sprintf("step %d/%d: %d%%", i+1, len(plan.Steps), st.Percent), st.Description)
		w.s.StartStep(ctx, i)
		if err := w.apply(ctx, st.FromWeight, st.ToWeight, st.Name); err != nil {
			w.s.EndStep(ctx, i, StepFailed, failureLine(err))
			return DNSShiftResult{}, err
		}
		w.step = i
		w.s.Update(ctx, func(p *Progress) { p.DNS.StepIndex = i })

		outcome, reason, err := w.dwell(ctx, st.Name, st.Dwell)
		if err != nil {
			return DNSShiftResult{}, err
		}
		w.s.EndStep(ctx, i, StepDone, "")
		switch outcome {
		case dwellGateFailed:
			if w.spec.OnGateFailure == OnGateFailPause {
				w.s.Pause(ctx, reason, st.Name)
			} else {
				w.s.RequestRollback(ctx, reason, st.Name)
			}
		}
		if w.s.RollbackRequest() != nil {
			return w.rollback(ctx)
		}
		if st.NeedsApproval {
			w.s.SetPhase(ctx, fmt.Sprintf("step %d/%d: %d%%", i+1, len(plan.Steps), st.Percent), "waiting for approval to go on")
			approved, err := w.s.AwaitApproval(ctx, st.Name)
			if err != nil {
				return DNSShiftResult{}, err
			}
			if !approved {
				return w.rollback(ctx)
			}
		}
	}
	msg := fmt.Sprintf("completed: %s=%d %s=%d", w.spec.From, w.from, w.spec.To, w.to)
	w.s.Audit(ctx, SystemIdentity, "completed", msg, "")
	w.s.Finish(ctx, StateCompleted, msg)
	w.log.Info("dns shift completed", "from", w.from, "to", w.to)
	return w.res(StateCompleted, msg), nil
}

// apply sends one batch setting both weights and waits until Route 53 reports it INSYNC.
func (w *dnsShift) apply(ctx workflow.Context, from, to int, label string) error {
	if from+to <= 0 || from < 0 || to < 0 || from > 255 || to > 255 {
		// The plan cannot produce this; refusing here keeps the invariant even if it did.
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("refusing weights %s=%d %s=%d: total must be 1..510 and each 0..255", w.spec.From, from, w.spec.To, to), ErrPlanInvalid, nil)
	}
	summary := fmt.Sprintf("%s: %s=%d %s=%d", label, w.spec.From, from, w.spec.To, to)
	// During a rollback each attempt is bounded by the undo budget instead of a count, and
	// keepTrying starts another after it: the rollback never gives up.
	undoBudget := undoAttempt(w.s, w.in.Common)
	attempts := int32(10)
	if undoBudget > 0 {
		attempts = 0
	}
	cctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// One API call plus at most ~13s of in-activity throttle retries, each heartbeating:
		// a worker that dies mid-call is noticed after the heartbeat timeout, not minutes.
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: undoBudget,
		HeartbeatTimeout:       15 * time.Second,
		// The activity already retries Throttling briefly; this policy covers longer
		// outages. Every attempt sends the identical UPSERT batch, so retrying is safe.
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: attempts,
		},
		Summary: summary,
	})
	in := activities.ChangeWeightsInput{
		ZoneID: w.obs.ZoneID, From: w.obs.From, To: w.obs.To,
		FromWeight: int64(from), ToWeight: int64(to),
		Comment: fmt.Sprintf("ferry %s: %s", workflow.GetInfo(ctx).WorkflowExecution.ID, summary),
	}
	var ch activities.ChangeWeightsOutput
	// Recorded before the call: once a batch may have been sent, the run has something to
	// undo (compensation next to the step).
	w.attempted = true
	// Activity errors go up unwrapped: a fmt wrapper would become the workflow failure's
	// outer ApplicationError (type "wrapError") and hide the activity's error type.
	if err := workflow.ExecuteActivity(cctx, r53.ChangeWeights, in).Get(ctx, &ch); err != nil {
		// Route 53 applies a batch atomically or not at all: a refusal (a non-retryable
		// error) changed nothing, but a timeout or an exhausted retry may hide a batch
		// that was applied.
		var ae *temporal.ApplicationError
		if !(errors.As(err, &ae) && ae.NonRetryable()) {
			w.uncertain = true
		}
		return err
	}
	w.uncertain = false
	w.from, w.to = from, to
	w.applied = append(w.applied, dnsWeights{From: from, To: to})
	w.s.Update(ctx, func(p *Progress) { p.DNS.FromWeight, p.DNS.ToWeight = from, to })
	w.s.Audit(ctx, SystemIdentity, "change weights", fmt.Sprintf("%s (change %s)", summary, ch.ChangeID), label)

	wctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// AWS documents propagation within 60 s; the generous bound covers a slow
		// control plane without hiding a change that never converges.
		StartToCloseTimeout:    10 * time.Minute,
		ScheduleToCloseTimeout: undoBudget,
		// It heartbeats every poll (at most 2 s apart), so a dead worker's wait moves on
		// within seconds; a retry polls the same change at once.
		HeartbeatTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: attempts,
		},
		Summary: fmt.Sprintf("wait INSYNC %s (%s)", ch.ChangeID, summary),
	})
	var ins activities.WaitInsyncOutput
	if err := workflow.ExecuteActivity(wctx, r53.WaitInsync, activities.WaitInsyncInput{ChangeID: ch.ChangeID, PollInterval: 2 * time.Second}).Get(ctx, &ins); err != nil {
		return err
	}
	return nil
}

// undoApply is apply during a rollback: it keeps trying until the batch is in (or a person
// cancels), showing the shift blocked meanwhile.
func (w *dnsShift) undoApply(ctx workflow.Context, from, to int, label string) error {
	return keepTrying(ctx, w.s, w.in.budgets(), "rollback", func(ctx workflow.Context) error {
		return w.apply(ctx, from, to, label)
	})
}

// rollback restores the original weights. Immediate: one batch. Gradual: the completed
// steps in reverse, each with the same dwell and gates, then the original weights; a gate
// failing on the way down falls back to immediate, because a failing target is a reason
// to leave faster, not slower. Every batch UPSERTs known weights, so a rollback that is
// replayed or retried after a worker restart converges on the same state.
func (w *dnsShift) rollback(ctx workflow.Context) (DNSShiftResult, error) {
	why := w.s.BeginRollback(ctx)
	w.log.Info("rolling back", "reason", why, "mode", w.spec.RollbackMode, "step", w.step)
	if w.step >= 0 && w.spec.RollbackMode == RollbackGradual {
		for j := w.step - 1; j >= 0; j-- {
			st := w.plan.Steps[j]
			w.s.SetPhase(ctx, fmt.Sprintf("rollback: back to %d%%", st.Percent), why)
			label := fmt.Sprintf("rollback to %d%%", st.Percent)
			if err := w.undoApply(ctx, st.FromWeight, st.ToWeight, label); err != nil {
				return DNSShiftResult{}, err
			}
			w.s.EndStep(ctx, w.step, StepRolledBack, "")
			w.step = j
			w.s.Update(ctx, func(p *Progress) { p.DNS.StepIndex = j })
			outcome, reason, err := w.dwell(ctx, label, st.Dwell)
			if err != nil {
				return DNSShiftResult{}, err
			}
			if outcome == dwellGateFailed {
				w.s.Audit(ctx, SystemIdentity, "rollback immediate", reason+"; finishing the rollback in one batch", label)
				break
			}
		}
	}
	if w.from != w.plan.OriginalFrom || w.to != w.plan.OriginalTo || w.uncertain {
		w.s.SetPhase(ctx, "rollback: original weights", why)
		if err := w.undoApply(ctx, w.plan.OriginalFrom, w.plan.OriginalTo, "rollback to original weights"); err != nil {
			return DNSShiftResult{}, err
		}
	}
	for j := w.step; j >= 0; j-- {
		w.s.EndStep(ctx, j, StepRolledBack, "")
	}
	w.step = -1
	w.s.Update(ctx, func(p *Progress) { p.DNS.StepIndex = -1 })
	msg := fmt.Sprintf("rolled back to %s=%d %s=%d (%s)", w.spec.From, w.from, w.spec.To, w.to, why)
	w.s.Audit(ctx, SystemIdentity, "rolled back", msg, "")
	w.s.Finish(ctx, StateRolledBack, msg)
	return w.res(StateRolledBack, msg), nil
}

// preflight runs the read-only Route 53 preflight with its options.
func preflight(ctx workflow.Context, spec DNSShiftSpec) (activities.PreflightOutput, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// Two or three reads; the bound is also how long a dead worker holds the shift.
		StartToCloseTimeout: 15 * time.Second,
		// Unknown zones and set identifiers come back non-retryable; the rest (network,
		// throttling) is worth a few tries before telling a person.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 20 * time.Second, MaximumAttempts: 5},
		Summary:     fmt.Sprintf("preflight %s %s: %s, %s", spec.RecordName, spec.RecordType, spec.From, spec.To),
	})
	var out activities.PreflightOutput
	err := workflow.ExecuteActivity(actx, r53.Preflight, activities.PreflightInput{
		Zone: spec.Zone, RecordName: spec.RecordName, RecordType: spec.RecordType, From: spec.From, To: spec.To,
	}).Get(ctx, &out)
	return out, err
}
