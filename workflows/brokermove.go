package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// Error types of a broker move that no retry fixes.
const (
	// ErrBrokerPreflightFailed: preflight found a problem; nothing was changed.
	ErrBrokerPreflightFailed = "BrokerPreflightFailed"
	// ErrBrokerMoveStuck: an application's connections did not leave the broker, or it
	// did not reconnect to the other, within moveTimeout.
	ErrBrokerMoveStuck = "BrokerMoveStuck"
)

// rabbitActs is called through a nil pointer: the worker registers activities.Rabbit.
var rabbitActs *activities.Rabbit

// BrokerMove moves RabbitMQ applications from an old broker to a new one in drain order
// (docs/design.md, "The broker move"): preflight (no change), an optional approval, the
// definitions imported when asked, then producersFirst: each producer switched and
// verified from the brokers' side, the old queues drained (the drain oracle), each
// consumer switched; or consumersFirst: a shovel (on-confirm) from each old queue to the
// new, the consumers, the producers, the old queues drained through the shovels, the
// shovels removed. A failure rolls back: the switches in reverse order with shovels
// taking the new queues' messages back to the old, so nothing is stranded.
func BrokerMove(ctx workflow.Context, in BrokerMoveInput) (BrokerMoveResult, error) {
	w := &brokerMove{}
	if err := w.setup(ctx, in); err != nil {
		return BrokerMoveResult{Outcome: Outcome{State: StateFailed, Message: err.Error()}}, err
	}
	return runKind[BrokerMoveResult](ctx, "broker move", w)
}

// PlanBrokerMove is the dry run: it reads the records and both brokers (on a worker,
// which holds the credentials) and returns every step and the plan hash. It changes
// nothing.
func PlanBrokerMove(ctx workflow.Context, in PlanBrokerMoveInput) (Plan, error) {
	obs, err := brokerObserve(ctx, in.Spec, "plan")
	if err != nil {
		return Plan{}, err
	}
	return brokerPlan(in.Spec, obs).Plan, nil
}

// brokerObs is what a preflight reads: the switch records, the definitions on both
// brokers, and where each application is connected now.
type brokerObs struct {
	Records []brokerRecordEntry
	Defs    activities.RabbitDefinitionsResult
	// Connected are the applications connected to either broker now: their move is
	// verified by seeing them on the other broker too.
	Connected []string
}

type brokerMove struct {
	in    BrokerMoveInput
	spec  BrokerMoveSpec
	s     *Steering
	log   log.Logger
	owner owner
	obs   brokerObs
	rec   brokerUndoRecord
	// where each application is: old, switching or new.
	where map[string]string
	drain *BrokerDrainProgress
	// drainFrom is when the drain began; drained when it was proven.
	drainFrom, drained time.Time
	// drainSamples are the old broker's readings taken while the first group leaves it:
	// the drain's clean run may begin there (the oracle judges readings, not steps).
	drainSamples []activities.RabbitSample
	shovelled    bool
	notes        []string
}

func (w *brokerMove) setup(ctx workflow.Context, in BrokerMoveInput) error {
	w.in, w.spec = in, in.Spec
	w.owner = ownerOf(ctx, in.Undo)
	w.where = map[string]string{}
	if in.Undo != nil {
		rec, err := decodeRecord[brokerUndoRecord](in.Undo)
		if err != nil {
			return err
		}
		w.rec, w.spec = rec, rec.Spec
		for _, a := range rec.Moved {
			w.where[a] = "new"
		}
	}
	w.rec.Spec = w.spec
	w.log = log.With(workflow.GetLogger(ctx), "migration", workflow.GetInfo(ctx).WorkflowExecution.ID)
	s, err := NewSteering(ctx, SteeringOptions{
		Kind: KindBrokerMove, Initiator: in.Initiator, PlanHash: in.PlanHash, Approvals: in.Approvals,
		Start: in.StartProof, StartDigest: StartDigest(in), Logger: w.log, Details: w.details,
	})
	if err != nil {
		return err
	}
	w.s = s
	w.publish(ctx)
	return nil
}

