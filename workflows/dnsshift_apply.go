// The DNS shift's batches: how a step's weights reach Route 53 without overwriting anyone
// else's change to the record sets (drift), and how a step rides out a Route 53 outage.

package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// forward applies a forward step's weights. A Route 53 outage holds it blocked (apply). If
// someone changed the record sets outside ferry since it last read them, Route 53 refuses
// the batch and the shift pauses for a person, keeping their change: resumed, it reads the
// record sets again and applies the step from them; rolled back, it returns (the caller
// sees the rollback request).
func (w *dnsShift) forward(ctx workflow.Context, st DNSStep) error {
	for {
		err := w.apply(ctx, st.FromWeight, st.ToWeight, st.Name)
		if err == nil || !HasErrorType(err, activities.ErrRecordDrifted) {
			return err
		}
		if herr := w.holdOnDrift(ctx, st.Name, err); herr != nil {
			return herr
		}
		if w.s.RollbackRequest() != nil {
			return err
		}
	}
}

// holdOnDrift pauses the shift on a drift error until a person resumes it (then it reads
// the record sets again) or asks for a rollback.
func (w *dnsShift) holdOnDrift(ctx workflow.Context, label string, drift error) error {
	line := failureLine(drift)
	w.s.AuditDetails(ctx, SystemIdentity, "drift", line, label, drift.Error())
	w.s.Pause(ctx, "drift: "+line, label)
	w.s.SetMessage(ctx, fmt.Sprintf("paused on drift: %s; ferry changed nothing. Resume to go on from the record sets as they are now (keeping that change), or roll back", line))
	w.log.Warn("record sets drifted; paused", "step", label, "drift", line)
	return w.afterDrift(ctx, label)
}

// afterDrift waits while the shift is paused on drift, then reads the record sets again and
// goes on from them (unless a rollback was asked for). A run that hands over to the next
// while paused says so in its resume point (Reread), so the next run reads them too.
func (w *dnsShift) afterDrift(ctx workflow.Context, label string) error {
	w.at.Reread = true
	if err := w.s.WaitWhilePaused(ctx); err != nil {
		return err
	}
	if w.s.RollbackRequest() != nil {
		return nil
	}
	w.s.SetMessage(ctx, "resumed after drift: reading the record sets again")
	obs, err := preflight(ctx, w.spec)
	if err != nil {
		return err
	}
	w.rebase(ctx, obs, label)
	w.at.Reread = false
	return nil
}

// rebase makes what was just read the shift's view of the record sets: the next batch
// deletes them as they are now. The dwells left grow to a TTL raised outside ferry, since
// the dwell is what lets resolvers' caches of the old answer expire.
func (w *dnsShift) rebase(ctx workflow.Context, obs activities.PreflightOutput, label string) {
	w.obs = obs
	w.from, w.to = int(obs.From.Weight), int(obs.To.Weight)
	w.uncertain, w.pending = false, ""
	dwell := max(w.spec.BakeTime, time.Duration(max(obs.From.TTL, obs.To.TTL))*time.Second)
	for j := range w.plan.Steps {
		w.plan.Steps[j].Dwell = max(w.plan.Steps[j].Dwell, dwell)
	}
	w.s.Update(ctx, func(p *Progress) { p.DNS.FromWeight, p.DNS.ToWeight = w.from, w.to })
	w.s.Audit(ctx, SystemIdentity, "re-read", fmt.Sprintf("going on from the record sets as they are now: %s; %s",
		describeSet(obs.From), describeSet(obs.To)), label)
}

// apply sets both weights and waits until Route 53 reports the change INSYNC. Forward, an
// attempt that keeps failing with a retryable error (an outage) holds the shift blocked
// and tries again (holdThrough); during a rollback, it keeps trying (keepTrying): a
// rollback never gives up.
func (w *dnsShift) apply(ctx workflow.Context, from, to int, label string) error {
	if from+to <= 0 || from < 0 || to < 0 || from > 255 || to > 255 {
		// The plan cannot produce this; refusing here keeps the invariant even if it did.
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("refusing weights %s=%d %s=%d: total must be 1..510 and each 0..255", w.spec.From, from, w.spec.To, to), ErrPlanInvalid, nil)
	}
	step := func(ctx workflow.Context) error { return w.batch(ctx, from, to, label) }
	if w.s.RollingBack() {
		return keepTrying(ctx, w.s, w.in.budgets(), "rollback", step)
	}
	return holdThrough(ctx, w.s, w.in.budgets(), label, step)
}

