package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/ferryhq/ferry/activities"
	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/rabbitpair"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/amqpclients"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// The broker move's test world: ferry's stack, the package's RabbitMQ pair (blue the old
// broker, green the new; one AMQP port, told apart by address), a zone shop.internal. whose
// records mq-pub (the producer's) and mq (the consumer's) point at blue with TTL 1s, and
// the sandbox's producer and consumer resolving them. Each test has its own queue and
// application names: the pair is shared by the package. Everything is judged from the
// brokers' management API and the clients' own tally.

const brokerPWEnv = "FERRY_E2E_RABBIT_PASSWORD"

type brokerWorld struct {
	*testenv.Stack
	ctx       context.Context
	pair      *rabbitpair.Pair
	queue     string
	prodName  string
	consName  string
	pubRecord string
	conRecord string
	prod      *amqpclients.Producer
	cons      *amqpclients.Consumer
	stops     map[string]context.CancelFunc
	wg        sync.WaitGroup
}

func startBrokerWorld(t testing.TB, name string) *brokerWorld {
	t.Helper()
	pair := rabbitpair.Shared(t) // first: skips (or fails in CI) before the stack costs anything
	t.Setenv(brokerPWEnv, rabbitpair.AdminPassword)
	st := testenv.StartStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	w := &brokerWorld{Stack: st, ctx: ctx, pair: pair, queue: "orders-" + name, prodName: name + "-producer", consName: name + "-consumer",
		pubRecord: "mq-pub.shop.internal.", conRecord: "mq.shop.internal.", stops: map[string]context.CancelFunc{}}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("sandbox", "sandbox", "")))
	require.NoError(t, err)
	r53 := route53.NewFromConfig(cfg, func(o *route53.Options) { o.BaseEndpoint = aws.String(st.Sandbox.Addr()) })
	z, err := r53.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("shop.internal."), CallerReference: aws.String(name + time.Now().String())})
	require.NoError(t, err)
	var changes []r53types.Change
	for _, rec := range []string{w.pubRecord, w.conRecord} {
		changes = append(changes, r53types.Change{Action: r53types.ChangeActionCreate, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: aws.String(rec), Type: r53types.RRTypeA, TTL: aws.Int64(1), ResourceRecords: []r53types.ResourceRecord{{Value: aws.String(pair.Blue.Host)}}}})
	}
	_, err = r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: z.HostedZone.Id, ChangeBatch: &r53types.ChangeBatch{Changes: changes}})
	require.NoError(t, err)
	t.Cleanup(func() {
		w.stopClients()
		w.cleanBrokers(t)
	})
	return w
}

// declare makes the test's queue on the given nodes.
func (w *brokerWorld) declare(t testing.TB, nodes ...*rabbitpair.Node) {
	t.Helper()
	for _, n := range nodes {
		c, err := amqp.Dial(n.AMQPURL())
		require.NoError(t, err)
		ch, err := c.Channel()
		require.NoError(t, err)
		_, err = ch.QueueDeclare(w.queue, true, false, false, false, nil)
		require.NoError(t, err)
		_ = c.Close()
	}
}

// cleanBrokers deletes the test's queue and any ferry shovel left on either node, so the
// next test of the package starts from clean brokers.
func (w *brokerWorld) cleanBrokers(t testing.TB) {
	for _, n := range []*rabbitpair.Node{w.pair.Blue, w.pair.Green} {
		if c, err := amqp.Dial(n.AMQPURL()); err == nil {
			if ch, err := c.Channel(); err == nil {
				_, _ = ch.QueueDelete(w.queue, false, false, false)
			}
			_ = c.Close()
		}
		for _, from := range []string{"old", "new"} {
			_ = (&activities.Rabbit{}).DeleteRabbitShovel(context.Background(), activities.DeleteRabbitShovelInput{Broker: w.broker(n), Name: "ferry-" + w.queue + "-to-" + map[string]string{"old": "new", "new": "old"}[from]})
		}
	}
}

