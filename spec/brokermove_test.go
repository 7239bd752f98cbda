package spec

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

// The spec as a file would give it (protojson, lowerCamelCase), parsed on its own.
const goodBrokerMove = `{
  "oldBroker": {"amqpAddress": "127.0.0.4:5672", "managementUrl": "http://127.0.0.1:15674/", "user": "ferry", "password": {"env": "PW"}},
  "newBroker": {"amqpAddress": "127.0.0.5:5672", "managementUrl": "http://127.0.0.1:15675", "user": "ferry", "password": {"file": "/run/pw"}},
  "queues": ["orders", "invoices"],
  "producers": [{"connectionName": "shop-producer", "switch": {"record": {"hostedZone": "shop.internal.", "name": "mq-pub.shop.internal"}}}],
  "consumers": [{"connectionName": "shop-consumer", "switch": {"record": {"hostedZone": "shop.internal.", "name": "mq.shop.internal."}, "newValue": "127.0.0.5"}}]
}`

func parseBrokerMove(t *testing.T, js string) *ferryv1.BrokerMoveSpec {
	t.Helper()
	var s ferryv1.BrokerMoveSpec
	require.NoError(t, protojson.Unmarshal([]byte(js), &s))
	return &s
}

func TestBrokerMoveDefaults(t *testing.T) {
	s, err := BrokerMove(parseBrokerMove(t, goodBrokerMove))
	require.NoError(t, err)
	assert.Equal(t, "/", s.VHost)
	assert.Equal(t, workflows.BrokerOrderProducersFirst, s.Order)
	assert.Equal(t, 10*time.Minute, s.DrainTimeout)
	assert.Equal(t, 5*time.Second, s.StatsInterval, "RabbitMQ's own collect_statistics_interval")
	assert.Equal(t, 2*time.Minute, s.MoveTimeout)
	assert.Equal(t, "http://127.0.0.1:15674", s.Old.ManagementURL)
	assert.Equal(t, workflows.DBSecretRef{File: "/run/pw"}, s.New.Password)
	assert.Equal(t, "mq-pub.shop.internal.", s.Producers[0].Record.Name)
	assert.Equal(t, "127.0.0.5", s.Producers[0].NewValue, "an A record's new value defaults to the new broker's address")
}

// Each bad spec is refused naming its field; validation is static, so no broker is called
// (BrokerMove has no client to call one with).
func TestBrokerMoveFieldErrors(t *testing.T) {
	for _, tc := range []struct {
		name, from, to, field, msg string
	}{
		{"same broker twice", `"amqpAddress": "127.0.0.5:5672", "managementUrl": "http://127.0.0.1:15675"`, `"amqpAddress": "127.0.0.4:5672", "managementUrl": "http://127.0.0.1:15674/"`, "brokerMove.newBroker.amqpAddress", "also the old broker"},
		{"same management URL", `"http://127.0.0.1:15675"`, `"http://127.0.0.1:15674"`, "brokerMove.newBroker.managementUrl", "also the old broker"},
		{"consumer with no switch", `, "switch": {"record": {"hostedZone": "shop.internal.", "name": "mq.shop.internal."}, "newValue": "127.0.0.5"}`, ``, "brokerMove.consumers[0].switch", "without a switch"},
		{"no queues", `"queues": ["orders", "invoices"]`, `"queues": []`, "brokerMove.queues", "required"},
		{"queue named twice", `"queues": ["orders", "invoices"]`, `"queues": ["orders", "orders"]`, "brokerMove.queues[1]", "twice"},
		{"reserved queue", `"invoices"]`, `"amq.gen-x"]`, "brokerMove.queues[1]", "reserved"},
		{"empty queue name", `"invoices"]`, `" "]`, "brokerMove.queues[1]", "not a queue name"},
		{"no producers", `"producers": [{"connectionName": "shop-producer", "switch": {"record": {"hostedZone": "shop.internal.", "name": "mq-pub.shop.internal"}}}]`, `"producers": []`, "brokerMove.producers", "at least one"},
		{"connection name twice", `"connectionName": "shop-consumer"`, `"connectionName": "shop-producer"`, "brokerMove.consumers[0].connectionName", "unique"},
		{"producer and consumer share a record", `"mq-pub.shop.internal"`, `"mq.shop.internal"`, "brokerMove.consumers[0].switch.record.name", "drain order"},
		{"record out of zone", `"mq.shop.internal."`, `"mq.other.internal."`, "brokerMove.consumers[0].switch.record.name", "not in zone"},
		{"A record to a name", `"newValue": "127.0.0.5"`, `"newValue": "green.internal"`, "brokerMove.consumers[0].switch.newValue", "not an IP"},
		{"bad order", `"queues"`, `"order": "fifo", "queues"`, "brokerMove.order", "producersFirst or consumersFirst"},
		{"bad management URL", `"http://127.0.0.1:15674/"`, `"127.0.0.1:15674"`, "brokerMove.oldBroker.managementUrl", "http(s) URL"},
		{"bad AMQP address", `"127.0.0.4:5672"`, `"127.0.0.4"`, "brokerMove.oldBroker.amqpAddress", ""},
		{"password in clear", `"password": {"env": "PW"}`, `"password": {}`, "brokerMove.oldBroker.password", "never the password itself"},
		{"no user", `"user": "ferry", "password": {"env": "PW"}`, `"password": {"env": "PW"}`, "brokerMove.oldBroker.user", "required"},
		{"negative drain timeout", `"queues"`, `"drainTimeout": "-1s", "queues"`, "brokerMove.drainTimeout", "positive"},
		{"drain timeout under two intervals", `"queues"`, `"drainTimeout": "5s", "queues"`, "brokerMove.drainTimeout", "two statistics intervals"},
		{"statistics interval too short", `"queues"`, `"statisticsInterval": "0.01s", "queues"`, "brokerMove.statisticsInterval", "between 100ms and 1m"},
		{"move timeout too short", `"queues"`, `"moveTimeout": "3s", "queues"`, "brokerMove.moveTimeout", "four statistics intervals"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := strings.Replace(goodBrokerMove, tc.from, tc.to, 1)
			require.NotEqual(t, goodBrokerMove, js, "the case changes nothing")
			_, err := BrokerMove(parseBrokerMove(t, js))
			var fe *FieldError
			require.True(t, errors.As(err, &fe), "want a *FieldError, got %v", err)
			assert.Equal(t, tc.field, fe.Field, "%v", err)
			assert.Contains(t, fe.Msg, tc.msg)
		})
	}
	_, err := BrokerMove(nil)
	require.Error(t, err)
}

// The example parses into the kind and validates; `ferry dev`'s playground is what it names.
func TestBrokerMoveExample(t *testing.T) {
	m, err := ParseFile("../examples/broker-move.yaml")
	require.NoError(t, err)
	k, in, err := Input(m, "alice", "")
	require.NoError(t, err)
	assert.Equal(t, workflows.KindBrokerMove, k.Name)
	s := in.(workflows.BrokerMoveInput).Spec
	assert.Equal(t, "127.0.0.5", s.Producers[0].NewValue)
	assert.True(t, s.ImportDefinitions)
	assert.Equal(t, time.Second, s.StatsInterval)
	assert.Equal(t, "broker/127.0.0.4:5682", k.LockID(in))
}
