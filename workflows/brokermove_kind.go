package workflows

import (
	"fmt"
	"strings"

	"github.com/ferryhq/ferry/activities"
)

// brokerMoveKind describes the broker move for the kind contract.
var brokerMoveKind = describe(KindDef{Name: KindBrokerMove, WorkflowName: "BrokerMove", Workflow: BrokerMove, PlanName: "PlanBrokerMove", Plan: PlanBrokerMove},
	typedKind[BrokerMoveInput, BrokerMoveSpec]{
		input: func(s BrokerMoveSpec, c Common) BrokerMoveInput { return BrokerMoveInput{Spec: s, Common: c} },
		plan:  func(in BrokerMoveInput) any { return PlanBrokerMoveInput{Spec: in.Spec} },
		lock: func(in BrokerMoveInput) string {
			if in.Undo != nil {
				return in.Undo.ID
			}
			return BrokerMoveWorkflowID(in.Spec.Old.AMQPAddress, in.Spec.VHost)
		},
		summary: func(in BrokerMoveInput) string {
			return fmt.Sprintf("broker move %s -> %s (%s, %d queue(s), %s)", in.Spec.Old.AMQPAddress, in.Spec.New.AMQPAddress, in.Spec.VHost, len(in.Spec.Queues), in.Spec.Order)
		},
		regions: func(in BrokerMoveInput) (string, []string) { return "", nil },
	})

// brokerRecord is one switch record: zone, as found, and what it holds now.
type brokerRecord struct {
	ZoneID string
	Before activities.RecordSet
	Now    []string
}

func (r brokerRecord) switched() bool { return !sameValues(r.Now, r.Before.Values) }

// brokerShovel is a shovel ferry declared: on the From broker ("old" or "new"), moving
// Queue's messages to the other.
type brokerShovel struct {
	Name  string
	From  string
	Queue string
}

func (s brokerShovel) String() string {
	to := "new"
	if s.From == "new" {
		to = "old"
	}
	return fmt.Sprintf("%s/%s -> %s/%s", s.From, s.Queue, to, s.Queue)
}

// brokerUndoRecord is the broker move's change record, kept as each change is made: every
// switch record as found and as it is, the shovels running, the definitions imported.
type brokerUndoRecord struct {
	Spec BrokerMoveSpec
	// Records are the switches' records in the order they are first switched (a record
	// two applications share appears once).
	Records []brokerRecordEntry
	// Moved are the applications whose switch went in (maybe not yet verified), in order.
	Moved    []string
	Shovels  []brokerShovel `json:",omitempty"`
	Imported []string       `json:",omitempty"`
	// Connected are the applications preflight saw connected: a move of one of them is
	// verified by seeing it on the other broker.
	Connected []string `json:",omitempty"`
	Done      bool
	Restored  bool
}

type brokerRecordEntry struct {
	Name string
	brokerRecord
}

func (r *brokerUndoRecord) record(name string) *brokerRecordEntry {
	for i := range r.Records {
		if strings.EqualFold(r.Records[i].Name, name) {
			return &r.Records[i]
		}
	}
	return nil
}

// inEffect says in one line what the move changed and has not put back.
func (r brokerUndoRecord) inEffect() string {
	if r.Restored {
		return ""
	}
	var parts []string
	if len(r.Moved) > 0 {
		parts = append(parts, fmt.Sprintf("%s on the new broker %s", strings.Join(r.Moved, ", "), r.Spec.New.AMQPAddress))
	}
	for _, rec := range r.Records {
		if rec.switched() {
			parts = append(parts, fmt.Sprintf("%s -> %s (was %s)", rec.Name, strings.Join(rec.Now, ","), strings.Join(rec.Before.Values, ",")))
		}
	}
	for _, s := range r.Shovels {
		parts = append(parts, "shovel "+s.String()+" running")
	}
	if len(r.Imported) > 0 {
		parts = append(parts, fmt.Sprintf("%d definition(s) imported into the new broker", len(r.Imported)))
	}
	return strings.Join(parts, "; ")
}

func (w *brokerMove) changes() Changes {
	return newChanges(w.owner, KindBrokerMove, w.rec.inEffect(), w.rec)
}

// brokerApp is one application with its role.
type brokerApp struct {
	BrokerApplication
	Role string // producer or consumer
}

// apps lists the spec's applications in move order: the first group, then the second.
func (s BrokerMoveSpec) apps() []brokerApp {
	var prod, cons []brokerApp
	for _, a := range s.Producers {
		prod = append(prod, brokerApp{a, "producer"})
	}
	for _, a := range s.Consumers {
		cons = append(cons, brokerApp{a, "consumer"})
	}
	if s.Order == BrokerOrderConsumersFirst {
		return append(cons, prod...)
	}
	return append(prod, cons...)
}

func (s BrokerMoveSpec) producerNames() []string {
	var out []string
	for _, a := range s.Producers {
		out = append(out, a.ConnectionName)
	}
	return out
}

func (s BrokerMoveSpec) broker(which string) activities.RabbitBroker {
	e := s.Old
	if which == "new" {
		e = s.New
	}
	return activities.RabbitBroker{Name: which, ManagementURL: e.ManagementURL, User: e.User,
		Password: activities.Secret{Env: e.Password.Env, File: e.Password.File}, VHost: s.VHost}
}

func (s BrokerMoveSpec) amqp(which string) activities.RabbitAMQP {
	e := s.Old
	if which == "new" {
		e = s.New
	}
	return activities.RabbitAMQP{Address: e.AMQPAddress, User: e.User, Password: activities.Secret{Env: e.Password.Env, File: e.Password.File}, VHost: s.VHost}
}

func other(which string) string {
	if which == "old" {
		return "new"
	}
	return "old"
}

// brokerResource is one queue of a broker, for the resource locks.
func brokerResource(addr, vhost, queue string) Resource {
	return Resource{ID: "rabbitmq/" + strings.ToLower(addr) + "/" + vhost + "/" + queue, Display: fmt.Sprintf("RabbitMQ queue %s (vhost %s) on %s", queue, vhost, addr)}
}
