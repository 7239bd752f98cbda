package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// The broker move's forward steps: each application switched and verified from the
// brokers' side, the drain, the shovels, the final check.

func (w *brokerMove) execute(ctx workflow.Context) (BrokerMoveResult, error) {
	w.s.SetPhase(ctx, brokerStepPreflight, "reading the records and both brokers")
	obs, err := brokerObserve(ctx, w.spec, "preflight")
	if err != nil {
		return BrokerMoveResult{}, err
	}
	w.obs = obs
	plan := brokerPlan(w.spec, obs)
	if err := checkDrift(w.in.PlanHash, plan.Hash, plan.Observations[0]); err != nil {
		return BrokerMoveResult{}, err
	}
	if err := holdLocks(ctx, w.s, w.in.Common, plan.Resources); err != nil {
		return BrokerMoveResult{}, err
	}
	w.rec.Records = slices.Clone(obs.Records)
	w.rec.Connected = obs.Connected
	w.s.SetPlannedSteps(ctx, plan.Steps)
	w.s.Update(ctx, func(p *Progress) { p.PlanHash = plan.Hash })
	w.publish(ctx)
	w.s.Audit(ctx, SystemIdentity, "preflight", fmt.Sprintf("plan %s: %s", plan.Hash, strings.Join(plan.Observations, "; ")), "")
	w.s.EndStep(ctx, 0, StepDone, "")

	for i := 1; i < len(plan.steps); i++ {
		st := plan.steps[i]
		if err := w.s.WaitWhilePaused(ctx); err != nil {
			return BrokerMoveResult{}, err
		}
		if w.s.RollbackRequest() != nil {
			w.s.EndStep(ctx, i, StepFailed, "rollback requested")
			return w.rollback(ctx)
		}
		w.s.SetPhase(ctx, st.Name, plan.Steps[i].Description)
		w.s.StartStep(ctx, i)
		var err error
		switch {
		case st.App != nil:
			err = w.moveApp(ctx, *st.App, "old", "new")
		case st.Name == brokerStepApproval:
			w.s.SetMessage(ctx, "waiting for approval: "+plan.Steps[i].Description)
			var ok bool
			if ok, err = w.s.AwaitApproval(ctx, st.Name); err == nil && !ok {
				w.s.EndStep(ctx, i, StepFailed, "not approved: rollback requested")
				return w.rollback(ctx)
			}
		case st.Name == brokerStepImport:
			err = w.importDefinitions(ctx)
		case st.Name == brokerStepShovel:
			err = w.startShovels(ctx, "old")
		case st.Name == brokerStepDrain:
			err = w.drainBroker(ctx, "old", true)
		case st.Name == brokerStepVerify:
			err = w.verify(ctx)
		}
		if err != nil {
			w.s.EndStep(ctx, i, StepFailed, failureLine(err))
			return BrokerMoveResult{}, err
		}
		if w.s.RollbackRequest() != nil {
			// Asked for while the step ran (a drain's decision, a switch's TTL wait).
			w.s.EndStep(ctx, i, StepFailed, "rollback requested")
			return w.rollback(ctx)
		}
		w.s.EndStep(ctx, i, StepDone, "")
	}
	w.rec.Done = true
	msg := fmt.Sprintf("completed: %d application(s) on the new broker %s, the old queues drained (%s)", len(w.spec.apps()), w.spec.New.AMQPAddress, w.resultOf(Outcome{}).Drain.Round(100*time.Millisecond))
	if w.shovelled {
		msg += ", the rest shovelled with on-confirm"
	}
	w.s.Audit(ctx, SystemIdentity, "completed", msg, "")
	w.s.Finish(ctx, StateCompleted, msg)
	w.publish(ctx)
	return w.res(StateCompleted, msg), nil
}

