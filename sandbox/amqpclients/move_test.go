package amqpclients

import (
	"context"
	"os/exec"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ferryhq/ferry/activities"
	"github.com/ferryhq/ferry/internal/rabbitpair"
	"github.com/ferryhq/ferry/sandbox/awssim"
	"github.com/ferryhq/ferry/workflows"
)

// records is a Resolver of simple A records with a 1s TTL, switched by the test.
type records struct {
	mu sync.Mutex
	a  map[string]string
}

func (r *records) Resolve(name, typ string) []awssim.WeightedAnswer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.a[name]; ok && typ == "A" {
		return []awssim.WeightedAnswer{{Weight: -1, TTL: 1, Values: []string{v}, Healthy: true}}
	}
	return nil
}

func (r *records) set(name, v string) { r.mu.Lock(); r.a[name] = v; r.mu.Unlock() }

// A producersFirst move by hand, the steps the workflow will take, with the activities it
// will call: the producer's record to green and its connections on blue closed, the drain
// oracle over blue, the consumer's record to green and its connections closed. The
// producer publishes throughout; no confirmed message may go missing, and the old queue
// ends empty with no connection.
func TestProducersFirstMoveByHand(t *testing.T) {
	p := rabbitpair.Shared(t)
	const queue = "orders"
	for _, n := range []*rabbitpair.Node{p.Blue, p.Green} {
		c, err := amqp.Dial(n.AMQPURL())
		if err != nil {
			t.Fatal(err)
		}
		ch, _ := c.Channel()
		if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
	t.Setenv("FERRY_TEST_RABBIT_PW", rabbitpair.AdminPassword)
	broker := func(n *rabbitpair.Node) activities.RabbitBroker {
		return activities.RabbitBroker{Name: n.Name, ManagementURL: n.MgmtURL(), User: rabbitpair.AdminUser,
			Password: activities.Secret{Env: "FERRY_TEST_RABBIT_PW"}, VHost: "/"}
	}
	blue, green := broker(p.Blue), broker(p.Green)
	dns := &records{a: map[string]string{"mq-pub.shop.internal.": p.Blue.Host, "mq.shop.internal.": p.Blue.Host}}
	o := Options{Resolver: dns, Port: p.Blue.AMQPPort, User: rabbitpair.AdminUser, Password: rabbitpair.AdminPassword,
		Queue: queue, Interval: 5 * time.Millisecond}
	po, co := o, o
	po.Record, po.ConnectionName = "mq-pub.shop.internal.", "shop-producer"
	co.Record, co.ConnectionName = "mq.shop.internal.", "shop-consumer"
	prod, cons := NewProducer(po), NewConsumer(co)
	pctx, stopProducer := context.WithCancel(context.Background())
	cctx, stopConsumer := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); prod.Run(pctx) }()
	go func() { defer wg.Done(); cons.Run(cctx) }()
	defer func() { stopProducer(); stopConsumer(); wg.Wait() }()
	a := &activities.Rabbit{}
	ctx := context.Background()

	// move switches app's record to green, waits out the TTL, and closes the app's
	// connections on blue until blue lists none and green lists one: the management API
	// lists a new connection only seconds after it opened (seen: over 3s with a 1s
	// statistics interval), so "none on blue" alone proves nothing.
	move := func(record, app string) {
		dns.set(record, p.Green.Host)
		time.Sleep(1100 * time.Millisecond) // the record's TTL: clients may still resolve blue until then
		deadline := time.Now().Add(30 * time.Second)
		for {
			res, err := a.CloseRabbitConnections(ctx, activities.CloseRabbitConnectionsInput{Broker: blue, Clients: []string{app}, Reason: "ferry: moved to the new broker"})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Closed) > 0 {
				t.Logf("closed %s's connections on blue: %v", app, res.Closed)
			}
			time.Sleep(p.StatsInterval)
			onBlue, onGreen := false, false
			for _, b := range []activities.RabbitBroker{blue, green} {
				s, err := a.SampleRabbit(ctx, activities.SampleRabbitInput{Broker: b, Queues: []string{queue}})
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range s.Connections {
					onBlue = onBlue || (b.Name == "blue" && c.ClientName == app)
					onGreen = onGreen || (b.Name == "green" && c.ClientName == app)
				}
			}
			if !onBlue && onGreen {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still connected to blue after 30s", app)
			}
		}
	}

	time.Sleep(2 * time.Second) // both running on blue
	move("mq-pub.shop.internal.", "shop-producer")
	began := time.Now()
	var samples []activities.RabbitSample
	rule := workflows.DrainRule{StatsInterval: p.StatsInterval, Intervals: 2, Producers: []string{"shop-producer"}}
	for {
		s, err := a.SampleRabbit(ctx, activities.SampleRabbitInput{Broker: blue, Queues: []string{queue}})
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, s)
		if v := workflows.JudgeDrain(samples, rule); v.Drained {
			break
		}
		if time.Since(began) > 30*time.Second {
			out, _ := exec.Command("sh", "-c", "tail -n 30 "+p.Blue.Dir+"/log/*.log").CombinedOutput()
			t.Logf("blue's log:\n%s", out)
			t.Fatalf("blue not drained in 30s: %+v; clients: %+v; blue: %+v", workflows.JudgeDrain(samples, rule), Count(prod, cons), s)
		}
		time.Sleep(p.StatsInterval / 2)
	}
	t.Logf("blue drained %s after the producer moved", time.Since(began).Round(10*time.Millisecond))
	move("mq.shop.internal.", "shop-consumer")
	time.Sleep(time.Second)
	stopProducer()

	deadline := time.Now().Add(20 * time.Second)
	var tally Tally
	for {
		tally = Count(prod, cons)
		if tally.Missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("tally: %+v", tally)
	if tally.Missing != 0 {
		t.Errorf("%d confirmed messages never delivered", tally.Missing)
	}
	if tally.ConfirmedBy[p.Blue.AMQPAddr()] == 0 || tally.ConfirmedBy[p.Green.AMQPAddr()] == 0 || tally.ReceivedFrom[p.Green.AMQPAddr()] == 0 {
		t.Errorf("the clients did not use both brokers: %+v", tally)
	}
	s, err := a.SampleRabbit(ctx, activities.SampleRabbitInput{Broker: blue, Queues: []string{queue}})
	if err != nil {
		t.Fatal(err)
	}
	if q := s.Queues[0]; q.Ready+q.Unacked != 0 || len(s.Connections) != 0 {
		t.Errorf("blue after the move: queue %+v, connections %+v", q, s.Connections)
	}
}
