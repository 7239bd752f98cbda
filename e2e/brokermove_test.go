package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/amqpclients"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// A broker move in each order on the real pair, the producer publishing throughout: no
// confirmed message missing, every duplicate explained, the old queue empty with no
// application connected, no shovel left behind; judged from the brokers' management API,
// the sandbox's records and the clients' own tally.
func TestBrokerMoveBothOrders(t *testing.T) {
	for _, order := range []string{workflows.BrokerOrderProducersFirst, workflows.BrokerOrderConsumersFirst} {
		t.Run(order, func(t *testing.T) {
			w := startBrokerWorld(t, map[string]string{workflows.BrokerOrderProducersFirst: "pf", workflows.BrokerOrderConsumersFirst: "cf"}[order])
			w.declare(t, w.pair.Blue, w.pair.Green)
			w.startConsumer(t)
			w.startProducer(t)
			w.listedOnBlue(t, w.prodName, w.consName)
			if order == workflows.BrokerOrderProducersFirst {
				w.savePlan(t)
			}
			id := w.start(t, w.specYAML(order))
			res, err := w.wait(t, id)
			require.NoError(t, err)
			require.Equal(t, workflows.StateCompleted, res.State, res.Message)
			t.Logf("%s: %s", order, res.Message)
			w.saveHistory(t, id, "broker-move-"+order+"-completed.json.gz")

			require.Equal(t, w.pair.Green.Host, w.value(t, w.pubRecord))
			require.Equal(t, w.pair.Green.Host, w.value(t, w.conRecord))
			require.Empty(t, w.appsOn(t, w.pair.Blue), "applications still on the old broker")
			testenv.Eventually(t, 10*time.Second, "both applications listed on green", func() bool { return len(w.appsOn(t, w.pair.Green)) == 2 })
			require.Empty(t, w.shovels(t, w.pair.Blue))
			require.Empty(t, w.shovels(t, w.pair.Green))

			tally := w.settle(t, 20*time.Second)
			t.Logf("tally: %+v", tally)
			require.Zero(t, tally.Missing, "confirmed messages never delivered")
			require.Positive(t, tally.ConfirmedBy[w.pair.Blue.AMQPAddr()], "the producer never published to blue")
			require.Positive(t, tally.ConfirmedBy[w.pair.Green.AMQPAddr()], "the producer never published to green")
			requireDuplicatesExplained(t, tally, w)
			q := w.sample(t, w.pair.Blue).Queues[0]
			require.Zero(t, q.Ready+q.Unacked, "the old queue is not empty: %+v", q)

			m := w.get(t, id)
			for _, a := range m.GetBrokerMove().GetApplications() {
				require.Equal(t, "new", a.GetBroker(), a.GetConnectionName())
			}
			require.True(t, m.GetBrokerMove().GetDrain().GetDrained())
		})
	}
}

// requireDuplicatesExplained: a duplicate delivery comes only from a connection closed
// with messages in flight: a consumer's unacked deliveries are redelivered (at most its
// prefetch per reconnect) and a producer's unconfirmed publish is sent again (one per
// reconnect). More than that is unexplained. The consumer deduplicates by id, and
// Missing counts by id, so duplicates cannot hide a loss.
func requireDuplicatesExplained(t *testing.T, tally amqpclients.Tally, w *brokerWorld) {
	t.Helper()
	bound := tally.Reconnects[w.consName]*50 + tally.Reconnects[w.prodName]
	require.LessOrEqual(t, tally.Duplicated, bound, "duplicates beyond what reconnects explain: %+v", tally)
}

