// The DNS shift's dwell: holding each step's weights while the gates are evaluated, and
// what a failing gate does.

package workflows

import (
	"fmt"
	"time"

	"github.com/ferryhq/ferry/activities"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// watch keeps the gates running while the shift holds at a step (approval, pause): traffic
// is still flowing to the target, so a failure must still act.
func (w *dnsShift) watch(ctx workflow.Context) error {
	if len(w.spec.Gates) == 0 || w.step < 0 {
		return nil
	}
	label := w.plan.Steps[w.step].Name
	v, err := w.evaluateGates(ctx, label)
	if err != nil {
		return err
	}
	w.actOnInconclusive(ctx, v, label)
	if v.failed == "" {
		return nil
	}
	if w.spec.OnGateFailure == OnGateFailPause {
		w.s.Pause(ctx, v.failed, label)
	} else {
		w.s.RequestRollback(ctx, v.failed, label)
	}
	return nil
}

// actOnInconclusive does what a gate that has just become inconclusive asks: pause for a
// person, or roll back. It acts once per inconclusive spell (at the crossing of the gate's
// inconclusiveLimit), so a person who resumes past it has accepted it until its verdict
// changes; a failing gate, by contrast, acts at every evaluation.
func (w *dnsShift) actOnInconclusive(ctx workflow.Context, v gateVerdicts, label string) {
	switch {
	case v.rollback != "" && !w.s.RollingBack():
		w.s.RequestRollback(ctx, v.rollback, label)
	case v.pause != "":
		w.s.Pause(ctx, v.pause, label)
	}
}

type dwellOutcome int

const (
	dwellDone dwellOutcome = iota
	dwellRollback
	dwellGateFailed
)

// dwell holds the weights for d, evaluating the gates every GateInterval (so a failure is
// acted on within one interval). It returns early when a rollback is requested and, with
// action "rollback", on the first failed gate; with action "pause" the caller pauses and the
// dwell has already run to its end, because pausing holds the next step, not the clock.
func (w *dnsShift) dwell(ctx workflow.Context, label string, d time.Duration) (dwellOutcome, string, error) {
	return w.dwellUntil(ctx, label, workflow.Now(ctx).Add(d), "")
}

// dwellUntil is dwell until end, with failed a gate failure already seen in it (a dwell
// resumed by the next run of the chain). Forward, it hands over to a new run between gate
// beats when the history grows long (errContinue, with w.at naming the dwell's end).
func (w *dnsShift) dwellUntil(ctx workflow.Context, label string, end time.Time, failed string) (dwellOutcome, string, error) {
	if len(w.spec.Gates) == 0 {
		d := end.Sub(workflow.Now(ctx))
		interrupted, err := w.s.Sleep(ctx, d, fmt.Sprintf("dwell %s after %s", d, label))
		if interrupted {
			return dwellRollback, "", err
		}
		return dwellDone, "", err
	}
	every := w.spec.GateInterval
	if every <= 0 {
		every = 10 * time.Second
	}
	for {
		left := end.Sub(workflow.Now(ctx))
		if left <= 0 {
			break
		}
		wait := min(every, left)
		interrupted, err := w.s.Sleep(ctx, wait, fmt.Sprintf("dwell after %s: gates in %s, %s left", label, wait, left.Round(time.Second)))
		if err != nil {
			return dwellDone, "", err
		}
		if interrupted {
			return dwellRollback, "", nil
		}
		v, err := w.evaluateGates(ctx, label)
		if err != nil {
			return dwellDone, "", err
		}
		w.actOnInconclusive(ctx, v, label)
		if v.rollback != "" && !w.s.RollingBack() {
			return dwellRollback, "", nil
		}
		reason := v.failed
		if reason != "" && failed == "" {
			failed = reason
			if w.spec.OnGateFailure != OnGateFailPause || w.s.RollingBack() {
				return dwellGateFailed, reason, nil
			}
			// Pause at once so no one approves or resumes past a failing gate unawares.
			w.s.Pause(ctx, reason, label)
		}
		if end.After(workflow.Now(ctx)) && w.s.shouldContinue(ctx) {
			w.at.DwellEnd, w.at.DwellFailed = end, failed
			return dwellDone, "", errContinue
		}
	}
	if failed != "" {
		return dwellGateFailed, failed, nil
	}
	return dwellDone, "", nil
}

// gateVerdicts is what one evaluation of the gates asks for: failed is why a gate failed
// (reached its failure threshold); rollback and pause are why a gate that has just become
// inconclusive asks for that action. Each is "" when nothing asks.
type gateVerdicts struct {
	failed, rollback, pause string
}

// evaluateGates runs the gates once, records the results in the progress, and audits
// verdict changes only (a gate crossing its failure or inconclusive limit, and its
// recovery), so a long dwell's history and the state handed over by continue-as-new stay
// small.
func (w *dnsShift) evaluateGates(ctx workflow.Context, step string) (gateVerdicts, error) {
	checks := make([]activities.GateCheck, len(w.spec.Gates))
	for i, g := range w.spec.Gates {
		checks[i] = gateCheck(g)
	}
	var out activities.EvaluateGatesOutput
	err := w.runGates(ctx, step, activities.EvaluateGatesInput{Gates: checks}).Get(ctx, &out)
	now := workflow.Now(ctx)
	results := make([]GateResult, len(w.spec.Gates))
	switch {
	case err != nil && (temporal.IsCanceledError(err) || ctx.Err() != nil):
		return gateVerdicts{}, err
	case err != nil:
		for i, g := range w.spec.Gates {
			results[i] = GateResult{Name: g.Name, Verdict: string(activities.VerdictFail), Detail: "could not evaluate: " + err.Error(), Time: now}
		}
	default:
		for i, g := range w.spec.Gates {
			results[i] = GateResult{Name: g.Name, Verdict: string(activities.VerdictFail), Detail: "no result", Time: now}
			if i < len(out.Results) {
				r := out.Results[i]
				results[i] = GateResult{Name: g.Name, Healthy: r.Healthy, Verdict: string(r.Verdict), Detail: r.Detail, Time: r.Time}
				if r.Verdict == "" { // recorded before verdicts: healthy or not
					results[i].Verdict = string(activities.VerdictFail)
					if r.Healthy {
						results[i].Verdict = string(activities.VerdictPass)
					}
				}
			}
		}
	}
	var v gateVerdicts
	m := metricsOf(ctx, KindDNSShift)
	for _, r := range results {
		m.WithTags(map[string]string{"verdict": r.Verdict}).Counter(MetricGateEvaluations).Inc(1)
	}
	w.result = results
	w.s.Update(ctx, func(p *Progress) { p.DNS.Gates = results })
	for i, g := range w.spec.Gates {
		r := results[i]
		threshold := max(g.FailureThreshold, 1)
		switch activities.Verdict(r.Verdict) {
		case activities.VerdictPass:
			if w.fails[g.Name] >= threshold || w.inconclusive[g.Name] > g.InconclusiveLimit {
				w.s.Audit(ctx, SystemIdentity, "gate recovered", g.Name+": "+r.Detail, step)
			}
			w.fails[g.Name], w.inconclusive[g.Name] = 0, 0
		case activities.VerdictInconclusive:
			// No evidence either way: the failure count neither grows nor resets.
			w.inconclusive[g.Name]++
			if w.inconclusive[g.Name] != g.InconclusiveLimit+1 {
				continue
			}
			reason := fmt.Sprintf("gate inconclusive: %s (%d in a row): %s", g.Name, w.inconclusive[g.Name], r.Detail)
			w.s.Audit(ctx, SystemIdentity, "gate inconclusive", reason, step)
			w.log.Warn("gate inconclusive", "step", step, "reason", reason)
			switch g.OnInconclusive {
			case OnInconclusiveIgnore:
			case OnInconclusiveRollback:
				v.rollback = first(v.rollback, reason)
			default:
				v.pause = first(v.pause, reason)
			}
		default:
			w.inconclusive[g.Name] = 0
			w.fails[g.Name]++
			if w.fails[g.Name] < threshold {
				continue
			}
			reason := fmt.Sprintf("gate failed: %s (%d consecutive): %s", g.Name, w.fails[g.Name], r.Detail)
			v.failed = first(v.failed, reason)
			// A gate that stays failing is reported every evaluation (so a resume past it
			// pauses again) but audited once, when it crosses its threshold.
			if w.fails[g.Name] == threshold {
				w.s.Audit(ctx, SystemIdentity, "gate failed", reason, step)
				w.log.Warn("gate failed", "step", step, "reason", reason)
			}
		}
	}
	return v, nil
}

// first returns a unless it is empty, then b.
func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func gateCheck(g Gate) activities.GateCheck {
	c := activities.GateCheck{Name: g.Name, HealthCheckID: g.HealthCheckID, Prometheus: g.Prometheus, Metric: g.Metric}
	if g.HTTP != nil {
		c.HTTP = &activities.HTTPCheck{URL: g.HTTP.URL, ExpectStatus: g.HTTP.ExpectStatus, Timeout: g.HTTP.Timeout}
	}
	if g.Alarm != nil {
		c.Alarm = &activities.AlarmCheck{Name: g.Alarm.Name, Region: g.Alarm.Region}
	}
	return c
}

// runGates evaluates the gates once. Runs since local-gate-checks do it as a local
// activity, on the worker that runs the workflow task: a gate check is a few seconds of
// reads, and a local activity costs one history event (its marker) where an activity costs
// three and a workflow task more, so a held shift's history grows about half as fast (6
// events a beat instead of 11; the history bench measures it).
func (w *dnsShift) runGates(ctx workflow.Context, step string, in activities.EvaluateGatesInput) workflow.Future {
	summary := fmt.Sprintf("gates after %s", step)
	// One quick retry for a transient API error; beyond that the evaluation counts as
	// failing, since a gate that cannot be read cannot vouch for the step.
	retry := &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 2}
	if workflow.GetVersion(ctx, "local-gate-checks", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			// Probes time out in seconds; a bound well above that, but short, lets another
			// worker take over quickly when the one evaluating dies.
			StartToCloseTimeout: 30 * time.Second,
			RetryPolicy:         retry,
			Summary:             summary,
		})
		return workflow.ExecuteActivity(actx, gates.EvaluateGates, in)
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		// Each probe bounds itself in seconds; if the worker dies mid-check the workflow task
		// times out and another worker runs the check again.
		ScheduleToCloseTimeout: 30 * time.Second,
		RetryPolicy:            retry,
		Summary:                summary,
	})
	return workflow.ExecuteLocalActivity(lctx, gates.EvaluateGates, in)
}
