package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/internal/devtemporal"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/workflows"
)

// historyThreshold is the embedded server's suggest-continue-as-new event count in the
// bounded-history tests (Temporal's default is 4,096; its hard limit 51,200).
const historyThreshold = 300

// historySlack is one workflow task's worth of events: the task in which the server first
// suggests continuing runs to its end (a gate check: its marker, the upserts, the
// continue-as-new itself) before the run hands over.
const historySlack = 25

// boundedStack is a stack whose Temporal suggests continue-as-new at historyThreshold.
func boundedStack(t *testing.T) *stack {
	return startStackWith(t, devtemporal.Options{DynamicConfig: map[string]any{
		"limit.historyCount.suggestContinueAsNew": historyThreshold,
	}})
}

// run is one run of a migration's chain as the server stored it.
type run struct {
	ID     string
	Events int
	// Next is the run it continued as, or "".
	Next string
}

// chainOf reads a migration's runs from the server's stored histories, from its first run
// along each run's ContinuedAsNew event.
func (s *stack) chainOf(t testing.TB, id, firstRunID string) []run {
	t.Helper()
	ctx := context.Background()
	var runs []run
	for runID := firstRunID; runID != ""; {
		r := run{ID: runID}
		it := s.c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			require.NoError(t, err)
			r.Events++
			if a := e.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
				r.Next = a.GetNewExecutionRunId()
			}
		}
		runs = append(runs, r)
		runID = r.Next
	}
	return runs
}

// requireBounded checks every run of the chain stayed under the threshold plus one
// workflow task, that the chain continued at least minRuns-1 times, and that every run's
// history replays on today's code; it returns the largest run's event count.
func (s *stack) requireBounded(t *testing.T, id string, runs []run, minRuns int) int {
	t.Helper()
	largest, total := 0, 0
	var sizes []string
	for _, r := range runs {
		largest, total = max(largest, r.Events), total+r.Events
		sizes = append(sizes, fmt.Sprint(r.Events))
		require.LessOrEqual(t, r.Events, historyThreshold+historySlack, "run %s has %d events", r.ID, r.Events)
		rp := sdkworker.NewWorkflowReplayer()
		rp.RegisterWorkflowWithOptions(workflows.DNSShift, workflow.RegisterOptions{Name: workflows.KindByName(workflows.KindDNSShift).WorkflowName})
		require.NoError(t, rp.ReplayWorkflowExecution(context.Background(), s.c.WorkflowService(), testenv.QuietLogger(), s.ns,
			workflow.Execution{ID: id, RunID: r.ID}), "run %s replays", r.ID)
	}
	t.Logf("%d runs, events per run %s (largest %d, %d in all; threshold %d)", len(runs), strings.Join(sizes, ", "), largest, total, historyThreshold)
	require.GreaterOrEqual(t, len(runs), minRuns, "the chain continued as new")
	return largest
}

// requireLockReleased waits for the lock child of the shift's record to end.
func (s *stack) requireLockReleased(t *testing.T, lockID string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "the lock "+lockID+" is released", func() bool {
		d, err := s.c.DescribeWorkflowExecution(context.Background(), lockID, "")
		return err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	})
}

