package workflows

import (
	"strings"
	"time"
)

// --- Broker move (contract) ----------------------------------------------------------------

// KindBrokerMove is the broker move's FerryKind value.
const KindBrokerMove = "broker-move"

// BrokerMoveWorkflowID names a broker move by the old broker and vhost
// ("broker/10.0.2.7:5672" for the default vhost "/", "broker/10.0.2.7:5672/shop" for
// another): two moves off one vhost never run at once.
func BrokerMoveWorkflowID(oldAMQPAddress, vhost string) string {
	id := "broker/" + strings.ToLower(oldAMQPAddress)
	if v := strings.TrimPrefix(vhost, "/"); v != "" {
		id += "/" + v
	}
	return id
}

// Broker move orders.
const (
	BrokerOrderProducersFirst = "producersFirst"
	BrokerOrderConsumersFirst = "consumersFirst"
)

// BrokerEndpoint is one RabbitMQ broker as the spec names it.
type BrokerEndpoint struct {
	AMQPAddress   string // host:port the applications reach
	ManagementURL string
	User          string
	Password      DBSecretRef
}

// BrokerApplication is one producer or consumer and how it is switched.
type BrokerApplication struct {
	ConnectionName string
	Record         DBRecordRef // the name it resolves for the broker
	NewValue       string      // the record's value for the new broker
}

// BrokerMoveSpec is the validated, normalised broker move spec (built from the proto by
// package spec). It holds no observed state.
type BrokerMoveSpec struct {
	Old, New     BrokerEndpoint
	VHost        string
	Queues       []string
	Producers    []BrokerApplication
	Consumers    []BrokerApplication
	Order        string
	DrainTimeout time.Duration
	// StatsInterval is the old broker's collect_statistics_interval; MoveTimeout bounds
	// one application's move (switch to verified on the new broker).
	StatsInterval     time.Duration
	MoveTimeout       time.Duration
	ImportDefinitions bool
	RequireApproval   bool
}

// BrokerMoveInput starts a broker move.
type BrokerMoveInput struct {
	Spec BrokerMoveSpec
	Common
}

// PlanBrokerMoveInput asks for a broker move plan (a dry run).
type PlanBrokerMoveInput struct {
	Spec BrokerMoveSpec
}

// BrokerMoveResult is how a broker move ended.
type BrokerMoveResult struct {
	Outcome
	// OnNew lists the applications on the new broker at the end.
	OnNew []string
	// Drain is from the first group's last move to the drain proven; Shovelled says the
	// rest was shovelled (consumersFirst, or a person chose it after drainTimeout).
	Drain     time.Duration
	DrainedAt time.Time `json:",omitzero"`
	Shovelled bool
}

// BrokerMoveProgress is the broker move's part of Progress.
type BrokerMoveProgress struct {
	Old, New string // AMQP addresses
	Order    string
	Apps     []BrokerAppProgress
	Drain    *BrokerDrainProgress `json:",omitempty"`
	Shovels  []string             `json:",omitempty"`
}

// BrokerAppProgress is one application: its role and the broker it uses.
type BrokerAppProgress struct {
	ConnectionName string
	Role           string // producer or consumer
	Broker         string // old, switching or new
}

// BrokerDrainProgress is the drain oracle's latest verdict, for the UI and the CLI.
type BrokerDrainProgress struct {
	Broker       string // old, or new while rolling back
	Started      time.Time
	MessagesLeft int64
	AckRate      float64
	Estimate     time.Duration
	Blocking     string
	Drained      bool
}