// batch is one attempt at a step: the batch (unless an earlier attempt's went in and only
// its INSYNC is outstanding), then the INSYNC wait, each activity bounded by the attempt
// budget rather than a count of retries.
func (w *dnsShift) batch(ctx workflow.Context, from, to int, label string) error {
	summary := fmt.Sprintf("%s: %s=%d %s=%d", label, w.spec.From, from, w.spec.To, to)
	budget := stepAttempt(w.s, w.in.Common)
	if w.pendingSets != (dnsWeights{From: from, To: to}) {
		// Another batch's (a rollback after a forward step whose INSYNC was outstanding):
		// this step sends its own, and Route 53 applies changes to a zone in order.
		w.pending = ""
	}
	if w.pending == "" {
		cctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			// Two reads and one change plus at most ~13s of in-activity throttle retries, each
			// heartbeating: a worker that dies mid-call is noticed after the heartbeat timeout.
			StartToCloseTimeout:    30 * time.Second,
			ScheduleToCloseTimeout: budget,
			HeartbeatTimeout:       15 * time.Second,
			// The activity already retries Throttling briefly; this covers the rest of the
			// budget. Retrying is safe: every attempt reads first, so a batch that went in is
			// reported applied, not sent again.
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
			Summary:     summary,
		})
		// Forward, the batch changes the record sets only if they are as last seen; a
		// rollback sets the weights on them as they are now, keeping other people's edits.
		base := activities.BaseLastSeen
		if w.s.RollingBack() {
			base = activities.BaseCurrent
		}
		in := activities.ChangeWeightsInput{
			ZoneID: w.obs.ZoneID, From: withWeight(w.obs.From, w.from), To: withWeight(w.obs.To, w.to),
			FromWeight: int64(from), ToWeight: int64(to), Base: base,
			Comment: fmt.Sprintf("ferry %s: %s", workflow.GetInfo(ctx).WorkflowExecution.ID, summary),
		}
		// Recorded before the call: once a batch may have been sent, the run has something to
		// undo (compensation next to the step).
		w.attempted = true
		var ch activities.ChangeWeightsOutput
		// Activity errors go up unwrapped: a fmt wrapper would become the workflow failure's
		// outer ApplicationError (type "wrapError") and hide the activity's error type.
		if err := workflow.ExecuteActivity(cctx, r53.ChangeWeights, in).Get(ctx, &ch); err != nil {
			// Route 53 applies a batch atomically or not at all: a refusal (a non-retryable
			// error, drift included) changed nothing, but a timeout or an exhausted retry may
			// hide a batch that was applied.
			if !isPermanent(err) {
				w.uncertain = true
			}
			return attemptError(err, budget)
		}
		w.uncertain = false
		w.from, w.to = from, to
		if ch.From.SetIdentifier != "" {
			w.obs.From, w.obs.To = ch.From, ch.To
		}
		w.applied = append(w.applied, dnsWeights{From: from, To: to})
		w.s.Update(ctx, func(p *Progress) { p.DNS.FromWeight, p.DNS.ToWeight = from, to })
		how := "change " + ch.ChangeID
		if ch.AlreadyApplied {
			how = "already applied by an earlier attempt"
		}
		w.s.Audit(ctx, SystemIdentity, "change weights", fmt.Sprintf("%s (%s)", summary, how), label)
		if len(ch.Kept) > 0 {
			w.s.Audit(ctx, SystemIdentity, "kept changes", "changed outside ferry and kept: "+strings.Join(ch.Kept, "; "), label)
		}
		// Already applied: its change id is unknown, and Route 53 propagates within about a
		// minute of accepting a batch, which an earlier attempt did.
		w.pending, w.pendingSets = ch.ChangeID, dnsWeights{From: from, To: to}
	}
	if w.pending == "" {
		return nil
	}
	wctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// AWS documents propagation within 60 s; the generous bound covers a slow control
		// plane without hiding a change that never converges.
		StartToCloseTimeout:    10 * time.Minute,
		ScheduleToCloseTimeout: budget,
		// It heartbeats every poll (at most 2 s apart), so a dead worker's wait moves on
		// within seconds; a retry polls the same change at once.
		HeartbeatTimeout: 10 * time.Second,
		RetryPolicy:      &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
		Summary:          fmt.Sprintf("wait INSYNC %s (%s)", w.pending, summary),
	})
	var ins activities.WaitInsyncOutput
	if err := workflow.ExecuteActivity(wctx, r53.WaitInsync, activities.WaitInsyncInput{ChangeID: w.pending, PollInterval: 2 * time.Second}).Get(ctx, &ins); err != nil {
		return attemptError(err, budget)
	}
	w.pending = ""
	return nil
}

func withWeight(s activities.RecordSet, weight int) activities.RecordSet {
	s.Weight = int64(weight)
	return s
}

// attemptError says why an attempt ran out of its budget, for "... blocked: <error>":
// Temporal reports a schedule-to-close timeout, with the activity's last failure as its
// cause when an attempt ended, else only the last heartbeat (an attempt still inside the
// activity's own throttle retries heartbeats what it meets).
func attemptError(err error, budget time.Duration) error {
	var te *temporal.TimeoutError
	if !errors.As(err, &te) || te.TimeoutType() != enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE {
		return err
	}
	why := ""
	if cause := te.Unwrap(); cause != nil {
		why = failureLine(cause)
	} else if te.HasLastHeartbeatDetails() {
		var hb string
		if te.LastHeartbeatDetails(&hb) == nil {
			why = hb
		}
	}
	if why == "" {
		return err
	}
	return temporal.NewApplicationError(fmt.Sprintf("%s (no success within the attempt budget of %s)", why, budget), "AttemptBudgetSpent")
}