// A DNS shift held for approval (two approvers, gates checked every 100 ms while it
// waits) crosses the threshold again and again: each run hands over to the next with the
// first approver's approval, the lock and the audit, a second shift of the same record
// (spelled by zone id) is refused throughout, and the second approver's approval lands on
// whichever run is current. Before continue-as-new the single run grew by 11 events a beat
// without end (2,200 events for this hold).
func TestHeldDNSShiftHistoryStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS")
	}
	s := boundedStack(t)
	ctx := context.Background()
	k, in := s.dnsAlone(t, "www held", time.Second, &workflows.Budgets{HoldBeat: 100 * time.Millisecond})
	in.Spec.GateInterval = 100 * time.Millisecond
	in.Spec.ApproveAfter[0] = true
	in.Approvals = workflows.ApprovalPolicy{RequiredApprovers: 2}
	id := k.LockID(in)
	wr, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, k.WorkflowName, in)
	require.NoError(t, err)
	first := wr.GetRunID()

	testenv.Eventually(t, time.Minute, "awaiting approval at 50%", func() bool {
		p, ok := s.progress(ctx, id)
		return ok && p.State == workflows.StateAwaitingApproval
	})
	_, err = s.act(ctx, id, workflows.UpdateApprove, "bob")
	require.NoError(t, err)
	currentRun := func() string {
		d, err := s.c.DescribeWorkflowExecution(ctx, id, "")
		require.NoError(t, err)
		return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	}
	testenv.Eventually(t, time.Minute, "the held shift continues as new", func() bool { return currentRun() != first })

	// The same record by its zone id: another workflow id, the same lock.
	other := in
	other.Spec.Zone = s.zoneID
	other.Name = "www by zone id"
	oid := k.LockID(other)
	require.NotEqual(t, id, oid)
	orun, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: oid, TaskQueue: workflows.TaskQueue}, k.WorkflowName, other)
	require.NoError(t, err)
	err = orun.Get(ctx, nil)
	require.Error(t, err)
	require.True(t, workflows.HasErrorType(err, workflows.ErrResourceLocked), "refused by the lock the first run took: %v", err)
	require.Contains(t, err.Error(), id, "the refusal names the holder")

	testenv.Eventually(t, 2*time.Minute, "five runs in the chain", func() bool { return len(s.chainOf(t, id, first)) >= 5 })
	p, ok := s.progress(ctx, id)
	require.True(t, ok)
	require.Equal(t, workflows.StateAwaitingApproval, p.State)
	require.NotNil(t, p.PendingApproval)
	require.Equal(t, []string{"bob"}, p.PendingApproval.ApprovedBy, "bob's approval crossed the hand-overs")
	_, err = s.act(ctx, id, workflows.UpdateApprove, "carol")
	require.NoError(t, err)

	var out workflows.DNSShiftResult
	require.NoError(t, s.c.GetWorkflow(ctx, id, "").Get(ctx, &out), "the chain's result, read by workflow id")
	require.Equal(t, workflows.StateCompleted, out.State, out.Message)
	require.Equal(t, map[string]int64{"eu-west-1": 0, "eu-west-2": 100}, s.weights(t), "Route 53's records")

	p, _ = s.progress(ctx, id)
	for _, who := range []string{"bob", "carol"} {
		require.True(t, auditBy(p, who, "approve"), "%s's approval is in the final audit", who)
	}
	require.True(t, auditHas(p, "preflight", "plan"), "the first run's preflight is in the final audit")
	runs := s.chainOf(t, id, first)
	largest := s.requireBounded(t, id, runs, 5)
	testenv.BenchInfo(t, "largest run of a held DNS shift (threshold 300)", fmt.Sprintf("%d events", largest))
	lockID := s.wwwLock()
	s.requireLockReleased(t, lockID)
	s.recordChain(t, id, runs, lockID)
}

// wwwLock is the lock workflow of www.shop.example. A.
func (s *stack) wwwLock() string {
	return workflows.LockWorkflowID(workflows.DNSRecordResource(s.zoneID, "www.shop.example.", "A").ID)
}

// recordChain saves a chain's runs, and the run of the lock it held, to workflows/testdata
// when FERRY_RECORD_HISTORY is set, so TestReplayHistories replays runs that continued as
// new and a lock that watched its holder.
func (s *stack) recordChain(t *testing.T, id string, runs []run, lockID string) {
	if os.Getenv("FERRY_RECORD_HISTORY") == "" {
		return
	}
	dir := filepath.Join("..", "workflows", "testdata")
	for i, r := range runs {
		testenv.SaveHistory(t, s.c, id, r.ID, filepath.Join(dir, fmt.Sprintf("dns-shift-continued.run%d.json.gz", i+1)))
	}
	d, err := s.c.DescribeWorkflowExecution(context.Background(), lockID, "")
	require.NoError(t, err)
	testenv.SaveHistory(t, s.c, lockID, d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), filepath.Join(dir, "dns-shift-continued.lock.json.gz"))
}

// A shift terminated by an operator (`temporal workflow terminate`) runs no more ferry
// code, so it cannot release its lock; the lock, which outlives the shift's runs, sees the
// chain closed and ends, and the record can be shifted again.
func TestLockOfATerminatedShiftIsReleased(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS")
	}
	s := startStack(t)
	ctx := context.Background()
	k, in := s.dnsAlone(t, "www to terminate", time.Second, nil)
	in.Spec.ApproveAfter[0] = true
	id := k.LockID(in)
	_, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, k.WorkflowName, in)
	require.NoError(t, err)
	testenv.Eventually(t, time.Minute, "awaiting approval", func() bool {
		p, ok := s.progress(ctx, id)
		return ok && p.State == workflows.StateAwaitingApproval
	})
	lockID := s.wwwLock()
	d, err := s.c.DescribeWorkflowExecution(ctx, lockID, "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.GetWorkflowExecutionInfo().GetStatus(), "the shift holds its lock")
	require.NoError(t, s.c.TerminateWorkflow(ctx, id, "", "operator: stop it now"))
	s.requireLockReleased(t, lockID)

	// The record is free: a shift of it (spelled by zone id) takes the lock and completes.
	_, again := s.dnsAlone(t, "www again", time.Second, nil)
	again.Spec.Zone = s.zoneID
	var out workflows.DNSShiftResult
	require.NoError(t, s.runKind(t, k, again, &out))
	require.Equal(t, workflows.StateCompleted, out.State, out.Message)
}

