package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// TestRecordKindHistories runs every kind for real (testenv.StartStack: embedded Temporal,
// the sandbox's AWS and MongoDB over their wire protocols, ferry's own worker) and writes
// the histories to testdata/ (see save), which TestReplayHistories replays on every test
// run. Each kind is recorded on the paths a long-lived run can be on when a new worker
// picks it up: forward with an approval, a pause and a resume; a rollback a person asks
// for; a failure on a permanent cloud error that the run undoes. Every run is pinned to its
// plan's hash, so a change to the hash encoding fails the replay too (the drift check
// decides another way). Rerun it (FERRY_RECORD_HISTORY=1) only when a change is meant to
// alter histories, and then keep the old files: they are the runs already in flight.
func TestRecordKindHistories(t *testing.T) {
	if os.Getenv("FERRY_RECORD_HISTORY") == "" {
		t.Skip("set FERRY_RECORD_HISTORY=1 to record workflows/testdata histories")
	}
	// Each kind gets a stack of its own: its last run completes, and the next kind must not
	// start from a sandbox already migrated.
	t.Run(workflows.KindDNSShift, func(t *testing.T) {
		r := newRecorder(t)
		recordSingleKind(r, workflows.KindDNSShift, *r.moveInput().Spec.DNS,
			deny("aws:route53:ChangeResourceRecordSets", 1)) // the second batch
	})
	t.Run(workflows.KindAMIShare, func(t *testing.T) {
		r := newRecorder(t)
		s := *r.moveInput().Spec.AMI
		// Sharing behind an approval gives the kind its gate; one copy at a time makes the
		// failing copy the second, after the first was made (so there is something to undo).
		s.ShareWithAccounts, s.ApproveBeforeSharing, s.MaxParallel = []string{"111122223333"}, true, 1
		recordSingleKind(r, workflows.KindAMIShare, s, deny("aws:ec2:CopyImage", 1))
	})
	t.Run(workflows.KindMongoPrimaryMove, func(t *testing.T) {
		r := newRecorder(t)
		recordSingleKind(r, workflows.KindMongoPrimaryMove, *r.moveInput().Spec.Mongo,
			refuse("replSetReconfig", 1)) // the second: the new member was added by the first
	})
	t.Run(workflows.KindRegionMove, func(t *testing.T) {
		recordRegionMove(newRecorder(t))
	})
}

// deny is a permanent AWS error (403) on the call after the first `after` ones, once: the
// run fails there and its undo goes through (e2e/failure_test.go's deny).
func deny(target string, after int) control.Fault {
	return control.Fault{Target: target, Kind: control.KindDenied, Rate: 1, After: after, Count: 1}
}

// refuse is a MongoDB command refused (Unauthorized) after `after` went through, once.
func refuse(command string, after int) control.Fault {
	return control.Fault{Target: "mongo:rs0:*", Kind: control.KindCommandError, Rate: 1, Command: command, After: after, Count: 1}
}