// A move a person rolls back while the old queue cannot drain (its consumer is down):
// the producer had moved and published to green, where nothing consumes. The rollback
// shovels green's queue back to blue before switching the producer back, and removes the
// shovel only once green's queue is proven drained: every confirmed message is then on
// blue, and the consumer, started afterwards, receives all of them.
func TestBrokerMoveRollbackStrandsNothing(t *testing.T) {
	w := startBrokerWorld(t, "rb")
	w.declare(t, w.pair.Blue, w.pair.Green)
	w.startProducer(t)
	w.listedOnBlue(t, w.prodName)
	id := w.start(t, w.specYAML(workflows.BrokerOrderProducersFirst, "drainTimeout: 3s"))
	testenv.Eventually(t, time.Minute, "the drain-timeout decision", func() bool { return len(w.get(t, id).GetPendingApprovals()) == 1 })
	require.Contains(t, w.appsOn(t, w.pair.Green), w.prodName)
	_, err := w.APIClient(testenv.TokenAlice, false).RollbackMigration(w.ctx, connect.NewRequest(&ferryv1.RollbackMigrationRequest{Id: id, Reason: "consumers are down"}))
	require.NoError(t, err)
	res, err := w.wait(t, id)
	require.NoError(t, err)
	require.Equal(t, workflows.StateRolledBack, res.State, res.Message)
	t.Logf("%s", res.Message)
	w.saveHistory(t, id, "broker-move-rollback-requested.json.gz")

	require.Equal(t, w.pair.Blue.Host, w.value(t, w.pubRecord))
	require.Equal(t, w.pair.Blue.Host, w.value(t, w.conRecord))
	q := w.sample(t, w.pair.Green).Queues[0]
	require.Zero(t, q.Ready+q.Unacked, "messages stranded on green: %+v", q)
	require.Empty(t, w.shovels(t, w.pair.Blue))
	require.Empty(t, w.shovels(t, w.pair.Green))
	require.NotContains(t, w.appsOn(t, w.pair.Green), w.prodName)

	w.startConsumer(t)
	tally := w.settle(t, 30*time.Second)
	t.Logf("tally: %+v", tally)
	require.Positive(t, tally.ConfirmedBy[w.pair.Green.AMQPAddr()], "the producer never published to green: nothing was shovelled back")
	require.Zero(t, tally.Missing, "confirmed messages lost by the rollback")
	require.Zero(t, tally.ReceivedFrom[w.pair.Green.AMQPAddr()], "the consumer should have read everything from blue")
}

// The drain times out (no consumer on the old queue) and a second person approves the
// decision: ferry shovels the rest to green with on-confirm, the shovel drains blue, the
// consumer's switch follows and the shovel is removed. Nothing confirmed is missing once
// the consumer runs against green.
func TestBrokerMoveDrainTimeoutShovelsTheRest(t *testing.T) {
	w := startBrokerWorld(t, "dt")
	w.declare(t, w.pair.Blue, w.pair.Green)
	w.startProducer(t)
	w.listedOnBlue(t, w.prodName)
	id := w.start(t, w.specYAML(workflows.BrokerOrderProducersFirst, "drainTimeout: 3s"))
	testenv.Eventually(t, time.Minute, "the drain-timeout decision", func() bool { return len(w.get(t, id).GetPendingApprovals()) == 1 })
	// A second move off the same broker and vhost is refused while this one runs.
	m2, err := spec.Parse([]byte(w.specYAML(workflows.BrokerOrderConsumersFirst)), ".yaml")
	require.NoError(t, err)
	_, err = w.APIClient(testenv.TokenAlice, false).StartMigration(w.ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m2}))
	require.Equal(t, connect.CodeAlreadyExists, connect.CodeOf(err), "%v", err)
	_, err = w.APIClient(testenv.TokenBob, false).ApproveStep(w.ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id, Comment: "shovel it"}))
	require.NoError(t, err)
	res, err := w.wait(t, id)
	require.NoError(t, err)
	require.Equal(t, workflows.StateCompleted, res.State, res.Message)
	require.True(t, res.Shovelled)
	t.Logf("%s", res.Message)
	w.saveHistory(t, id, "broker-move-drain-timeout-shovelled.json.gz")

	q := w.sample(t, w.pair.Blue).Queues[0]
	require.Zero(t, q.Ready+q.Unacked, "the old queue is not empty: %+v", q)
	require.Empty(t, w.shovels(t, w.pair.Blue))
	require.Equal(t, w.pair.Green.Host, w.value(t, w.conRecord))
	w.startConsumer(t)
	tally := w.settle(t, 30*time.Second)
	t.Logf("tally: %+v", tally)
	require.Positive(t, tally.ConfirmedBy[w.pair.Blue.AMQPAddr()])
	require.Zero(t, tally.Missing, "confirmed messages lost by the shovel")
}

// saveHistory writes the run's history to workflows/testdata (replayed there on every
// test run) when FERRY_RECORD_HISTORY is set.
func (w *brokerWorld) saveHistory(t *testing.T, id, name string) {
	if os.Getenv("FERRY_RECORD_HISTORY") == "" {
		return
	}
	dir := filepath.Join("..", "workflows", "testdata")
	d, err := w.Client.DescribeWorkflowExecution(w.ctx, id, "")
	require.NoError(t, err)
	testenv.SaveHistory(t, w.Client, id, d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), filepath.Join(dir, name))
}