// moveApp points a's record at the to broker, waits INSYNC and its TTL, and closes a's
// connections on the from broker until the broker shows none there and a on the other.
func (w *brokerMove) moveApp(ctx workflow.Context, a brokerApp, from, to string) error {
	name := a.ConnectionName
	rec := w.rec.record(a.Record.Name)
	if rec == nil {
		return temporal.NewNonRetryableApplicationError("no record "+a.Record.Name+" in the change record", ErrPlanInvalid, nil)
	}
	values := []string{a.NewValue}
	if to == "old" {
		values = rec.Before.Values
	}
	w.where[name] = "switching"
	if to == "new" && !slices.Contains(w.rec.Moved, name) {
		// Recorded before the switch: a switch whose answer is lost is still undone.
		w.rec.Moved = append(w.rec.Moved, name)
	}
	w.publish(ctx)
	if !sameValues(rec.Now, values) {
		set := func(ctx workflow.Context) error {
			return setSimpleRecord(ctx, w.s, w.in.Common, recordSet{ZoneID: rec.ZoneID, Seen: rec.Before, Now: &rec.Now, Values: values,
				Comment: "ferry broker move " + workflow.GetInfo(ctx).WorkflowExecution.ID, Changed: w.publish})
		}
		var err error
		if w.s.RollingBack() {
			err = set(ctx) // the rollback's keepTrying repeats it
		} else {
			err = holdThrough(ctx, w.s, w.in.budgets(), "switch "+rec.Name, set)
		}
		if err != nil {
			return err
		}
		// Resolvers may answer the old value until the TTL has passed since INSYNC.
		ttl := time.Duration(rec.Before.TTL) * time.Second
		if _, err := w.s.Sleep(ctx, ttl, fmt.Sprintf("%s TTL %s", rec.Name, ttl)); err != nil {
			return err
		}
	}
	if err := w.waitMoved(ctx, name, from, to); err != nil {
		return err
	}
	w.where[name] = to
	if to == "old" {
		w.rec.Moved = slices.DeleteFunc(w.rec.Moved, func(m string) bool { return m == name })
	}
	w.publish(ctx)
	w.s.Audit(ctx, SystemIdentity, "moved", fmt.Sprintf("%s %s: gone from the %s broker, on the %s broker", a.Role, name, from, to), "")
	return nil
}

// waitMoved closes app's connections on from until from lists none and to lists one.
// The management API lists a connection only seconds after it opened (over 3s with a 1s
// statistics interval), so "none on from" alone proves nothing: a connection too new to be
// listed is neither closed nor seen. An application preflight saw connected must show up
// on to; one it did not see (stopped, or too new to be listed) must stay unlisted on from
// for listingLag, closed again at every look, before it counts as moved. moveTimeout
// bounds it.
func (w *brokerMove) waitMoved(ctx workflow.Context, app, from, to string) error {
	expect := slices.Contains(w.rec.Connected, app)
	deadline := workflow.Now(ctx).Add(w.spec.MoveTimeout)
	var goneSince time.Time
	reason := fmt.Sprintf("ferry %s: %s moved to the %s broker; reconnect", workflow.GetInfo(ctx).WorkflowExecution.ID, app, to)
	for {
		var closed activities.CloseRabbitConnectionsResult
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, rabbitOpts(fmt.Sprintf("close %s's connections on the %s broker", app, from), 30*time.Second)),
			rabbitActs.CloseRabbitConnections, activities.CloseRabbitConnectionsInput{Broker: w.spec.broker(from), Clients: []string{app}, Reason: reason}).Get(ctx, &closed); err != nil {
			return err
		}
		if len(closed.Closed) > 0 {
			w.s.Audit(ctx, SystemIdentity, "connections closed", fmt.Sprintf("%s on the %s broker: %s", app, from, strings.Join(closed.Closed, ", ")), "")
		}
		if err := workflow.NewTimerWithOptions(ctx, w.spec.StatsInterval, workflow.TimerOptions{Summary: "one statistics interval"}).Get(ctx, nil); err != nil {
			return err
		}
		on := map[string]bool{}
		for _, which := range []string{from, to} {
			in := activities.SampleRabbitInput{Broker: w.spec.broker(which)}
			feed := which == "old" && !w.s.RollingBack() && w.drained.IsZero()
			if feed {
				// Read the queues too: the drain's clean run may start as the producers leave.
				in.Queues, in.RateAge = w.spec.Queues, w.spec.StatsInterval
			}
			var s activities.RabbitSample
			if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, rabbitOpts("connections on the "+which+" broker", 30*time.Second)),
				rabbitActs.SampleRabbit, in).Get(ctx, &s); err != nil {
				return err
			}
			on[which] = slices.ContainsFunc(s.Connections, func(c activities.RabbitConnectionSample) bool { return c.ClientName == app })
			if feed {
				w.judgeDrainSample(ctx, s)
			}
		}
		switch {
		case on[from]:
			goneSince = time.Time{}
		case on[to]:
			return nil
		case goneSince.IsZero():
			goneSince = workflow.Now(ctx)
		case !expect && workflow.Now(ctx).Sub(goneSince) >= listingLag(w.spec.StatsInterval):
			return nil
		}
		if workflow.Now(ctx).After(deadline) {
			why := fmt.Sprintf("%s is still connected to the %s broker", app, from)
			if !on[from] {
				why = fmt.Sprintf("%s did not reconnect to the %s broker (is its name resolved again on reconnect?)", app, to)
			}
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s after moveTimeout %s", why, w.spec.MoveTimeout), ErrBrokerMoveStuck, nil)
		}
		w.s.SetMessage(ctx, fmt.Sprintf("%s: %s", app, listedText(on[from], from, "still connected to the %s broker (closing again)", "gone from the %s broker")+"; "+
			listedText(on[to], to, "listed on the %s broker", "not listed on the %s broker yet")))
	}
}