// recordSingleKind records one kind run alone, on the three paths, each run pinned to a
// fresh plan (each path ends where it started, so each plan sees the same state; the
// completed run goes last).
func recordSingleKind(r *recorder, kind string, kindSpec any, fault control.Fault) {
	k := workflows.KindByName(kind)
	common := workflows.Common{Name: kind + " recorded", Reason: "replay history", Initiator: "alice",
		Approvals: workflows.ApprovalPolicy{RequiredApprovers: 1}}

	// A rollback asked for at the approval gate, after the kind changed something. (The DNS
	// shift's plan is plan-dns-shift.json, which TestRecordDNSShiftHistories records.)
	planFile := "plan-" + kind
	if kind == workflows.KindDNSShift {
		planFile = ""
	}
	run := r.start(k, kindSpec, common, planFile)
	id := run.GetID()
	r.gate(id)
	r.act(id, workflows.UpdateRollback, "bob")
	r.end(run, workflows.StateRolledBack)
	r.save(kind+"-rollback-requested", id, run.GetRunID())

	// A permanent error part-way: the run undoes what it changed and ends rolled-back.
	f, err := r.s.Sandbox.Faults().Add(fault)
	require.NoError(r.t, err)
	run = r.start(k, kindSpec, common, "")
	r.approveUntilDone(run, workflows.StateRolledBack)
	_, err = r.s.Sandbox.Faults().Delete(f.ID)
	require.NoError(r.t, err)
	r.save(kind+"-failed-undone", id, run.GetRunID())

	// Forward: the initiator's own approval is refused (a signal, so the refusal is in the
	// audit trail), the run is paused at the gate, approved, holds paused before its next
	// step, is resumed and completes.
	run = r.start(k, kindSpec, common, "")
	r.gate(id)
	r.signalApprove(id, "alice")
	r.act(id, workflows.UpdatePause, "alice")
	r.act(id, workflows.UpdateApprove, "bob")
	r.await(id, "paused before its next step", func(p workflows.Progress) bool { return p.State == workflows.StatePaused })
	r.act(id, workflows.UpdateResume, "alice")
	r.end(run, workflows.StateCompleted)
	r.save(kind+"-pause-resume-completed", id, run.GetRunID())
}

// recorder drives migrations on one stack and saves their histories.
type recorder struct {
	t   *testing.T
	ctx context.Context
	s   *testenv.Stack
	c   client.Client
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	s := testenv.StartStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	return &recorder{t: t, ctx: ctx, s: s, c: s.Client}
}

// moveInput is the marketplace move of e2e/regionmove_test.go on this stack (its members'
// ports and its sandbox's address), with short waits and one new MongoDB member instead of
// three (each member adds reconfigs, and with them history). The single kinds run its
// phases' specs, so every history comes from one validated spec.
func (r *recorder) moveInput() workflows.RegionMoveInput {
	var from, to []string
	for _, m := range r.s.Mongo.Cluster("rs0").Members() {
		if m.Region == "eu-west-1" {
			from = append(from, m.Host)
		} else {
			to = append(to, m.Host)
		}
	}
	doc := fmt.Sprintf(`
name: shop
reason: replay history
approvals: {requiredApprovers: 1}
regionMove:
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  approveBetweenPhases: true
  amiShare:
    sourceRegion: eu-west-1
    imageTags: {app: shop}
    targetRegions: [eu-west-2]
  mongoPrimaryMove:
    uri: mongodb://%s/?replicaSet=rs0
    sourceRegion: eu-west-1
    targetRegion: eu-west-2
    newMembers: [%s]
    maxLag: 1s
    catchUpPeriod: 1s
    takeoverTimeout: 3s
  dnsShift:
    hostedZone: shop.example.
    recordName: www.shop.example.
    from: eu-west-1
    to: eu-west-2
    schedule: [50, 100]
    approveAt: [50]
    bakeTime: 1s
    gateInterval: 1s
    rollbackMode: immediate
    gates:
      - name: eu-west-2 health
        http: {url: %s/_apps/eu-west-2/healthz, timeout: 2s}
`, strings.Join(from, ","), to[0], r.s.Sandbox.Addr())
	m, err := spec.Parse([]byte(doc), ".yaml")
	require.NoError(r.t, err)
	in, err := spec.RegionMoveInput(m, "alice")
	require.NoError(r.t, err)
	in.Spec.AMI.PollInterval = 100 * time.Millisecond // the default 15s suits AWS, not the sandbox
	return in
}

