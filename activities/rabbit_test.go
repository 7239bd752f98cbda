package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ferryhq/ferry/internal/rabbitpair"
)

func rabbitBroker(t *testing.T, n *rabbitpair.Node) RabbitBroker {
	t.Setenv("FERRY_TEST_RABBIT_PW", rabbitpair.AdminPassword)
	return RabbitBroker{Name: n.Name, ManagementURL: n.MgmtURL(), User: rabbitpair.AdminUser,
		Password: Secret{Env: "FERRY_TEST_RABBIT_PW"}, VHost: rabbitpair.VHost}
}

func dialNamed(t *testing.T, n *rabbitpair.Node, name string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	cfg := amqp.Config{Properties: amqp.NewConnectionProperties()}
	cfg.Properties.SetClientConnectionName(name)
	conn, err := amqp.DialConfig(n.AMQPURL(), cfg)
	if err != nil {
		t.Fatalf("dial %s as %s: %v", n.Name, name, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return conn, ch
}

// Waits for a sample meeting ok: the management API's listings lag the broker by up to a
// statistics interval.
func sampleUntil(t *testing.T, a *Rabbit, in SampleRabbitInput, what string, ok func(RabbitSample) bool) RabbitSample {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := a.SampleRabbit(context.Background(), in)
		if err != nil {
			t.Fatalf("sample: %v", err)
		}
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sample showed %s within 15s; last: %+v", what, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Against a real broker: the sampler sees ready and unacknowledged messages, consumers and
// a publishing channel; closing the producer's connections reaches the client with the
// reason; the drain is judged drained (by workflows.JudgeDrain, in the workflows tests)
// only from these figures, so they are checked here as the broker reports them.
func TestRabbitSampleAndCloseConnections(t *testing.T) {
	p := rabbitpair.Shared(t)
	a := &Rabbit{}
	blue := rabbitBroker(t, p.Blue)
	queue := "sample-" + strings.ReplaceAll(t.Name(), "/", "-")

	pconn, pch := dialNamed(t, p.Blue, "it-producer")
	closed := pconn.NotifyClose(make(chan *amqp.Error, 1))
	if _, err := pch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := pch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		dc, err := pch.PublishWithDeferredConfirm("", queue, false, false, amqp.Publishing{MessageId: fmt.Sprint(i), Body: []byte("m")})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
			t.Fatalf("message %d not confirmed: %v", i, err)
		}
	}
	// A consumer that holds 5 messages unacknowledged.
	_, cch := dialNamed(t, p.Blue, "it-consumer")
	if err := cch.Qos(5, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := cch.Consume(queue, "it", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var held []amqp.Delivery
	for len(held) < 5 {
		held = append(held, <-deliveries)
	}
	in := SampleRabbitInput{Broker: blue, Queues: []string{queue, "no-such-queue"}}
	s := sampleUntil(t, a, in, "15 ready, 5 unacked, 1 consumer, a publishing channel", func(s RabbitSample) bool {
		q := s.Queues[0]
		pub := false
		for _, c := range s.Connections {
			pub = pub || (c.ClientName == "it-producer" && c.Publishing == 1)
		}
		return q.Ready == 15 && q.Unacked == 5 && q.Consumers == 1 && q.Published == 20 && pub
	})
	if !s.Queues[1].Missing {
		t.Errorf("no-such-queue not reported missing: %+v", s.Queues[1])
	}

	// Closing the producer's connections: the client learns why, the consumer stays. (A
	// connection opened within the last statistics interval may not be listed yet: the
	// workflow closes and verifies until none is left, it does not trust one close.)
	res, err := a.CloseRabbitConnections(context.Background(), CloseRabbitConnectionsInput{Broker: blue, Clients: []string{"it-producer"}, Reason: "ferry: moved to the new broker"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Closed) == 0 {
		t.Fatalf("nothing closed")
	}
	select {
	case e := <-closed:
		if e == nil || !strings.Contains(e.Reason, "ferry: moved to the new broker") {
			t.Errorf("close reason seen by the client: %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the producer's connection was not closed")
	}
	sampleUntil(t, a, in, "no it-producer connection, it-consumer still there", func(s RabbitSample) bool {
		var prod, cons bool
		for _, c := range s.Connections {
			prod = prod || c.ClientName == "it-producer"
			cons = cons || (c.ClientName == "it-consumer" && c.Consuming == 1)
		}
		return !prod && cons
	})
	for _, d := range held {
		_ = d.Ack(false)
	}

	// Bad credentials and a bad URL are permanent, with no retry.
	bad := blue
	t.Setenv("FERRY_TEST_RABBIT_BAD", "wrong")
	bad.Password = Secret{Env: "FERRY_TEST_RABBIT_BAD"}
	if _, err := a.SampleRabbit(context.Background(), SampleRabbitInput{Broker: bad}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("bad password: %v", err)
	}
	bad = blue
	bad.ManagementURL = "localhost:15672"
	if _, err := a.SampleRabbit(context.Background(), SampleRabbitInput{Broker: bad}); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("bad URL: %v", err)
	}
}

// The preflight's definitions check on real brokers: a spec queue missing on the old
// broker is named; what the new broker lacks is listed, and imported on request.
func TestRabbitDefinitions(t *testing.T) {
	p := rabbitpair.Shared(t)
	a := &Rabbit{}
	blue, green := rabbitBroker(t, p.Blue), rabbitBroker(t, p.Green)
	_, ch := dialNamed(t, p.Blue, "it-defs")
	if err := ch.ExchangeDeclare("defs-x", "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("defs-q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("defs-q", "new", "defs-x", false, nil); err != nil {
		t.Fatal(err)
	}
	// Another application's queue in the same vhost is not the move's business.
	if _, err := ch.QueueDeclare("defs-other", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"exchange defs-x", "queue defs-q", "binding defs-x -> queue defs-q (key new)"}
	res, err := a.RabbitDefinitions(context.Background(), RabbitDefinitionsInput{Old: blue, New: green, Queues: []string{"defs-q", "nope"}, Import: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.MissingOnOld) != 1 || res.MissingOnOld[0] != "queue nope" || res.Imported {
		t.Fatalf("a queue missing on the old broker: %+v (nothing may be imported then)", res)
	}
	for _, w := range want {
		if !slices.Contains(res.MissingOnNew, w) {
			t.Errorf("%q not in the difference %q", w, res.MissingOnNew)
		}
	}
	res, err = a.RabbitDefinitions(context.Background(), RabbitDefinitionsInput{Old: blue, New: green, Queues: []string{"defs-q"}, Import: true})
	if err != nil || !res.Imported {
		t.Fatalf("import: %+v, %v", res, err)
	}
	res, err = a.RabbitDefinitions(context.Background(), RabbitDefinitionsInput{Old: blue, New: green, Queues: []string{"defs-q"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if slices.Contains(res.MissingOnNew, w) {
			t.Errorf("%q still missing on the new broker after the import: %q", w, res.MissingOnNew)
		}
	}
	s, err := a.SampleRabbit(context.Background(), SampleRabbitInput{Broker: green, Queues: []string{"defs-other"}})
	if err != nil || !s.Queues[0].Missing {
		t.Errorf("an unrelated queue was imported: %+v, %v", s.Queues, err)
	}
	// The undo removes what the import added (empty and unused).
	rm, err := a.RemoveRabbitDefinitions(context.Background(), RemoveRabbitDefinitionsInput{Broker: green, Items: want})
	if err != nil || !slices.Contains(rm.Removed, "queue defs-q") || !slices.Contains(rm.Removed, "exchange defs-x") {
		t.Fatalf("remove: %+v, %v", rm, err)
	}
	res, err = a.RabbitDefinitions(context.Background(), RabbitDefinitionsInput{Old: blue, New: green, Queues: []string{"defs-q"}})
	if err != nil || !slices.Contains(res.MissingOnNew, "queue defs-q") {
		t.Errorf("defs-q still on the new broker after the removal: %+v, %v", res, err)
	}
	_, _ = ch.QueueDelete("defs-other", false, false, false)
}
