package workflows

import "time"

// The broker move's contract types (issue 20). The kind is not registered yet: its
// workflow is still to come (see docs/design.md, "Broker move").

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
	Old, New          BrokerEndpoint
	VHost             string
	Queues            []string
	Producers         []BrokerApplication
	Consumers         []BrokerApplication
	Order             string
	DrainTimeout      time.Duration
	ImportDefinitions bool
	RequireApproval   bool
}
