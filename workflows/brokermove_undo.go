package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// The broker move's drain and its undo. The undo never strands a message: before any
// application goes back, a shovel (on-confirm) runs from each new queue to the old one,
// the switches go back in reverse order, and the shovels are removed only once the new
// queues are proven drained, by the same oracle as the forward drain.

func (w *brokerMove) undoRecorded(ctx workflow.Context) (BrokerMoveResult, error) {
	return w.rollback(ctx)
}

func (w *brokerMove) rollback(ctx workflow.Context) (BrokerMoveResult, error) {
	why := w.s.BeginRollback(ctx)
	w.log.Info("rolling back", "reason", why)
	if err := keepTrying(ctx, w.s, w.in.budgets(), "rollback", w.unwind); err != nil {
		return BrokerMoveResult{}, err
	}
	w.rec.Restored = true
	w.publish(ctx)
	w.s.MarkRolledBack(ctx)
	msg := fmt.Sprintf("rolled back: every application on the old broker %s (%s)", w.spec.Old.AMQPAddress, why)
	if len(w.notes) > 0 {
		msg += "; " + strings.Join(w.notes, "; ")
	}
	w.s.Audit(ctx, SystemIdentity, "rolled back", msg, "")
	w.s.Finish(ctx, StateRolledBack, msg)
	return w.res(StateRolledBack, msg), nil
}

// unwind brings everything back; each part is idempotent and recorded as it is done, so
// keepTrying's next attempt starts where the last stopped.
func (w *brokerMove) unwind(ctx workflow.Context) error {
	// The forward shovels go first: with shovels both ways a message would circle.
	if err := w.stopShovels(ctx, "old"); err != nil {
		return err
	}
	apps := w.spec.apps()
	var back []brokerApp
	for i := len(apps) - 1; i >= 0; i-- {
		a := apps[i]
		rec := w.rec.record(a.Record.Name)
		if slices.Contains(w.rec.Moved, a.ConnectionName) || (rec != nil && rec.switched()) {
			back = append(back, a)
		}
	}
	if len(back) > 0 || slices.ContainsFunc(w.rec.Shovels, func(s brokerShovel) bool { return s.From == "new" }) {
		w.s.SetPhase(ctx, "rollback: shovel the new queues back", strings.Join(w.spec.Queues, ", "))
		if err := w.startShovels(ctx, "new"); err != nil {
			return err
		}
		for _, a := range back {
			w.s.SetPhase(ctx, "rollback: "+moveStepName(a), "back to the old broker")
			if err := w.moveApp(ctx, a, "new", "old"); err != nil {
				return err
			}
		}
		w.s.SetPhase(ctx, "rollback: drain the new queues", "through the shovels into the old ones")
		if err := w.drainBroker(ctx, "new", false); err != nil {
			return err
		}
		if err := w.stopShovels(ctx, "new"); err != nil {
			return err
		}
	}
	if len(w.rec.Imported) > 0 {
		w.s.SetPhase(ctx, "rollback: remove imported definitions", "only what is empty and unused")
		var res activities.RemoveRabbitDefinitionsResult
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, rabbitOpts("remove the definitions imported into the new broker", time.Minute)),
			rabbitActs.RemoveRabbitDefinitions, activities.RemoveRabbitDefinitionsInput{Broker: w.spec.broker("new"), Items: w.rec.Imported}).Get(ctx, &res); err != nil {
			return err
		}
		if len(res.Kept) > 0 {
			w.notes = append(w.notes, "kept on the new broker: "+strings.Join(res.Kept, "; "))
		}
		w.s.Audit(ctx, SystemIdentity, "definitions removed", strings.Join(res.Removed, "; "), "")
		w.rec.Imported = nil
	}
	return nil
}

