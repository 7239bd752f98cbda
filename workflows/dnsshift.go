package workflows

import (
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
// preflight, optional plan-hash check, then per step one batch setting both weights (which
// Route 53 refuses if someone changed the record sets since ferry last saw them: the shift
// then pauses for a person), INSYNC, a dwell of max(bake, TTL) with gates, and an approval
// when asked. A Route 53 outage holds a step blocked rather than failing it. Gate failures
// and rollback requests restore the original weights (immediately or gradually), keeping
// whatever else anyone changed in the record sets.
func DNSShift(ctx workflow.Context, in DNSShiftInput) (DNSShiftResult, error) {
	w := &dnsShift{}
	if err := w.setup(ctx, in); err != nil {
		return DNSShiftResult{Outcome: Outcome{State: StateFailed, Message: err.Error()}}, err
	}
	res, err := runKind[DNSShiftResult](ctx, "dns shift", w)
	if isContinue(err) {
		return w.continueAsNew(ctx)
	}
	releaseLocks(ctx, w.s)
	return res, err
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

// holdBeat is how often the gates run while the shift holds: the slower of the dwell's beat
// and holdGateInterval, unless the run's budgets set it (rehearsals and tests).
func holdBeat(in DNSShiftInput) time.Duration {
	if b := in.Budgets; b != nil && b.HoldBeat > 0 {
		return b.HoldBeat
	}
	return max(in.Spec.GateInterval, holdGateInterval)
}

type dnsShift struct {
	in   DNSShiftInput
	spec DNSShiftSpec
	s    *Steering
	log  log.Logger
	// obs is the preflight's read, kept current: its From and To are the record sets as
	// ferry last saw them except for their weights, which are from and to.
	obs   activities.PreflightOutput
	plan  DNSShiftPlan
	from  int // weights in force (as last submitted)
	to    int
	step  int // index of the step whose weights are in force; -1 before the first
	fails map[string]int
	// inconclusive counts each gate's inconclusive evaluations in a row.
	inconclusive map[string]int
	result       []GateResult
	// undoRec is the record an undo run restores (Common.Undo).
	undoRec dnsUndoRecord
	owner   owner
	// at is where the run stands, for a hand-over to the next run (continue-as-new).
	at DNSResumePoint

	// The change record (see dnsUndoRecord): a batch was sent, the weights each applied
	// batch set, and whether the last batch's outcome is unknown (it failed in a way that
	// does not prove Route 53 refused it).
	attempted bool
	applied   []dnsWeights
	uncertain bool
	// pending is the change id of a batch Route 53 accepted whose INSYNC was not yet seen,
	// and the weights it set: the step's next attempt waits on it instead of sending the
	// batch again.
	pending     string
	pendingSets dnsWeights
}

func (w *dnsShift) setup(ctx workflow.Context, in DNSShiftInput) error {
	w.in, w.spec, w.step = in, in.Spec, -1
	w.fails, w.inconclusive = map[string]int{}, map[string]int{}
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
		Start:     in.StartProof, StartDigest: StartDigest(in),
		Logger:  w.log,
		Details: w.details,
		Watch:   w.watch,
		// Holds can last hours; a slower beat than the dwell's keeps the history small
		// (each evaluation is a timer and an activity) while still catching a dying target.
		WatchInterval: holdBeat(in),
		// A hold or a long bake can outlast a history: the shift carries its state over.
		ContinueAsNew: true,
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
	at := DNSResumePoint{Stage: StageForward}
	if c := w.in.Continued; c != nil {
		// The previous run of the chain handed over: its plan, locks and progress hold.
		w.restore(ctx, c)
		at = c.At
	} else if err := w.prepare(ctx); err != nil {
		return DNSShiftResult{}, err
	}
	for i := at.Step; i < len(w.plan.Steps); i++ {
		rollback, err := w.runStep(ctx, i, at)
		if err != nil {
			return DNSShiftResult{}, err
		}
		if rollback {
			return w.rollback(ctx)
		}
		at = DNSResumePoint{Stage: StageForward, Step: i + 1}
	}
	msg := fmt.Sprintf("completed: %s=%d %s=%d", w.spec.From, w.from, w.spec.To, w.to)
	w.s.Audit(ctx, SystemIdentity, "completed", msg, "")
	w.s.Finish(ctx, StateCompleted, msg)
	w.log.Info("dns shift completed", "from", w.from, "to", w.to)
	return w.res(StateCompleted, msg), nil
}

// prepare reads the record sets, plans, checks the pinned hash and takes the locks.
func (w *dnsShift) prepare(ctx workflow.Context) error {
	w.s.SetPhase(ctx, "preflight", "reading the record sets")
	obs, err := preflight(ctx, w.spec)
	if err != nil {
		return err
	}
	w.obs = obs
	plan, err := ComputeDNSShiftPlan(w.spec, obs)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("plan dns shift: "+err.Error(), ErrPlanInvalid, err)
	}
	w.plan = plan
	w.from, w.to = plan.OriginalFrom, plan.OriginalTo
	if err := checkDrift(w.in.PlanHash, plan.Plan.Hash, strings.Join(plan.Plan.Observations[:3], "; "), dnsShiftPlanHashV1(w.spec, obs)); err != nil {
		return err
	}
	if err := holdLocks(ctx, w.s, w.in.Common, plan.Plan.Resources); err != nil {
		return err
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
	return nil
}

// runStep runs step i from stage at.Stage on: its batch, its dwell with the gates, its
// approval. It reports whether the shift must roll back. w.at follows it, so a hold that
// hands over to a new run (errContinue) is resumed at the same stage.
func (w *dnsShift) runStep(ctx workflow.Context, i int, at DNSResumePoint) (rollback bool, err error) {
	n := len(w.plan.Steps)
	st := w.plan.Steps[i]
	if at.Stage == StageForward {
		w.at = DNSResumePoint{Stage: StageForward, Step: i}
		if at.Reread {
			// Handed over while paused on drift: the person's resume reads the sets again.
			if err := w.afterDrift(ctx, st.Name); err != nil || w.s.RollbackRequest() != nil {
				return w.s.RollbackRequest() != nil, err
			}
		}
		if err := w.s.WaitWhilePaused(ctx); err != nil {
			return false, err
		}
		if w.s.RollbackRequest() != nil {
			return true, nil
		}
		w.s.SetPhase(ctx, fmt.Sprintf("step %d/%d: %d%%", i+1, n, st.Percent), st.Description)
		w.s.StartStep(ctx, i)
		if err := w.forward(ctx, st); err != nil {
			if isContinue(err) {
				return false, err
			}
			if w.s.RollbackRequest() != nil && !temporal.IsCanceledError(err) && ctx.Err() == nil {
				// Asked for while the step held (an outage, a drift): taken now, as asked.
				w.s.EndStep(ctx, i, StepRolledBack, failureLine(err))
				return true, nil
			}
			w.s.EndStep(ctx, i, StepFailed, failureLine(err))
			return false, err
		}
		st = w.plan.Steps[i] // a re-read after drift may have lengthened its dwell
		w.step = i
		w.s.Update(ctx, func(p *Progress) { p.DNS.StepIndex = i })
		at = DNSResumePoint{Stage: StageDwell, Step: i, DwellEnd: workflow.Now(ctx).Add(st.Dwell)}
	}
	if at.Stage == StageDwell {
		w.at = at
		outcome, reason, err := w.dwellUntil(ctx, st.Name, at.DwellEnd, at.DwellFailed)
		if err != nil {
			return false, err
		}
		w.s.EndStep(ctx, i, StepDone, "")
		if outcome == dwellGateFailed {
			if w.spec.OnGateFailure == OnGateFailPause {
				w.s.Pause(ctx, reason, st.Name)
			} else {
				w.s.RequestRollback(ctx, reason, st.Name)
			}
		}
		if w.s.RollbackRequest() != nil {
			return true, nil
		}
	}
	if st.NeedsApproval {
		w.at = DNSResumePoint{Stage: StageApproval, Step: i}
		w.s.SetPhase(ctx, fmt.Sprintf("step %d/%d: %d%%", i+1, n, st.Percent), "waiting for approval to go on")
		approved, err := w.s.AwaitApproval(ctx, st.Name)
		if err != nil {
			return false, err
		}
		if !approved {
			return true, nil
		}
	}
	return false, nil
}

// rollback restores the original weights. Immediate: one batch. Gradual: the completed
// steps in reverse, each with the same dwell and gates, then the original weights; a gate
// failing on the way down falls back to immediate, because a failing target is a reason
// to leave faster, not slower. Every batch sets known weights on the record sets as read
// at that moment (keeping anyone else's edits), so a rollback that is replayed or retried
// after a worker restart converges on the same weights.
func (w *dnsShift) rollback(ctx workflow.Context) (DNSShiftResult, error) {
	why := w.s.BeginRollback(ctx)
	w.log.Info("rolling back", "reason", why, "mode", w.spec.RollbackMode, "step", w.step)
	if w.step >= 0 && w.spec.RollbackMode == RollbackGradual {
		for j := w.step - 1; j >= 0; j-- {
			st := w.plan.Steps[j]
			w.s.SetPhase(ctx, fmt.Sprintf("rollback: back to %d%%", st.Percent), why)
			label := fmt.Sprintf("rollback to %d%%", st.Percent)
			if err := w.apply(ctx, st.FromWeight, st.ToWeight, label); err != nil {
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
		if err := w.apply(ctx, w.plan.OriginalFrom, w.plan.OriginalTo, "rollback to original weights"); err != nil {
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