// start plans a run of kind k (saving the plan's history as planFile, when set) and starts
// it pinned to the plan's hash, as `ferry plan` then `ferry start --plan-hash` do: under
// its lock id, with the search attributes StartMigration sets, and waiting for the
// ferry.locks update StartMigration waits for, so the history has the same shape.
func (r *recorder) start(k *workflows.KindDef, kindSpec any, c workflows.Common, planFile string) client.WorkflowRun {
	r.t.Helper()
	in := k.NewInput(kindSpec, c)
	id := k.LockID(in)
	pr, err := r.c.ExecuteWorkflow(r.ctx, client.StartWorkflowOptions{ID: "plan/" + id, TaskQueue: workflows.TaskQueue}, k.PlanName, k.PlanInput(in))
	require.NoError(r.t, err)
	var plan workflows.Plan
	require.NoError(r.t, pr.Get(r.ctx, &plan))
	require.NotEmpty(r.t, plan.Hash)
	if planFile != "" {
		r.saveTree(planFile, pr.GetID(), pr.GetRunID(), every)
	}

	c.PlanHash = plan.Hash
	in = k.NewInput(kindSpec, c)
	source, targets := k.Regions(in)
	run, err := r.c.ExecuteWorkflow(r.ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: workflows.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SAKind.ValueSet(k.Name),
			workflows.SAState.ValueSet(workflows.StateRunning),
			workflows.SAPhase.ValueSet("starting"),
			workflows.SAInitiator.ValueSet(c.Initiator),
			workflows.SASourceRegion.ValueSet(source),
			workflows.SATargetRegions.ValueSet(targets),
			workflows.SAAwaitingApproval.ValueSet(false),
		),
		StaticSummary: k.Summary(in),
	}, k.WorkflowName, in)
	require.NoError(r.t, err)
	h, err := r.c.UpdateWorkflow(r.ctx, client.UpdateWorkflowOptions{WorkflowID: id, RunID: run.GetRunID(),
		UpdateName: workflows.UpdateLocks, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(r.t, err)
	var locks workflows.LockResult
	require.NoError(r.t, h.Get(r.ctx, &locks))
	require.NotEqual(r.t, workflows.LocksRefused, locks.State, "%+v", locks)
	return run
}

// act sends an update (the API's way) as identity and requires it accepted.
func (r *recorder) act(id, update, identity string) {
	r.t.Helper()
	h, err := r.c.UpdateWorkflow(r.ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: update,
		Args: []any{workflows.ActionRequest{Identity: identity, Reason: "recorded"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(r.t, err, "%s %s by %s", id, update, identity)
	require.NoError(r.t, h.Get(r.ctx, nil), "%s %s by %s", id, update, identity)
}

// signalApprove approves by signal, as the Temporal UI does: a refusal is not an error
// then but an entry in the audit trail (and so in the history).
func (r *recorder) signalApprove(id, identity string) {
	r.t.Helper()
	require.NoError(r.t, r.c.SignalWorkflow(r.ctx, id, "", workflows.SignalApprove, workflows.ActionRequest{Identity: identity}))
}

// look is id's progress now (the latest run's); zero while it cannot be queried. It never
// fails the test, so the approver's goroutine may use it.
func (r *recorder) look(id string) workflows.Progress {
	var p workflows.Progress
	if v, err := r.c.QueryWorkflow(r.ctx, id, "", workflows.QueryProgress); err == nil {
		_ = v.Get(&p)
	}
	return p
}

// await polls id's progress until cond holds.
func (r *recorder) await(id, what string, cond func(workflows.Progress) bool) {
	r.t.Helper()
	testenv.Eventually(r.t, 2*time.Minute, id+": "+what, func() bool { return cond(r.look(id)) })
}

// gate waits until a gate is open: id's own, or, for a region move, its running phase's.
// It returns the phase's migration id ("" for id's own gate).
func (r *recorder) gate(id string) string {
	r.t.Helper()
	child := ""
	r.await(id, "an approval gate", func(p workflows.Progress) bool {
		child = ""
		if p.PendingApproval != nil {
			return true
		}
		for _, ph := range p.Phases {
			if ph.State == workflows.PhaseRunning && r.look(ph.MigrationID).PendingApproval != nil {
				child = ph.MigrationID
				return true
			}
		}
		return false
	})
	return child
}

// approveUntilDone approves every gate as it opens until run ends (a region move's own
// gates by bob, its phases' through it by carol, as the e2e approver does), and requires
// it to end in state.
func (r *recorder) approveUntilDone(run client.WorkflowRun, state string) {
	r.t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r.ctx.Err() == nil {
			if d, err := r.c.DescribeWorkflowExecution(r.ctx, run.GetID(), run.GetRunID()); err == nil &&
				d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				return
			}
			p := r.look(run.GetID())
			who := ""
			if p.PendingApproval != nil {
				who = "bob"
			}
			for _, ph := range p.Phases {
				if ph.State == workflows.PhaseRunning && r.look(ph.MigrationID).PendingApproval != nil {
					who = "carol"
				}
			}
			if who != "" {
				// Refused when the gate closed meanwhile (or a forwarded one is still on
				// its way): the next look decides again.
				if h, err := r.c.UpdateWorkflow(r.ctx, client.UpdateWorkflowOptions{WorkflowID: run.GetID(), UpdateName: workflows.UpdateApprove,
					Args: []any{workflows.ActionRequest{Identity: who, Reason: "recorded"}}, WaitForStage: client.WorkflowUpdateStageCompleted}); err == nil {
					_ = h.Get(r.ctx, nil)
				}
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	r.end(run, state)
	<-done
}

// end waits for run and requires it to end in state: a run that fails carries its result
// in the failure's details.
func (r *recorder) end(run client.WorkflowRun, state string) {
	r.t.Helper()
	var o workflows.Outcome
	err := run.Get(r.ctx, &o)
	var ae *temporal.ApplicationError
	if err != nil && errors.As(err, &ae) && ae.HasDetails() {
		_ = ae.Details(&o)
	}
	require.Equal(r.t, state, o.State, "%s: %s (%v)", run.GetID(), o.Message, err)
	r.t.Logf("%s: %s", run.GetID(), o.Message)
}

// save writes one run's history to testdata/<file>.json.gz: compact JSON, as `temporal
// workflow show --output json` writes it but without the indentation and with the
// workflow id and run id beside the events, gzipped. The paths
// of four kinds and a region move's children come to over a megabyte of JSON (payloads
// are base64) and about a ninth of that gzipped; TestReplayHistories reads both forms, and
// `gunzip -k` gives the file the temporal CLI and ReplayWorkflowHistoryFromJSONFile read.
func (r *recorder) save(file, id, runID string) {
	r.t.Helper()
	// Closed first: a lock child ends only once the server applies its holder's
	// parent-close policy, a moment after the holder ended.
	testenv.Eventually(r.t, time.Minute, id+" closed", func() bool {
		d, err := r.c.DescribeWorkflowExecution(r.ctx, id, runID)
		return err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	})
	testenv.SaveHistory(r.t, r.c, id, runID, filepath.Join("testdata", file+".json.gz"))
}

// saveTree saves a run as base and every child it started for which keep says so as
// base.NN-<type>, NN counting its children in the order it started them
// (recursively: a composite's phases may have children too).
func (r *recorder) saveTree(base, id, runID string, keep func(childType string) bool) {
	r.t.Helper()
	r.save(base, id, runID)
	it := r.c.GetWorkflowHistory(r.ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(r.t, err)
		a := ev.GetChildWorkflowExecutionStartedEventAttributes()
		if a == nil {
			continue
		}
		n++
		if typ := a.GetWorkflowType().GetName(); keep(typ) {
			r.saveTree(fmt.Sprintf("%s.%02d-%s", base, n, typ), a.GetWorkflowExecution().GetWorkflowId(), a.GetWorkflowExecution().GetRunId(), keep)
		}
	}
}

// every keeps every child; phasesOnly keeps a run's phases and undo runs, not the
// read-only plans (recorded with the plan) nor the lock children (all alike: one run's
// are enough).
func every(string) bool { return true }

func phasesOnly(typ string) bool {
	if typ == workflows.LockWorkflowName {
		return false
	}
	for _, k := range workflows.Kinds() {
		if typ == k.PlanName {
			return false
		}
	}
	return true
}