// savePlan records a plan's history (see saveHistory); the records must still point at
// the old broker.
func (w *brokerWorld) savePlan(t *testing.T) {
	if os.Getenv("FERRY_RECORD_HISTORY") == "" {
		return
	}
	dir := filepath.Join("..", "workflows", "testdata")
	m, err := spec.Parse([]byte(w.specYAML(workflows.BrokerOrderProducersFirst)), ".yaml")
	require.NoError(t, err)
	k, in, err := spec.Input(m, "alice", "")
	require.NoError(t, err)
	run, err := w.Client.ExecuteWorkflow(w.ctx, client.StartWorkflowOptions{ID: "plan/" + k.LockID(in), TaskQueue: workflows.TaskQueue}, k.PlanName, k.PlanInput(in))
	require.NoError(t, err)
	var plan workflows.Plan
	require.NoError(t, run.Get(w.ctx, &plan))
	testenv.SaveHistory(t, w.Client, run.GetID(), run.GetRunID(), filepath.Join(dir, "plan-broker-move.json.gz"))
}

// A producersFirst move whose worker is replaced (stopped, a new one started with nothing
// cached) every 1.5s while it runs, so at every step (the steps last seconds): the move
// must still end with nothing missing, both applications on green and the old queue
// empty. The phases the restarts hit are logged and must include each switch and the drain.
func TestBrokerMoveSurvivesWorkerRestarts(t *testing.T) {
	w := startBrokerWorld(t, "wr")
	w.declare(t, w.pair.Blue, w.pair.Green)
	w.startConsumer(t)
	w.startProducer(t)
	w.listedOnBlue(t, w.prodName, w.consName)
	id := w.start(t, w.specYAML(workflows.BrokerOrderProducersFirst))
	hit := map[string]int{}
	for {
		time.Sleep(1500 * time.Millisecond)
		m := w.get(t, id)
		if m.GetState() != ferryv1.MigrationState_MIGRATION_STATE_RUNNING {
			break
		}
		w.RestartWorker(t)
		hit[m.GetPhase()]++
	}
	t.Logf("worker replaced during: %v", hit)
	require.Positive(t, hit["move producer "+w.prodName]+hit["move consumer "+w.consName], "no restart during a switch")
	res, err := w.wait(t, id)
	require.NoError(t, err)
	require.Equal(t, workflows.StateCompleted, res.State, res.Message)
	require.Equal(t, w.pair.Green.Host, w.value(t, w.pubRecord))
	require.Equal(t, w.pair.Green.Host, w.value(t, w.conRecord))
	require.Empty(t, w.appsOn(t, w.pair.Blue))
	tally := w.settle(t, 20*time.Second)
	t.Logf("tally: %+v", tally)
	require.Zero(t, tally.Missing)
	requireDuplicatesExplained(t, tally, w)
	q := w.sample(t, w.pair.Blue).Queues[0]
	require.Zero(t, q.Ready+q.Unacked)
}

// A consumersFirst move whose producer's switch is refused for good (Route 53 denies the
// second change: a permanent error) after the shovels run and the consumer has moved: the
// run rolls back. The forward shovels go first (both ways would circle messages), green's
// queue is shovelled back to blue, the consumer switches back, and the shovels are
// removed once green's queue is proven drained. Nothing confirmed is missing, nothing is
// left on green, no shovel remains, both records point at blue again.
func TestBrokerMoveConsumersFirstPermanentErrorRollsBack(t *testing.T) {
	w := startBrokerWorld(t, "ce")
	w.declare(t, w.pair.Blue, w.pair.Green)
	w.startConsumer(t)
	w.startProducer(t)
	w.listedOnBlue(t, w.prodName, w.consName)
	_, err := w.Sandbox.Faults().Add(deny("aws:route53:ChangeResourceRecordSets", 1, 1))
	require.NoError(t, err)
	id := w.start(t, w.specYAML(workflows.BrokerOrderConsumersFirst))
	res, err := w.wait(t, id)
	require.NoError(t, err, "a failure undone in full ends rolled back")
	require.Equal(t, workflows.StateRolledBack, res.State, res.Message)
	t.Logf("%s", res.Message)
	w.saveHistory(t, id, "broker-move-failed-undone.json.gz")

	require.Equal(t, w.pair.Blue.Host, w.value(t, w.pubRecord))
	require.Equal(t, w.pair.Blue.Host, w.value(t, w.conRecord))
	require.Empty(t, w.shovels(t, w.pair.Blue))
	require.Empty(t, w.shovels(t, w.pair.Green))
	q := w.sample(t, w.pair.Green).Queues[0]
	require.Zero(t, q.Ready+q.Unacked, "messages stranded on green: %+v", q)
	testenv.Eventually(t, 15*time.Second, "both applications listed on blue", func() bool { return len(w.appsOn(t, w.pair.Blue)) == 2 })
	require.Empty(t, w.appsOn(t, w.pair.Green))
	tally := w.settle(t, 20*time.Second)
	t.Logf("tally: %+v", tally)
	require.Zero(t, tally.Missing)
	require.Positive(t, tally.ReceivedFrom[w.pair.Green.AMQPAddr()], "the consumer never read from green: the shovel path was not exercised")
}