func listedText(on bool, which, yes, no string) string {
	if on {
		return fmt.Sprintf(yes, which)
	}
	return fmt.Sprintf(no, which)
}

// listingLag is how long a new connection may stay unlisted by the management API.
func listingLag(stats time.Duration) time.Duration { return max(4*stats, 4*time.Second) }

// importDefinitions imports the old broker's definitions into the new one (recorded
// first: the undo removes what is empty and unused of them).
func (w *brokerMove) importDefinitions(ctx workflow.Context) error {
	w.rec.Imported = slices.Clone(w.obs.Defs.MissingOnNew)
	var res activities.RabbitDefinitionsResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, rabbitOpts("import the old broker's definitions into the new", time.Minute)),
		rabbitActs.RabbitDefinitions, activities.RabbitDefinitionsInput{Old: w.spec.broker("old"), New: w.spec.broker("new"), Queues: w.spec.Queues, Import: true}).Get(ctx, &res); err != nil {
		return err
	}
	w.s.Audit(ctx, SystemIdentity, "definitions imported", strings.Join(res.MissingOnNew, "; "), brokerStepImport)
	return nil
}

// shovelName is the shovel ferry declares for queue on from.
func shovelName(from, queue string) string { return "ferry-" + queue + "-to-" + other(from) }

// startShovels declares a shovel from each of from's queues to the other broker's
// (recorded before each call, so one whose answer is lost is still removed).
func (w *brokerMove) startShovels(ctx workflow.Context, from string) error {
	for _, q := range w.spec.Queues {
		sh := brokerShovel{Name: shovelName(from, q), From: from, Queue: q}
		if !slices.Contains(w.rec.Shovels, sh) {
			w.rec.Shovels = append(w.rec.Shovels, sh)
		}
		w.publish(ctx)
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, rabbitOpts("shovel "+sh.String(), time.Minute)),
			rabbitActs.CreateRabbitShovel, activities.RabbitShovelInput{Broker: w.spec.broker(from), Name: sh.Name, Queue: q,
				Source: w.spec.amqp(from), Dest: w.spec.amqp(other(from))}).Get(ctx, nil); err != nil {
			return err
		}
		w.s.Audit(ctx, SystemIdentity, "shovel", sh.String()+" running (ack-mode on-confirm)", "")
	}
	return nil
}

// stopShovels deletes the shovels ferry runs from from's queues.
func (w *brokerMove) stopShovels(ctx workflow.Context, from string) error {
	for _, sh := range slices.Clone(w.rec.Shovels) {
		if sh.From != from {
			continue
		}
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, rabbitOpts("remove shovel "+sh.String(), 30*time.Second)),
			rabbitActs.DeleteRabbitShovel, activities.DeleteRabbitShovelInput{Broker: w.spec.broker(from), Name: sh.Name}).Get(ctx, nil); err != nil {
			return err
		}
		w.rec.Shovels = slices.DeleteFunc(w.rec.Shovels, func(s brokerShovel) bool { return s == sh })
		w.publish(ctx)
		w.s.Audit(ctx, SystemIdentity, "shovel removed", sh.String(), "")
	}
	return nil
}

// verify removes the forward shovels and checks, from the old broker, that its queues
// are empty and no application is connected to it.
func (w *brokerMove) verify(ctx workflow.Context) error {
	if err := w.stopShovels(ctx, "old"); err != nil {
		return err
	}
	var s activities.RabbitSample
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, rabbitOpts("verify the old broker", 30*time.Second)),
		rabbitActs.SampleRabbit, activities.SampleRabbitInput{Broker: w.spec.broker("old"), Queues: w.spec.Queues}).Get(ctx, &s); err != nil {
		return err
	}
	var problems []string
	for _, q := range s.Queues {
		if q.Ready+q.Unacked > 0 {
			problems = append(problems, fmt.Sprintf("queue %s holds %d message(s)", q.Name, q.Ready+q.Unacked))
		}
	}
	for _, c := range s.Connections {
		if slices.ContainsFunc(w.spec.apps(), func(a brokerApp) bool { return a.ConnectionName == c.ClientName }) {
			problems = append(problems, c.ClientName+" is connected to it")
		}
	}
	if len(problems) > 0 {
		return temporal.NewNonRetryableApplicationError("verify: the old broker is not left empty: "+strings.Join(problems, "; "), ErrBrokerMoveStuck, nil)
	}
	return nil
}
