package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/mongosim"
	"github.com/ferryhq/ferry/workflows"
)

// upgradeHistory is what the upgrade test reads from a migration's history as the Temporal
// server keeps it: the change's traces and which worker process recorded each step.
type upgradeHistory struct {
	markers      map[string]int // version markers by change id (ferry's own changes too)
	verifyReads  int            // ReadReplicaSet activities scheduled with the summary "verify: ..."
	settleTimers int            // timers of upgradeSettle
	// taskWorkers is the identity of the worker that completed each workflow task, in order.
	taskWorkers []string
}

func (e *upgradeEnv) history(t *testing.T, id string) upgradeHistory {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dc := converter.GetDefaultDataConverter()
	h := upgradeHistory{markers: map[string]int{}}
	it := e.c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err, "history of %s", id)
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			a := ev.GetMarkerRecordedEventAttributes()
			var change string
			if a.GetMarkerName() == "Version" && dc.FromPayloads(a.GetDetails()["change-id"], &change) == nil {
				h.markers[change]++
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() != upgradeVerifyActivity {
				continue
			}
			var summary string
			if p := ev.GetUserMetadata().GetSummary(); p != nil && dc.FromPayload(p, &summary) == nil && strings.HasPrefix(summary, upgradeVerifyPrefix) {
				h.verifyReads++
			}
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			if ev.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration() == upgradeSettle {
				h.settleTimers++
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			h.taskWorkers = append(h.taskWorkers, ev.GetWorkflowTaskCompletedEventAttributes().GetIdentity())
		}
	}
	return h
}

// requireRecordedBy checks that the history's workflow tasks were completed by the workers
// in order: every task of workers[0] before any of workers[1], and each worker did some.
func requireRecordedBy(t *testing.T, id string, h upgradeHistory, workers ...*upgradeWorker) {
	t.Helper()
	var seq []string // the workers' names, one per run of tasks
	for _, who := range h.taskWorkers {
		name := who
		for _, w := range workers {
			if who == w.identity {
				name = w.name
			}
		}
		if len(seq) == 0 || seq[len(seq)-1] != name {
			seq = append(seq, name)
		}
	}
	var want []string
	for _, w := range workers {
		want = append(want, w.name)
	}
	require.Equal(t, want, seq, "%s: who completed its workflow tasks, in order", id)
}

// replayWithThisCode replays a migration's history from the server against the code this
// test binary was built from (build A's source); the SDK logs to logger.
func (e *upgradeEnv) replayWithThisCode(id string, logger tlog.Logger) error {
	r := sdkworker.NewWorkflowReplayer()
	for _, k := range workflows.Kinds() {
		r.RegisterWorkflowWithOptions(k.Workflow, workflow.RegisterOptions{Name: k.WorkflowName})
		r.RegisterWorkflowWithOptions(k.Plan, workflow.RegisterOptions{Name: k.PlanName})
	}
	workflows.RegisterLock(r)
	return r.ReplayWorkflowExecution(context.Background(), e.c.WorkflowService(), logger, e.ns, workflow.Execution{ID: id})
}

// upgradeConfigShape is a set's config as the simulator reports it (testenv.ReplicaSetConfig),
// with each host named by its place instead: eu-west-1#0 is the set's first eu-west-1 member.
// The sets are copies of one topology, so moves that did the same have equal shapes.
func upgradeConfigShape(ms []mongosim.MemberStatus) map[string]string {
	cfg := testenv.ReplicaSetConfig(ms)
	out := map[string]string{}
	seen := map[string]int{}
	for _, m := range ms {
		role := m.Region + "#" + string(rune('0'+seen[m.Region]))
		seen[m.Region]++
		if c, ok := cfg[m.Host]; ok {
			out[role] = c
		}
	}
	return out
}

// upgradeReconfigs counts the reconfigs the simulator accepted and the most voters any one
// of them changed (mongod's safe-reconfig rule, which ferry keeps, allows one).
func upgradeReconfigs(c *mongosim.Cluster) (n, maxVotingChanges int) {
	for _, ev := range c.Events() {
		if ev.Kind == mongosim.EventReconfig && ev.Reconfig != nil {
			n++
			maxVotingChanges = max(maxVotingChanges, ev.Reconfig.VotingChanges)
		}
	}
	return n, maxVotingChanges
}