func (w *brokerMove) steering() *Steering { return w.s }
func (w *brokerMove) common() Common      { return w.in.Common }

func (w *brokerMove) resultOf(o Outcome) BrokerMoveResult {
	r := BrokerMoveResult{Outcome: o, Shovelled: w.shovelled}
	for _, a := range w.spec.apps() {
		if w.where[a.ConnectionName] == "new" {
			r.OnNew = append(r.OnNew, a.ConnectionName)
		}
	}
	if !w.drainFrom.IsZero() && !w.drained.IsZero() {
		r.Drain, r.DrainedAt = w.drained.Sub(w.drainFrom), w.drained
	}
	return r
}

func (w *brokerMove) res(state, msg string) BrokerMoveResult {
	return w.resultOf(Outcome{State: state, Message: msg, Changes: w.changes()})
}

func (w *brokerMove) details(p Progress) string {
	var b strings.Builder
	if d := p.Broker; d != nil {
		fmt.Fprintf(&b, "%s -> %s (%s)\n\n", d.Old, d.New, d.Order)
		for _, a := range d.Apps {
			fmt.Fprintf(&b, "- %s **%s**: %s\n", a.Role, a.ConnectionName, a.Broker)
		}
		if dr := d.Drain; dr != nil {
			fmt.Fprintf(&b, "\ndrain of the %s queues: %d message(s) left, %.1f acks/s", dr.Broker, dr.MessagesLeft, dr.AckRate)
			if dr.Drained {
				b.WriteString(", **drained**")
			} else if dr.Blocking != "" {
				b.WriteString(": " + dr.Blocking)
			}
			b.WriteString("\n")
		}
		for _, s := range d.Shovels {
			fmt.Fprintf(&b, "\nshovel %s", s)
		}
		b.WriteString("\n\n")
	}
	b.WriteString(RenderDetails(p))
	return b.String()
}

func (w *brokerMove) publish(ctx workflow.Context) {
	d := &BrokerMoveProgress{Old: w.spec.Old.AMQPAddress, New: w.spec.New.AMQPAddress, Order: w.spec.Order}
	for _, a := range w.spec.apps() {
		where := w.where[a.ConnectionName]
		if where == "" {
			where = "old"
		}
		d.Apps = append(d.Apps, BrokerAppProgress{ConnectionName: a.ConnectionName, Role: a.Role, Broker: where})
	}
	if w.drain != nil {
		dr := *w.drain
		d.Drain = &dr
	}
	for _, s := range w.rec.Shovels {
		d.Shovels = append(d.Shovels, s.String())
	}
	w.s.Update(ctx, func(p *Progress) { p.Broker = d })
}

// Step names; the plan and the progress use the same.
const (
	brokerStepPreflight = "preflight"
	brokerStepApproval  = "approval"
	brokerStepImport    = "import definitions"
	brokerStepShovel    = "shovel old queues to the new broker"
	brokerStepDrain     = "drain old queues"
	brokerStepVerify    = "verify"
	brokerPlanHash      = "broker-move/v1"
)

// brokerStep is one planned step: its name and, for a move, the application.
type brokerStep struct {
	Name string
	App  *brokerApp
}

// brokerPlanned is the plan with the steps' actions.
type brokerPlanned struct {
	Plan
	steps []brokerStep
}

func moveStepName(a brokerApp) string { return "move " + a.Role + " " + a.ConnectionName }