// drainBroker samples which's queues until the drain oracle says drained. Forward
// (decide), after drainTimeout it opens a decision: approved, the rest is shovelled to
// the new broker (on-confirm) and the drain goes on with the shovels as consumers; a
// rollback request ends it (the caller rolls back); meanwhile it keeps sampling and may
// finish on its own. In a rollback it waits as long as it takes: giving up would strand
// messages.
func (w *brokerMove) drainBroker(ctx workflow.Context, which string, decide bool) error {
	const decision = "drain timeout: approve to shovel the rest (on-confirm), or roll back"
	rule := w.drainRule()
	every := w.spec.StatsInterval / 2
	start := workflow.Now(ctx)
	if which == "old" && w.drainFrom.IsZero() {
		w.drainFrom = start
	}
	w.drain = &BrokerDrainProgress{Broker: which, Started: start}
	timeoutAt := start.Add(w.spec.DrainTimeout)
	asked := false
	var samples []activities.RabbitSample
	if which == "old" {
		// The readings taken while the first group left the old broker (waitMoved).
		samples = w.drainSamples
		if !w.drainFrom.IsZero() {
			w.drain.Started = w.drainFrom
		}
	}
	for {
		var s activities.RabbitSample
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, rabbitOpts("sample the "+which+" queues", 30*time.Second)),
			rabbitActs.SampleRabbit, activities.SampleRabbitInput{Broker: w.spec.broker(which), Queues: w.spec.Queues, RateAge: w.spec.StatsInterval}).Get(ctx, &s)
		var v DrainVerdict
		if err != nil {
			if isPermanent(err) {
				return err
			}
			// A gap in the readings: the clean run starts again.
			samples = nil
			v.Blocking = "the broker did not answer: " + failureLine(err)
		} else {
			samples = keepDrainSamples(append(samples, s), rule, every)
			v = JudgeDrain(samples, rule)
		}
		if which == "old" && !v.Drained {
			w.drained = time.Time{} // a verdict taken back: drained is when it holds for good
		}
		w.drain.MessagesLeft, w.drain.AckRate, w.drain.Estimate, w.drain.Blocking, w.drain.Drained = v.MessagesLeft, v.AckRate, v.Estimate, v.Blocking, v.Drained
		w.publish(ctx)
		if v.Drained {
			if which == "old" && w.drained.IsZero() {
				w.drained = workflow.Now(ctx)
			}
			if asked {
				w.s.CloseDecision(ctx)
			}
			w.s.Audit(ctx, SystemIdentity, "drained", fmt.Sprintf("the %s queues drained after %s", which, workflow.Now(ctx).Sub(start).Round(100*time.Millisecond)), "")
			return nil
		}
		w.s.SetMessage(ctx, fmt.Sprintf("%d message(s) left on the %s queues, %.1f acks/s: %s", v.MessagesLeft, which, v.AckRate, v.Blocking))
		if decide && !asked && !workflow.Now(ctx).Before(timeoutAt) {
			w.s.OpenDecision(ctx, decision)
			asked = true
		}
		if asked && w.s.Decided() {
			w.s.CloseDecision(ctx)
			asked, decide = false, false
			w.shovelled = true
			if err := w.startShovels(ctx, which); err != nil {
				return err
			}
			samples = nil
			continue
		}
		if !w.s.RollingBack() && w.s.RollbackRequest() != nil {
			if asked {
				w.s.CloseDecision(ctx)
			}
			return nil
		}
		pace := every
		if asked || (w.s.RollingBack() && workflow.Now(ctx).Sub(start) > max(w.spec.DrainTimeout, 10*time.Minute)) {
			// Past the timeout the wait may last a weekend: each reading is ~10 history
			// events, so sample at most twice a minute (about 2 days to the history limit).
			pace = max(every, drainSlowPace)
		}
		if _, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: pace, TimerOptions: workflow.TimerOptions{Summary: "next drain sample"}},
			func() bool { return (asked && w.s.Decided()) || (!w.s.RollingBack() && w.s.RollbackRequest() != nil) }); err != nil {
			return err
		}
	}
}

// drainSlowPace is how often a drain past its timeout is sampled.
const drainSlowPace = 30 * time.Second

func (w *brokerMove) drainRule() DrainRule {
	return DrainRule{StatsInterval: w.spec.StatsInterval, Intervals: 2, Producers: w.spec.producerNames()}
}

// keepDrainSamples trims samples to what the oracle needs: a clean run of two intervals
// and the reading before it.
func keepDrainSamples(samples []activities.RabbitSample, rule DrainRule, every time.Duration) []activities.RabbitSample {
	keep := int(time.Duration(rule.Intervals)*rule.StatsInterval/every) + 4
	if len(samples) > keep {
		return samples[len(samples)-keep:]
	}
	return samples
}

// judgeDrainSample adds a reading of the old broker taken while the first group leaves
// it, and records when the oracle first says drained (the drain step confirms it).
func (w *brokerMove) judgeDrainSample(ctx workflow.Context, s activities.RabbitSample) {
	if w.drainFrom.IsZero() {
		w.drainFrom = workflow.Now(ctx)
	}
	// Samples here come once an interval; the drain samples twice an interval.
	w.drainSamples = keepDrainSamples(append(w.drainSamples, s), w.drainRule(), w.spec.StatsInterval/2)
	if JudgeDrain(w.drainSamples, w.drainRule()).Drained && w.drained.IsZero() {
		w.drained = workflow.Now(ctx)
	}
}