func (w *brokerWorld) broker(n *rabbitpair.Node) activities.RabbitBroker {
	return activities.RabbitBroker{Name: n.Name, ManagementURL: n.MgmtURL(), User: rabbitpair.AdminUser, Password: activities.Secret{Env: brokerPWEnv}, VHost: rabbitpair.VHost}
}

func (w *brokerWorld) clientOptions(record, conn string) amqpclients.Options {
	return amqpclients.Options{Resolver: w.Sandbox.AWS(), Record: record, Port: w.pair.Blue.AMQPPort, User: rabbitpair.AdminUser, Password: rabbitpair.AdminPassword,
		ConnectionName: conn, Queue: w.queue, Interval: 5 * time.Millisecond}
}

// startProducer and startConsumer run the sandbox's clients until stopped.
func (w *brokerWorld) startProducer(t testing.TB) {
	w.prod = amqpclients.NewProducer(w.clientOptions(w.pubRecord, w.prodName))
	w.run("producer", w.prod.Run)
	testenv.Eventually(t, 10*time.Second, "the producer's first confirm", func() bool { return amqpclients.Count(w.prod, w.consumerOrIdle()).Confirmed > 0 })
}

// listedOnBlue waits until the management API lists every named application on blue (a
// new connection is listed only seconds after it opened; running applications are).
func (w *brokerWorld) listedOnBlue(t testing.TB, apps ...string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, "the applications listed on blue", func() bool {
		on := w.appsOn(t, w.pair.Blue)
		for _, a := range apps {
			if !slices.Contains(on, a) {
				return false
			}
		}
		return true
	})
}

func (w *brokerWorld) startConsumer(t testing.TB) {
	if w.cons == nil {
		w.cons = amqpclients.NewConsumer(w.clientOptions(w.conRecord, w.consName))
	}
	w.run("consumer", w.cons.Run)
}

// consumerOrIdle is the consumer, or one never started (for counting before it runs).
func (w *brokerWorld) consumerOrIdle() *amqpclients.Consumer {
	if w.cons == nil {
		w.cons = amqpclients.NewConsumer(w.clientOptions(w.conRecord, w.consName))
	}
	return w.cons
}

func (w *brokerWorld) run(name string, f func(context.Context)) {
	ctx, cancel := context.WithCancel(w.ctx)
	w.stops[name] = cancel
	w.wg.Add(1)
	go func() { defer w.wg.Done(); f(ctx) }()
}

func (w *brokerWorld) stop(name string) {
	if c := w.stops[name]; c != nil {
		c()
		delete(w.stops, name)
	}
}

func (w *brokerWorld) stopClients() {
	for n := range w.stops {
		w.stop(n)
	}
	w.wg.Wait()
}

// specYAML is the move's spec; extra lines are appended under brokerMove.
func (w *brokerWorld) specYAML(order string, extra ...string) string {
	y := fmt.Sprintf(`name: orders broker to green
reason: e2e
brokerMove:
  oldBroker: {amqpAddress: "%[1]s", managementUrl: "%[2]s", user: %[3]s, password: {env: %[4]s}}
  newBroker: {amqpAddress: "%[5]s", managementUrl: "%[6]s", user: %[3]s, password: {env: %[4]s}}
  queues: [%[7]s]
  producers: [{connectionName: %[8]s, switch: {record: {hostedZone: shop.internal., name: %[9]s}}}]
  consumers: [{connectionName: %[10]s, switch: {record: {hostedZone: shop.internal., name: %[11]s}}}]
  order: %[12]s
  statisticsInterval: %[13]s
  moveTimeout: 30s
`, w.pair.Blue.AMQPAddr(), w.pair.Blue.MgmtURL(), rabbitpair.AdminUser, brokerPWEnv, w.pair.Green.AMQPAddr(), w.pair.Green.MgmtURL(),
		w.queue, w.prodName, w.pubRecord, w.consName, w.conRecord, order, w.pair.StatsInterval)
	for _, e := range extra {
		y += "  " + e + "\n"
	}
	return y
}