// brokerPlan is the plan from what the preflight read.
func brokerPlan(spec BrokerMoveSpec, obs brokerObs) brokerPlanned {
	p := brokerPlanned{Plan: Plan{ID: BrokerMoveWorkflowID(spec.Old.AMQPAddress, spec.VHost), Kind: KindBrokerMove}}
	add := func(st brokerStep, desc string, approval bool, wait time.Duration) {
		p.steps = append(p.steps, st)
		p.Steps = append(p.Steps, PlannedStep{Name: st.Name, Description: desc, NeedsApproval: approval, Wait: wait})
	}
	add(brokerStep{Name: brokerStepPreflight}, fmt.Sprintf("checked: queues %s on the old broker, the new broker's definitions, %d switch record(s)", strings.Join(spec.Queues, ", "), len(obs.Records)), false, 0)
	if spec.RequireApproval {
		add(brokerStep{Name: brokerStepApproval}, "approve the move; the first switch follows", true, 0)
	}
	if len(obs.Defs.MissingOnNew) > 0 {
		add(brokerStep{Name: brokerStepImport}, "import the old broker's definitions into the new one, adding: "+strings.Join(obs.Defs.MissingOnNew, "; "), false, 0)
	}
	if spec.Order == BrokerOrderConsumersFirst {
		add(brokerStep{Name: brokerStepShovel}, fmt.Sprintf("a shovel (ack-mode on-confirm) from each old queue to the new one, so what producers still publish to the old broker reaches the consumers on the new: %s", strings.Join(spec.Queues, ", ")), false, 0)
	}
	apps := spec.apps()
	first := len(spec.Producers)
	if spec.Order == BrokerOrderConsumersFirst {
		first = len(spec.Consumers)
	}
	move := func(a brokerApp) {
		ttl := time.Duration(0)
		value := "?"
		for _, r := range obs.Records {
			if strings.EqualFold(r.Name, a.Record.Name) {
				ttl, value = time.Duration(r.Before.TTL)*time.Second, strings.Join(r.Before.Values, ",")
			}
		}
		add(brokerStep{Name: moveStepName(a), App: &a}, fmt.Sprintf("%s -> %s (from %s), wait INSYNC and its TTL %s, close %s's connections on the old broker until they are gone there and back on the new",
			a.Record.Name, a.NewValue, value, ttl, a.ConnectionName), false, ttl)
	}
	for _, a := range apps[:first] {
		move(a)
	}
	drainDesc := fmt.Sprintf("wait until every old queue has nothing ready or unacknowledged, a consumer, and nothing publishing, held for two statistics intervals (%s); after %s a person decides: approve to shovel the rest (on-confirm), or roll back",
		2*spec.StatsInterval, spec.DrainTimeout)
	if spec.Order == BrokerOrderConsumersFirst {
		for _, a := range apps[first:] {
			move(a)
		}
		add(brokerStep{Name: brokerStepDrain}, drainDesc+"; the shovels are the consumers", false, 2*spec.StatsInterval)
	} else {
		add(brokerStep{Name: brokerStepDrain}, drainDesc, false, 2*spec.StatsInterval)
		for _, a := range apps[first:] {
			move(a)
		}
	}
	add(brokerStep{Name: brokerStepVerify}, "shovels removed, the old queues empty, no application connected to the old broker", false, 0)
	var recs []string
	for _, r := range obs.Records {
		recs = append(recs, fmt.Sprintf("%s = %s (TTL %ds)", r.Name, strings.Join(r.Before.Values, ","), r.Before.TTL))
	}
	p.Observations = []string{fmt.Sprintf("old %s, new %s, vhost %s; %s; connected now: %s; missing on the new broker: %d",
		spec.Old.AMQPAddress, spec.New.AMQPAddress, spec.VHost, strings.Join(recs, ", "), orDash(strings.Join(obs.Connected, ", ")), len(obs.Defs.MissingOnNew))}
	p.Hash = PlanHash(brokerPlanHash, map[string]any{"spec": spec, "records": obs.Records, "missingOnNew": obs.Defs.MissingOnNew})
	for _, r := range obs.Records {
		p.Resources = append(p.Resources, DNSRecordResource(r.ZoneID, r.Before.Name, r.Before.Type))
	}
	for _, q := range spec.Queues {
		p.Resources = append(p.Resources, brokerResource(spec.Old.AMQPAddress, spec.VHost, q), brokerResource(spec.New.AMQPAddress, spec.VHost, q))
	}
	return p
}