// A long bake (gates every 100 ms over two 12 s dwells) crosses the threshold in its
// dwells; each run resumes the dwell where it stood, and the shift ends on time with each
// batch sent once.
func TestLongBakeHistoryStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS")
	}
	s := boundedStack(t)
	ctx := context.Background()
	bake := 12 * time.Second
	k, in := s.dnsAlone(t, "www long bake", bake, nil)
	in.Spec.GateInterval = 100 * time.Millisecond
	id := k.LockID(in)
	began := time.Now()
	wr, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, k.WorkflowName, in)
	require.NoError(t, err)
	var out workflows.DNSShiftResult
	require.NoError(t, s.c.GetWorkflow(ctx, id, "").Get(ctx, &out))
	took := time.Since(began)
	require.Equal(t, workflows.StateCompleted, out.State, out.Message)
	require.Equal(t, map[string]int64{"eu-west-1": 0, "eu-west-2": 100}, s.weights(t))
	// Each dwell resumed where it stood: a run that restarted its dwell would take 12 s more
	// for every hand-over.
	require.Less(t, took, 2*bake+15*time.Second, "the dwells were not restarted at hand-overs")

	p, _ := s.progress(ctx, id)
	changes := 0
	for _, e := range p.Audit {
		if e.Action == "change weights" {
			changes++
		}
	}
	require.Equal(t, 2, changes, "each batch once across the chain: %+v", p.Audit)
	s.requireBounded(t, id, s.chainOf(t, id, wr.GetRunID()), 3)
}

// auditBy reports whether identity did action (or an action starting with it).
func auditBy(p workflows.Progress, identity, action string) bool {
	for _, e := range p.Audit {
		if e.Identity == identity && strings.HasPrefix(e.Action, action) {
			return true
		}
	}
	return false
}

// A region move's DNS phase held at its approval gate continues as new (threshold 300,
// gates every 100 ms); the approval sent to the move is forwarded to the phase's current
// run and the move completes. Before, the move signalled the phase's first run by its run
// id, which had closed at the hand-over: the forward failed and the move waited forever.
func TestRegionMoveForwardsToAContinuedPhase(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS and MongoDB")
	}
	s := boundedStack(t)
	ctx := context.Background()
	in := s.moveSpec(t)
	in.Budgets = &workflows.Budgets{HoldBeat: 100 * time.Millisecond}
	in.Spec.DNS.GateInterval = 100 * time.Millisecond
	k := workflows.KindByName(workflows.KindRegionMove)
	id := k.LockID(in)
	run, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, k.WorkflowName, in)
	require.NoError(t, err)

	// The DNS phase's gate waits until the phase has handed over to a new run.
	continued := map[string]bool{}
	a := &approver{holdChild: func(childID string) bool {
		if !strings.HasPrefix(childID, "dns/") || continued[childID] {
			return false
		}
		d, err := s.c.DescribeWorkflowExecution(ctx, childID, "")
		if err != nil {
			return true
		}
		info := d.GetWorkflowExecutionInfo()
		continued[childID] = info.GetExecution().GetRunId() != info.GetFirstRunId()
		return !continued[childID]
	}}
	actx, stop := context.WithTimeout(ctx, 4*time.Minute)
	defer stop()
	go a.run(actx, s, id)
	var res workflows.RegionMoveResult
	require.NoError(t, run.Get(actx, &res), "approved: %v; refused: %v", a.approved, a.errs)
	require.Equal(t, workflows.StateCompleted, res.State, res.Message)
	require.Len(t, continued, 1)
	for child, ok := range continued {
		require.True(t, ok, "the DNS phase %s continued as new before its approval", child)
	}
	require.Equal(t, map[string]int64{"eu-west-1": 0, "eu-west-2": 100}, s.weights(t))
	require.Equal(t, "eu-west-2", s.primaryRegion())
}