func (w *brokerWorld) start(t testing.TB, y string) string {
	t.Helper()
	m, err := spec.Parse([]byte(y), ".yaml")
	require.NoError(t, err)
	res, err := w.APIClient(testenv.TokenAlice, false).StartMigration(w.ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
	require.NoError(t, err)
	return res.Msg.GetMigration().GetId()
}

func (w *brokerWorld) wait(t testing.TB, id string) (workflows.BrokerMoveResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 3*time.Minute)
	defer cancel()
	var res workflows.BrokerMoveResult
	err := w.Client.GetWorkflow(ctx, id, "").Get(ctx, &res)
	if err != nil && ctx.Err() != nil {
		m := w.get(t, id)
		t.Logf("still %s at %q: %s; steps %v; broker %v", m.GetState(), m.GetPhase(), m.GetMessage(), m.GetSteps(), m.GetBrokerMove())
	}
	var ae *temporal.ApplicationError
	if err != nil && workflows.HasErrorType(err, workflows.ErrMigrationFailed) && errors.As(err, &ae) {
		_ = ae.Details(&res)
	}
	return res, err
}

func (w *brokerWorld) get(t testing.TB, id string) *ferryv1.Migration {
	t.Helper()
	res, err := w.APIClient(testenv.TokenAlice, false).GetMigration(w.ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
	require.NoError(t, err)
	return res.Msg.GetMigration()
}

// --- judging from outside ----------------------------------------------------------------

func (w *brokerWorld) value(t testing.TB, record string) string {
	t.Helper()
	ans := w.Sandbox.AWS().Resolve(record, "A")
	require.Len(t, ans, 1, record)
	return strings.Join(ans[0].Values, ",")
}

// sample reads a node's view of the test's queue and connections (management API).
func (w *brokerWorld) sample(t testing.TB, n *rabbitpair.Node) activities.RabbitSample {
	t.Helper()
	s, err := (&activities.Rabbit{}).SampleRabbit(w.ctx, activities.SampleRabbitInput{Broker: w.broker(n), Queues: []string{w.queue}})
	require.NoError(t, err)
	return s
}

// appsOn names the test's applications connected to n.
func (w *brokerWorld) appsOn(t testing.TB, n *rabbitpair.Node) []string {
	var out []string
	for _, c := range w.sample(t, n).Connections {
		if c.ClientName == w.prodName || c.ClientName == w.consName {
			out = append(out, c.ClientName)
		}
	}
	return out
}

// shovels lists the shovel parameters declared on n (GET /api/parameters/shovel/{vhost}).
func (w *brokerWorld) shovels(t testing.TB, n *rabbitpair.Node) []string {
	t.Helper()
	req, err := http.NewRequestWithContext(w.ctx, "GET", n.MgmtURL()+"/api/parameters/shovel/"+url.PathEscape(rabbitpair.VHost), nil)
	require.NoError(t, err)
	req.SetBasicAuth(rabbitpair.AdminUser, rabbitpair.AdminPassword)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	var params []struct {
		Name string `json:"name"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&params))
	var out []string
	for _, p := range params {
		if strings.Contains(p.Name, w.queue) {
			out = append(out, p.Name)
		}
	}
	return out
}

// settle stops the producer and waits for the consumer to receive every confirmed
// message (or the limit), returning the tally.
func (w *brokerWorld) settle(t testing.TB, limit time.Duration) amqpclients.Tally {
	t.Helper()
	w.stop("producer")
	deadline := time.Now().Add(limit)
	var tally amqpclients.Tally
	for {
		tally = amqpclients.Count(w.prod, w.consumerOrIdle())
		if tally.Missing == 0 || time.Now().After(deadline) {
			return tally
		}
		time.Sleep(100 * time.Millisecond)
	}
}