// rabbitOpts are a management API call's options: bounded, a few retries (a broker
// restarting answers 503 for a while), permanent errors at once.
func rabbitOpts(summary string, d time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: d,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 5 * time.Second, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{activities.ErrRabbitManagement, activities.ErrBadInput}},
		Summary: summary,
	}
}

// brokerObserve reads the records (first: a missing record is refused before any broker
// is called), the definitions and where the applications are connected.
func brokerObserve(ctx workflow.Context, spec BrokerMoveSpec, what string) (brokerObs, error) {
	var obs brokerObs
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{activities.ErrNoSuchRecord, activities.ErrNoSuchZone, activities.ErrAmbiguousZone}},
		Summary: what + ": read the switch records",
	})
	var problems []string
	for _, a := range spec.apps() {
		if slices.ContainsFunc(obs.Records, func(r brokerRecordEntry) bool { return strings.EqualFold(r.Name, a.Record.Name) }) {
			continue
		}
		var out activities.ReadRecordOutput
		if err := workflow.ExecuteActivity(actx, r53.ReadRecord, activities.ReadRecordInput{Zone: a.Record.Zone, Name: a.Record.Name, Type: a.Record.Type}).Get(ctx, &out); err != nil {
			return obs, err
		}
		if sameValues(out.Set.Values, []string{a.NewValue}) {
			problems = append(problems, fmt.Sprintf("%s already points at %s (the new broker): %s looks moved already", out.Set.Name, a.NewValue, a.ConnectionName))
		}
		obs.Records = append(obs.Records, brokerRecordEntry{Name: a.Record.Name, brokerRecord: brokerRecord{ZoneID: out.ZoneID, Before: out.Set, Now: out.Set.Values}})
	}
	rctx := workflow.WithActivityOptions(ctx, rabbitOpts(what+": definitions on both brokers", 30*time.Second))
	if err := workflow.ExecuteActivity(rctx, rabbitActs.RabbitDefinitions, activities.RabbitDefinitionsInput{
		Old: spec.broker("old"), New: spec.broker("new"), Queues: spec.Queues}).Get(ctx, &obs.Defs); err != nil {
		return obs, err
	}
	if m := obs.Defs.MissingOnOld; len(m) > 0 {
		problems = append(problems, fmt.Sprintf("not on the old broker (vhost %s): %s; check brokerMove.queues", spec.VHost, strings.Join(m, ", ")))
	}
	if m := obs.Defs.MissingOnNew; len(m) > 0 && !spec.ImportDefinitions {
		problems = append(problems, fmt.Sprintf("the new broker lacks %s; create them there or set brokerMove.importDefinitions", strings.Join(m, ", ")))
	}
	for _, which := range []string{"old", "new"} {
		var s activities.RabbitSample
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, rabbitOpts(what+": connections on the "+which+" broker", 30*time.Second)),
			rabbitActs.SampleRabbit, activities.SampleRabbitInput{Broker: spec.broker(which), Queues: spec.Queues}).Get(ctx, &s); err != nil {
			return obs, err
		}
		for _, c := range s.Connections {
			if slices.ContainsFunc(spec.apps(), func(a brokerApp) bool { return a.ConnectionName == c.ClientName }) && !slices.Contains(obs.Connected, c.ClientName) {
				obs.Connected = append(obs.Connected, c.ClientName)
			}
		}
	}
	slices.Sort(obs.Connected)
	if len(problems) > 0 {
		return obs, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %d problem(s); nothing was changed: %s", what, len(problems), strings.Join(problems, "; ")), ErrBrokerPreflightFailed, nil)
	}
	return obs, nil
}
