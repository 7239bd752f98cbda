package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// rmHarness runs RegionMove with every child mocked: each mock records what ran, when
// (workflow time) and with which input, and keeps a small model of the world (where the
// primary is, which images exist) so the parent's gates and undo steps read it back.
type rmHarness struct {
	t     *testing.T
	env   *testsuite.TestWorkflowEnvironment
	start time.Time

	mu            sync.Mutex
	events        []string
	at            map[string]time.Time
	primary       string // region of the primary
	sourcePrimary string // the primary while it is in eu-west-1
	deleted       []string

	// Behaviours of the forward children; nil completes after childTime.
	ami   func(ctx workflow.Context, in AMIShareInput) (AMIShareResult, error)
	mongo func(ctx workflow.Context, in MongoPrimaryMoveInput) (MongoPrimaryMoveResult, error)
	dns   func(ctx workflow.Context, in DNSShiftInput) (DNSShiftResult, error)
	// reverseMongoFails makes moving the primary back fail.
	reverseMongoFails bool
	inputs            map[string]any
}

const childTime = time.Minute

func newRMHarness(t *testing.T) *rmHarness {
	var s testsuite.WorkflowTestSuite
	h := &rmHarness{t: t, env: s.NewTestWorkflowEnvironment(), at: map[string]time.Time{}, primary: "eu-west-1", sourcePrimary: "127.0.0.1:27017", inputs: map[string]any{}}
	env := h.env
	env.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: 30 * time.Second})
	h.start = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	env.SetStartTime(h.start)
	env.RegisterWorkflow(RegionMove)
	env.RegisterWorkflow(PlanRegionMove)
	RegisterLock(env)
	for _, wf := range []any{AMIShare, PlanAMIShare, MongoPrimaryMove, PlanMongoPrimaryMove, DNSShift, PlanDNSShift} {
		env.RegisterWorkflow(wf)
	}
	env.RegisterActivity(&activities.EC2{})
	env.RegisterActivity(&activities.Mongo{})

	env.OnWorkflow(PlanAMIShare, mock.Anything, mock.Anything).Return(func(ctx workflow.Context, in PlanAMIShareInput) (Plan, error) {
		return Plan{Kind: KindAMIShare, Steps: []PlannedStep{{Name: "copy ami-1 to eu-west-2"}}, Observations: []string{"2 images"}, Hash: "h-ami"}, nil
	})
	env.OnWorkflow(PlanMongoPrimaryMove, mock.Anything, mock.Anything).Return(func(ctx workflow.Context, in PlanMongoPrimaryMoveInput) (Plan, error) {
		return Plan{Kind: KindMongoPrimaryMove, Steps: []PlannedStep{{Name: "add 127.0.0.1:27020"}, {Name: "approve primary move", NeedsApproval: true}}, Hash: "h-mongo"}, nil
	})
	env.OnWorkflow(PlanDNSShift, mock.Anything, mock.Anything).Return(func(ctx workflow.Context, in PlanDNSShiftInput) (Plan, error) {
		return Plan{Kind: KindDNSShift, Steps: []PlannedStep{{Name: "shift to 10%"}, {Name: "shift to 100%"}}, Hash: "h-dns"}, nil
	})
	// Forward children report what they changed, as the real kinds do; undo children
	// (Common.Undo set) model the kind's undo from that record.
	env.OnWorkflow(AMIShare, mock.Anything, mock.Anything).Return(func(ctx workflow.Context, in AMIShareInput) (AMIShareResult, error) {
		if in.Undo != nil {
			rec, err := decodeRecord[amiUndoRecord](in.Undo)
			require.NoError(t, err)
			h.mu.Lock()
			h.inputs["ami-undo"] = in
			for _, c := range rec.Created {
				h.events = append(h.events, "delete "+c.Region+"/"+c.ImageID)
				h.deleted = append(h.deleted, in.Undo.ID+":"+c.ImageID)
			}
			h.mu.Unlock()
			return AMIShareResult{Outcome: Outcome{State: StateRolledBack, Message: "removed"}}, nil
		}
		h.record(ctx, "ami", in)
		if h.ami != nil {
			return h.ami(ctx, in)
		}
		_ = workflow.Sleep(ctx, childTime)
		return AMIShareResult{Outcome: Outcome{State: StateCompleted, Changes: amiChanges(ctx, in.Spec)}, Copies: []AMICopyProgress{
			{SourceImageID: "ami-src1", Region: "eu-west-2", ImageID: "ami-copy1", State: AMICopyAvailable},
			{SourceImageID: "ami-src2", Region: "eu-west-2", ImageID: "ami-copy2", State: AMICopyShared},
		}}, nil
	})
	env.OnWorkflow(MongoPrimaryMove, mock.Anything, mock.Anything).Return(func(ctx workflow.Context, in MongoPrimaryMoveInput) (MongoPrimaryMoveResult, error) {
		if in.Undo != nil {
			h.record(ctx, "mongo-reverse", in)
			_ = workflow.Sleep(ctx, childTime)
			if h.reverseMongoFails {
				res := MongoPrimaryMoveResult{Outcome: Outcome{State: StateFailed, Changes: *in.Undo}}
				return res, temporal.NewNonRetryableApplicationError("reconfig refused", ErrMigrationFailed, nil, res)
			}
			h.setPrimary("eu-west-1")
			return MongoPrimaryMoveResult{Outcome: Outcome{State: StateRolledBack}, Primary: "127.0.0.1:27017"}, nil
		}
		h.record(ctx, "mongo", in)
		if h.mongo != nil {
			return h.mongo(ctx, in)
		}
		_ = workflow.Sleep(ctx, childTime)
		h.setPrimary("eu-west-2")
		return MongoPrimaryMoveResult{Outcome: Outcome{State: StateCompleted, Changes: h.mongoChanges(ctx, in.Spec)}, Primary: "127.0.0.1:27020"}, nil
	})
	env.OnWorkflow(DNSShift, mock.Anything, mock.Anything).Return(func(ctx workflow.Context, in DNSShiftInput) (DNSShiftResult, error) {
		if in.Undo != nil {
			h.record(ctx, "dns-reverse", in)
			_ = workflow.Sleep(ctx, childTime)
			return DNSShiftResult{Outcome: Outcome{State: StateRolledBack}, FromWeight: 100, ToWeight: 0}, nil
		}
		h.record(ctx, "dns", in)
		if h.dns != nil {
			return h.dns(ctx, in)
		}
		_ = workflow.Sleep(ctx, childTime)
		return DNSShiftResult{Outcome: Outcome{State: StateCompleted, Changes: dnsChanges(ctx, in.Spec, 0, 100)}, FromWeight: 0, ToWeight: 100}, nil
	})
	env.OnActivity(mongoActs.ReadReplicaSet, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.MongoReadInput) (activities.MongoReadOutput, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			var ms []activities.MongoMember
			for i := range 6 {
				region := "eu-west-1"
				if i >= 3 {
					region = "eu-west-2"
				}
				ms = append(ms, activities.MongoMember{ID: i, Host: fmt.Sprintf("127.0.0.1:%d", 27017+i), Votes: 1, Priority: 1,
					Tags: map[string]string{"region": region}, BuildIndexes: true})
			}
			primary := h.sourcePrimary
			if h.primary == "eu-west-2" {
				primary = "127.0.0.1:27020"
			}
			return activities.MongoReadOutput{Config: activities.MongoConfig{SetName: "rs0", Members: ms}, Primary: primary}, nil
		})
	return h
}

// amiChanges, mongoChanges and dnsChanges are the change reports the real kinds make.
func amiChanges(ctx workflow.Context, spec AMIShareSpec) Changes {
	created := []createdImage{{Region: "eu-west-2", ImageID: "ami-copy1"}, {Region: "eu-west-2", ImageID: "ami-copy2"}}
	return newChanges(ownerOf(ctx, nil), KindAMIShare, "2 image(s)", amiUndoRecord{Spec: spec, Created: created})
}

func (h *rmHarness) mongoChanges(ctx workflow.Context, spec MongoMoveSpec) Changes {
	return newChanges(ownerOf(ctx, nil), KindMongoPrimaryMove, "primary moved", mongoUndoRecord{Spec: spec, Primary: h.sourcePrimary})
}

func dnsChanges(ctx workflow.Context, spec DNSShiftSpec, from, to int) Changes {
	return newChanges(ownerOf(ctx, nil), KindDNSShift, fmt.Sprintf("weights %d/%d", from, to),
		dnsUndoRecord{Spec: spec, OriginalFrom: 100, Applied: []dnsWeights{{From: from, To: to}}})
}

func (h *rmHarness) record(ctx workflow.Context, name string, in any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, name)
	h.at[name] = workflow.Now(ctx)
	h.inputs[name] = in
	h.inputs[name+" id"] = workflow.GetInfo(ctx).WorkflowExecution.ID
}

func (h *rmHarness) setPrimary(region string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.primary = region
}

func (h *rmHarness) run(in RegionMoveInput) (RegionMoveResult, error) {
	h.env.ExecuteWorkflow(RegionMove, in)
	require.True(h.t, h.env.IsWorkflowCompleted())
	var res RegionMoveResult
	err := h.env.GetWorkflowError()
	if err == nil {
		require.NoError(h.t, h.env.GetWorkflowResult(&res))
	}
	return res, err
}

func (h *rmHarness) progress() Progress {
	v, err := h.env.QueryWorkflow(QueryProgress)
	require.NoError(h.t, err)
	var p Progress
	require.NoError(h.t, v.Get(&p))
	return p
}

// rmUpdate is an update's outcome, readable once the workflow ran on.
type rmUpdate struct {
	accepted bool
	rejected error
	result   ActionResult
}

func (h *rmHarness) update(name, identity string) *rmUpdate {
	o := &rmUpdate{}
	h.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnReject: func(err error) { o.rejected = err },
		OnAccept: func() { o.accepted = true },
		OnComplete: func(v any, err error) {
			if r, ok := v.(ActionResult); ok {
				o.result = r
			}
		},
	}, ActionRequest{Identity: identity, Reason: "test"})
	return o
}

func (h *rmHarness) after(d time.Duration, f func()) { h.env.RegisterDelayedCallback(f, d) }

func rmSpec() RegionMoveSpec {
	return RegionMoveSpec{
		SourceRegion: "eu-west-1", TargetRegion: "eu-west-2",
		AMI: &AMIShareSpec{SourceRegion: "eu-west-1", ImageTags: map[string]string{"app": "shop"},
			TargetRegions: []string{"eu-west-2"}, MaxParallel: 2},
		Mongo: &MongoMoveSpec{URI: "mongodb://127.0.0.1:27017,127.0.0.1:27018,127.0.0.1:27019/?replicaSet=rs0", ReplicaSet: "rs0",
			RegionTag: "region", SourceRegion: "eu-west-1", TargetRegion: "eu-west-2",
			NewMembers: []string{"127.0.0.1:27020", "127.0.0.1:27021", "127.0.0.1:27022"},
			Priorities: MongoPriorities{TargetFirst: 2, TargetRest: 1, SourceFirst: 0.5}},
		DNS: &DNSShiftSpec{Zone: "shop.example.", RecordName: "www.shop.example.", RecordType: "A", From: "eu-west-1", To: "eu-west-2",
			Percents: []int{10, 50, 100}, ApproveAfter: []bool{false, false, false}, TotalWeight: 100, BakeTime: time.Minute,
			RollbackMode: RollbackImmediate, OnGateFailure: OnGateFailRollback},
	}
}

func rmInput(spec RegionMoveSpec) RegionMoveInput {
	return RegionMoveInput{Spec: spec, Common: Common{Name: "shop", Reason: "leave eu-west-1", Initiator: "alice", Approvals: ApprovalPolicy{RequiredApprovers: 1}}}
}

func (h *rmHarness) eventsOf() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}

func phaseStates(ps []PhaseProgress) map[string]string {
	m := map[string]string{}
	for _, p := range ps {
		m[p.Name] = p.State
	}
	return m
}

func TestRegionMovePhasesRunInOrder(t *testing.T) {
	h := newRMHarness(t)
	in := rmInput(rmSpec())
	in.Approvals = ApprovalPolicy{RequiredApprovers: 2}
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State, res.Message)
	require.Equal(t, []string{"ami", "mongo", "dns"}, h.eventsOf())
	require.Equal(t, map[string]string{PhaseAMIShare: PhaseCompleted, PhaseMongoPrimaryMove: PhaseCompleted, PhaseDNSShift: PhaseCompleted}, phaseStates(res.Phases))
	// Children hold the resource locks of the single migrations and inherit who and how.
	require.Equal(t, "ami/eu-west-1/tags:app=shop", h.inputs["ami id"])
	require.Equal(t, "mongo/rs0@127.0.0.1:27017", h.inputs["mongo id"])
	require.Equal(t, "dns/shop.example/www.shop.example/A", h.inputs["dns id"])
	dns := h.inputs["dns"].(DNSShiftInput)
	require.Equal(t, "alice", dns.Initiator)
	require.Equal(t, 2, dns.Approvals.RequiredApprovers)
	require.Empty(t, dns.PlanHash, "children are pinned only when the move is")
	require.True(t, !h.at["dns"].Before(h.at["mongo"].Add(childTime)), "DNS starts after the primary moved")
	p := h.progress()
	require.Equal(t, KindRegionMove, p.Kind)
	require.Len(t, p.Phases, 3)
}

func TestRegionMoveApprovalsBetweenPhasesFourEyes(t *testing.T) {
	h := newRMHarness(t)
	spec := rmSpec()
	spec.ApproveBetweenPhases = true
	var self, first, second *rmUpdate
	var pending *PendingApproval
	// AMI runs 0..1m; the parent then waits for approval of the MongoDB phase.
	h.after(10*time.Minute, func() {
		p := h.progress()
		require.Equal(t, StateAwaitingApproval, p.State)
		pending = p.PendingApproval
		require.Equal(t, []string{"ami"}, h.eventsOf(), "nothing runs before the approval")
		self = h.update(UpdateApprove, "alice")
		first = h.update(UpdateApprove, "bob")
	})
	h.after(30*time.Minute, func() {
		require.Equal(t, []string{"ami", "mongo"}, h.eventsOf())
		second = h.update(UpdateApprove, "carol")
	})
	res, err := h.run(rmInput(spec))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State, res.Message)
	require.NotNil(t, pending)
	require.Equal(t, "approve "+PhaseMongoPrimaryMove, pending.Step)
	require.False(t, self.accepted)
	require.ErrorContains(t, self.rejected, "four-eyes")
	require.True(t, first.accepted, "%v", first.rejected)
	require.True(t, second.accepted, "%v", second.rejected)
	require.Equal(t, h.start.Add(10*time.Minute), h.at["mongo"])
	require.Equal(t, h.start.Add(30*time.Minute), h.at["dns"])
}

// A rollback while the parent waits between phases undoes what completed: the copies.
func TestRegionMoveRollbackAfterAMI(t *testing.T) {
	h := newRMHarness(t)
	spec := rmSpec()
	spec.ApproveBetweenPhases = true
	h.after(10*time.Minute, func() { h.update(UpdateRollback, "bob") })
	res, err := h.run(rmInput(spec))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State, res.Message)
	require.Equal(t, []string{"ami", "delete eu-west-2/ami-copy1", "delete eu-west-2/ami-copy2"}, h.eventsOf())
	require.Equal(t, []string{"ami/eu-west-1/tags:app=shop:ami-copy1", "ami/eu-west-1/tags:app=shop:ami-copy2"}, h.deleted,
		"the copies are deleted under the AMI child's migration tag")
	require.Equal(t, map[string]string{PhaseAMIShare: PhaseRolledBack, PhaseMongoPrimaryMove: PhaseSkipped, PhaseDNSShift: PhaseSkipped}, phaseStates(res.Phases))
}

func TestRegionMoveRollbackAfterMongo(t *testing.T) {
	h := newRMHarness(t)
	h.sourcePrimary = "127.0.0.1:27018"
	spec := rmSpec()
	spec.ApproveBetweenPhases = true
	h.after(10*time.Minute, func() { h.update(UpdateApprove, "bob") })
	h.after(30*time.Minute, func() { h.update(UpdateRollback, "bob") })
	in := rmInput(spec)
	in.Budgets = &Budgets{StepAttempt: 7 * time.Second, UndoAttempt: 5 * time.Second}
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State, res.Message)
	require.Equal(t, []string{"ami", "mongo", "mongo-reverse", "delete eu-west-2/ami-copy1", "delete eu-west-2/ami-copy2"}, h.eventsOf())
	rev := h.inputs["mongo-reverse"].(MongoPrimaryMoveInput)
	require.NotNil(t, rev.Undo, "a completed MongoDB phase is undone by the kind's undo of its own record")
	rec, err := decodeRecord[mongoUndoRecord](rev.Undo)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:27018", rec.Primary, "the record the phase made is handed to the undo whole")
	require.Equal(t, "mongo/rs0@127.0.0.1:27017", h.inputs["mongo-reverse id"], "the undo holds the phase's lock")
	require.Equal(t, OnFailureLeave, h.inputs["mongo"].(MongoPrimaryMoveInput).OnFailure, "phases leave their changes to the move's unwinding")
	require.Equal(t, in.Budgets, h.inputs["mongo"].(MongoPrimaryMoveInput).Budgets, "phases retry and hold on the move's budgets")
	require.Equal(t, in.Budgets, rev.Budgets, "so do their undos")
}

// A rollback asked while the DNS child runs goes to the child first (it undoes its own
// partial shift); then the parent unwinds the primary and the copies.
func TestRegionMoveRollbackDuringDNSIsForwarded(t *testing.T) {
	h := newRMHarness(t)
	var got ActionRequest
	h.dns = func(ctx workflow.Context, in DNSShiftInput) (DNSShiftResult, error) {
		workflow.GetSignalChannel(ctx, SignalRollback).Receive(ctx, &got)
		return DNSShiftResult{Outcome: Outcome{State: StateRolledBack, Message: "rolled back to eu-west-1=100 eu-west-2=0"}, FromWeight: 100}, nil
	}
	var rb *rmUpdate
	h.after(2*childTime+30*time.Second, func() { rb = h.update(UpdateRollback, "bob") })
	res, err := h.run(rmInput(rmSpec()))
	require.NoError(t, err)
	require.True(t, rb.accepted, "%v", rb.rejected)
	require.Equal(t, "bob", got.Identity, "the child sees who asked")
	require.Equal(t, StateRolledBack, res.State, res.Message)
	require.Equal(t, []string{"ami", "mongo", "dns", "mongo-reverse", "delete eu-west-2/ami-copy1", "delete eu-west-2/ami-copy2"}, h.eventsOf())
	require.Equal(t, PhaseRolledBack, phaseStates(res.Phases)[PhaseDNSShift])
}

// A DNS child that rolls itself back (a gate failed) unwinds the earlier phases.
func TestRegionMoveChildRolledBackUnwinds(t *testing.T) {
	h := newRMHarness(t)
	h.dns = func(ctx workflow.Context, in DNSShiftInput) (DNSShiftResult, error) {
		_ = workflow.Sleep(ctx, childTime)
		return DNSShiftResult{Outcome: Outcome{State: StateRolledBack, Message: "gate failed: app eu-west-2 unhealthy"}, FromWeight: 100}, nil
	}
	res, err := h.run(rmInput(rmSpec()))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	require.Contains(t, res.Message, "phase dns-shift rolled back")
	require.Equal(t, []string{"ami", "mongo", "dns", "mongo-reverse", "delete eu-west-2/ami-copy1", "delete eu-west-2/ami-copy2"}, h.eventsOf())
}

// A DNS phase that completed anyway (the rollback reached it as it finished) is undone
// too, first: traffic back, then the primary, then the copies.
func TestRegionMoveUnwindsAllThreeInReverse(t *testing.T) {
	h := newRMHarness(t)
	h.dns = func(ctx workflow.Context, in DNSShiftInput) (DNSShiftResult, error) {
		var req ActionRequest
		workflow.GetSignalChannel(ctx, SignalRollback).Receive(ctx, &req)
		return DNSShiftResult{Outcome: Outcome{State: StateCompleted, Changes: dnsChanges(ctx, in.Spec, 0, 100)}, FromWeight: 0, ToWeight: 100}, nil
	}
	h.after(2*childTime+30*time.Second, func() { h.update(UpdateRollback, "bob") })
	res, err := h.run(rmInput(rmSpec()))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State, res.Message)
	require.Equal(t, []string{"ami", "mongo", "dns", "dns-reverse", "mongo-reverse", "delete eu-west-2/ami-copy1", "delete eu-west-2/ami-copy2"}, h.eventsOf())
	rev := h.inputs["dns-reverse"].(DNSShiftInput)
	require.NotNil(t, rev.Undo)
	rec, err := decodeRecord[dnsUndoRecord](rev.Undo)
	require.NoError(t, err)
	require.Equal(t, []dnsWeights{{From: 0, To: 100}}, rec.Applied, "the undo gets the batches the phase applied")
	require.Equal(t, 100, rec.OriginalFrom)
	require.Equal(t, "dns/shop.example/www.shop.example/A", h.inputs["dns-reverse id"])
}

// A MongoDB child that fails part-way reports what it changed; the move undoes it (the
// failed phase included), then the copies.
func TestRegionMoveFailedPhaseIsUndoneToo(t *testing.T) {
	h := newRMHarness(t)
	h.mongo = func(ctx workflow.Context, in MongoPrimaryMoveInput) (MongoPrimaryMoveResult, error) {
		h.setPrimary("eu-west-2")
		res := MongoPrimaryMoveResult{Outcome: Outcome{State: StateFailed, Changes: h.mongoChanges(ctx, in.Spec)}}
		return res, temporal.NewNonRetryableApplicationError("failed: primary not verified", ErrMigrationFailed,
			temporal.NewNonRetryableApplicationError("primary not in eu-west-2", ErrMongoVerifyFailed, nil), res)
	}
	res, err := h.run(rmInput(rmSpec()))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State, res.Message)
	require.Equal(t, []string{"ami", "mongo", "mongo-reverse", "delete eu-west-2/ami-copy1", "delete eu-west-2/ami-copy2"}, h.eventsOf())
	require.Equal(t, map[string]string{PhaseAMIShare: PhaseRolledBack, PhaseMongoPrimaryMove: PhaseRolledBack, PhaseDNSShift: PhaseSkipped}, phaseStates(res.Phases))
	require.True(t, res.Changes.None(), "nothing is left in effect: %s", res.Changes.InEffect)
}

// A failed phase that changed nothing needs no undo; the earlier phases are still undone.
func TestRegionMoveFailedPhaseWithNoChanges(t *testing.T) {
	h := newRMHarness(t)
	h.mongo = func(ctx workflow.Context, in MongoPrimaryMoveInput) (MongoPrimaryMoveResult, error) {
		res := MongoPrimaryMoveResult{Outcome: Outcome{State: StateFailed}}
		return res, temporal.NewNonRetryableApplicationError("failed: set unreachable", ErrMigrationFailed, nil, res)
	}
	res, err := h.run(rmInput(rmSpec()))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State, res.Message)
	require.Equal(t, []string{"ami", "mongo", "delete eu-west-2/ami-copy1", "delete eu-west-2/ami-copy2"}, h.eventsOf())
}

// A child that ends without a change report (terminated, timed out) cannot be undone
// blindly: the move ends failed and says so, after undoing what it can reach first.
func TestRegionMoveFailedPhaseWithoutReport(t *testing.T) {
	h := newRMHarness(t)
	h.mongo = func(ctx workflow.Context, in MongoPrimaryMoveInput) (MongoPrimaryMoveResult, error) {
		return MongoPrimaryMoveResult{}, temporal.NewNonRetryableApplicationError("worker lost", "Crash", nil)
	}
	_, err := h.run(rmInput(rmSpec()))
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "%v", err)
	require.Equal(t, ErrMigrationFailed, ae.Type())
	require.Contains(t, ae.Error(), "mongo-primary-move: unknown: mongo/rs0@127.0.0.1:27017 ended without a change report")
	require.Contains(t, ae.Error(), "ami-share: 2 image(s)")
	require.Equal(t, []string{"ami", "mongo"}, h.eventsOf(), "the unwinding stops at the phase it cannot undo")
}

// The unwinding stops at the first phase it cannot undo and says what is still in effect.
func TestRegionMoveUnwindStopsAtFirstFailure(t *testing.T) {
	h := newRMHarness(t)
	h.reverseMongoFails = true
	h.dns = func(ctx workflow.Context, in DNSShiftInput) (DNSShiftResult, error) {
		return DNSShiftResult{Outcome: Outcome{State: StateRolledBack, Message: "gate failed"}}, nil
	}
	_, err := h.run(rmInput(rmSpec()))
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "%v", err)
	require.Equal(t, ErrMigrationFailed, ae.Type())
	require.Contains(t, ae.Error(), "undo of phase mongo-primary-move stopped: reconfig refused")
	require.Contains(t, ae.Error(), "still in effect: ami-share: 2 image(s); mongo-primary-move: primary moved")
	require.Equal(t, 1, strings.Count(ae.Message(), "reconfig refused"), "the cause is told once: %s", ae.Message())
	require.Equal(t, []string{"ami", "mongo", "dns", "mongo-reverse"}, h.eventsOf(), "the copies stay: the primary is still using the new region")
}

// The DNS phase waits for the primary: a primary that moved back (an election) since the
// MongoDB phase stops the move before any traffic shifts.
func TestRegionMoveDNSGateNeedsPrimaryInTarget(t *testing.T) {
	h := newRMHarness(t)
	h.mongo = func(ctx workflow.Context, in MongoPrimaryMoveInput) (MongoPrimaryMoveResult, error) {
		return MongoPrimaryMoveResult{Outcome: Outcome{State: StateCompleted, Changes: h.mongoChanges(ctx, in.Spec)}, Primary: "127.0.0.1:27017"}, nil // but the set says eu-west-1
	}
	res, err := h.run(rmInput(rmSpec()))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	require.NotContains(t, h.eventsOf(), "dns")
	require.Equal(t, []string{"ami", "mongo", "mongo-reverse", "delete eu-west-2/ami-copy1", "delete eu-west-2/ami-copy2"}, h.eventsOf())
	require.Contains(t, res.Message, "not in eu-west-2")
}

// Approve, pause and resume sent to the parent while a child runs reach the child with
// the sender's identity; the initiator is refused by the parent at once (four-eyes).
func TestRegionMoveForwardsSteeringToRunningChild(t *testing.T) {
	h := newRMHarness(t)
	var got []string
	h.mongo = func(ctx workflow.Context, in MongoPrimaryMoveInput) (MongoPrimaryMoveResult, error) {
		sel := workflow.NewSelector(ctx)
		for _, name := range []string{SignalPause, SignalResume, SignalApprove} {
			ch := workflow.GetSignalChannel(ctx, name)
			sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
				var req ActionRequest
				c.Receive(ctx, &req)
				got = append(got, name+" "+req.Identity)
			})
		}
		for !strings.HasPrefix(strings.Join(got, ","), "pause") || len(got) < 3 {
			sel.Select(ctx)
		}
		h.setPrimary("eu-west-2")
		return MongoPrimaryMoveResult{Outcome: Outcome{State: StateCompleted}}, nil
	}
	var self, approve, pause, resume *rmUpdate
	h.after(2*childTime, func() {
		self = h.update(UpdateApprove, "alice")
		pause = h.update(UpdatePause, "carol")
	})
	h.after(3*childTime, func() {
		require.Equal(t, StatePaused, h.progress().State)
		resume = h.update(UpdateResume, "carol")
	})
	h.after(4*childTime, func() { approve = h.update(UpdateApprove, "bob") })
	res, err := h.run(rmInput(rmSpec()))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State, res.Message)
	require.ErrorContains(t, self.rejected, "four-eyes")
	for _, u := range []*rmUpdate{approve, pause, resume} {
		require.True(t, u.accepted, "%v", u.rejected)
	}
	require.Contains(t, approve.result.Message, "forwarded approve to phase mongo-primary-move")
	require.Equal(t, []string{"pause carol", "resume carol", "approve bob"}, got)
}

// The MongoDB and DNS phases begin only inside the maintenance window.
func TestRegionMoveWaitsForMaintenanceWindow(t *testing.T) {
	h := newRMHarness(t)
	spec := rmSpec()
	// 22:00-04:00 London; the move starts at 09:00 UTC (09:00 GMT) on 10 March.
	spec.Window = &MaintenanceWindow{Start: "22:00", End: "04:00", Zone: "Europe/London"}
	var msg string
	h.after(2*time.Hour, func() { msg = h.progress().Message })
	res, err := h.run(rmInput(spec))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State, res.Message)
	require.Contains(t, msg, "waiting for maintenance window (opens at 2026-03-10 22:00 GMT)")
	opens := time.Date(2026, 3, 10, 22, 0, 0, 0, time.UTC)
	require.Equal(t, h.start, h.at["ami"], "copies may start any time")
	require.Equal(t, opens, h.at["mongo"])
	require.Equal(t, opens.Add(childTime), h.at["dns"], "still inside the window: no second wait")
}

func TestRegionMovePlanCombinesChildren(t *testing.T) {
	h := newRMHarness(t)
	spec := rmSpec()
	spec.ApproveBetweenPhases = true
	h.env.ExecuteWorkflow(PlanRegionMove, PlanRegionMoveInput{Spec: spec, Name: "shop"})
	require.NoError(t, h.env.GetWorkflowError())
	var p Plan
	require.NoError(t, h.env.GetWorkflowResult(&p))
	var names []string
	for _, st := range p.Steps {
		names = append(names, st.Name)
	}
	require.Equal(t, []string{
		"ami-share: copy ami-1 to eu-west-2",
		"approve mongo-primary-move", "mongo-primary-move: add 127.0.0.1:27020", "mongo-primary-move: approve primary move",
		"approve dns-shift", "gate dns-shift", "dns-shift: shift to 10%", "dns-shift: shift to 100%",
	}, names)
	require.Equal(t, "region/shop/eu-west-1/eu-west-2", p.ID)
	require.Equal(t, RegionMovePlanHash(spec, []string{"ami-share=h-ami", "mongo-primary-move=h-mongo", "dns-shift=h-dns"}), p.Hash)
	require.Empty(t, h.eventsOf(), "planning changes nothing")
	spec.ApproveBetweenPhases = false
	require.NotEqual(t, p.Hash, RegionMovePlanHash(spec, []string{"ami-share=h-ami", "mongo-primary-move=h-mongo", "dns-shift=h-dns"}))
}

func TestRegionMovePlanDriftRefuses(t *testing.T) {
	h := newRMHarness(t)
	in := rmInput(rmSpec())
	in.PlanHash = "0123456789abcdef"
	_, err := h.run(in)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "%v", err)
	require.True(t, HasErrorType(err, ErrPlanDrifted), "%v", err)
	require.True(t, ae.NonRetryable())
	require.Empty(t, h.eventsOf())
	// A move that ends before a phase starts shows that phase as skipped, not still to come.
	require.Equal(t, map[string]string{PhaseAMIShare: PhaseSkipped, PhaseMongoPrimaryMove: PhaseSkipped, PhaseDNSShift: PhaseSkipped},
		phaseStates(h.progress().Phases))
}

func TestRegionMovePinnedPlanPinsChildren(t *testing.T) {
	h := newRMHarness(t)
	in := rmInput(rmSpec())
	in.PlanHash = RegionMovePlanHash(in.Spec, []string{"ami-share=h-ami", "mongo-primary-move=h-mongo", "dns-shift=h-dns"})
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
	require.Equal(t, "h-ami", h.inputs["ami"].(AMIShareInput).PlanHash)
	require.Equal(t, "h-mongo", h.inputs["mongo"].(MongoPrimaryMoveInput).PlanHash)
	require.Equal(t, "h-dns", h.inputs["dns"].(DNSShiftInput).PlanHash)
}

func TestWindowAt(t *testing.T) {
	london := MaintenanceWindow{Start: "22:00", End: "04:00", Zone: "Europe/London"}
	utc := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return tm
	}
	cases := []struct {
		name   string
		mw     MaintenanceWindow
		now    string
		inside bool
		opens  string
		closes string
	}{
		{"before, same day", london, "2026-01-15T12:00:00Z", false, "2026-01-15T22:00:00Z", "2026-01-16T04:00:00Z"},
		{"inside before midnight", london, "2026-01-15T23:30:00Z", true, "2026-01-15T22:00:00Z", "2026-01-16T04:00:00Z"},
		{"inside after midnight", london, "2026-01-16T01:00:00Z", true, "2026-01-15T22:00:00Z", "2026-01-16T04:00:00Z"},
		{"at the start", london, "2026-01-15T22:00:00Z", true, "2026-01-15T22:00:00Z", "2026-01-16T04:00:00Z"},
		{"at the end", london, "2026-01-16T04:00:00Z", false, "2026-01-16T22:00:00Z", "2026-01-17T04:00:00Z"},
		// Summer: London is UTC+1, so 22:00 local is 21:00 UTC.
		{"summer time", london, "2026-07-01T12:00:00Z", false, "2026-07-01T21:00:00Z", "2026-07-02T03:00:00Z"},
		// Clocks go forward at 01:00 UTC on 29 March 2026: the night's window is 5 hours.
		{"spring forward night", london, "2026-03-28T23:00:00Z", true, "2026-03-28T22:00:00Z", "2026-03-29T03:00:00Z"},
		{"after spring-forward end", london, "2026-03-29T03:30:00Z", false, "2026-03-29T21:00:00Z", "2026-03-30T03:00:00Z"},
		// Clocks go back at 01:00 UTC on 25 October 2026: the night's window is 7 hours.
		{"fall back night", london, "2026-10-25T03:30:00Z", true, "2026-10-24T21:00:00Z", "2026-10-25T04:00:00Z"},
		{"same-day window in New York", MaintenanceWindow{Start: "09:30", End: "11:00", Zone: "America/New_York"}, "2026-03-08T13:00:00Z", false, "2026-03-08T13:30:00Z", "2026-03-08T15:00:00Z"},
		{"default zone UTC", MaintenanceWindow{Start: "00:00", End: "00:30"}, "2026-01-15T00:10:00Z", true, "2026-01-15T00:00:00Z", "2026-01-15T00:30:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inside, opens, closes, err := WindowAt(c.mw, utc(c.now))
			require.NoError(t, err)
			require.Equal(t, c.inside, inside)
			require.True(t, utc(c.opens).Equal(opens), "opens %s, want %s", opens.UTC(), c.opens)
			require.True(t, utc(c.closes).Equal(closes), "closes %s, want %s", closes.UTC(), c.closes)
		})
	}
	_, _, _, err := WindowAt(MaintenanceWindow{Start: "22:00", End: "04:00", Zone: "Mars/Olympus"}, time.Now())
	require.ErrorContains(t, err, "Mars/Olympus")
	_, _, _, err = WindowAt(MaintenanceWindow{Start: "2200", End: "04:00"}, time.Now())
	require.ErrorContains(t, err, "HH:MM")
}

// Cancelling the move stops it where it is: nothing is unwound, like every migration's
// cancel. (That the running child is cancelled with it is checked end to end in e2e: the
// test environment does not deliver a parent's cancellation to a mocked child.)
func TestRegionMoveCancelStopsWithoutUnwinding(t *testing.T) {
	h := newRMHarness(t)
	h.mongo = func(ctx workflow.Context, in MongoPrimaryMoveInput) (MongoPrimaryMoveResult, error) {
		err := workflow.Sleep(ctx, time.Hour)
		return MongoPrimaryMoveResult{Outcome: Outcome{State: StateCancelled}}, err
	}
	h.after(childTime+30*time.Second, func() { h.env.CancelWorkflow() })
	_, err := h.run(rmInput(rmSpec()))
	require.True(t, temporal.IsCanceledError(err), "%v", err)
	require.Equal(t, []string{"ami", "mongo"}, h.eventsOf())
	p := h.progress()
	require.Equal(t, StateCancelled, p.State)
	require.Contains(t, p.Message, "cancelled; still in effect: ami-share: 2 image(s)")
	require.Equal(t, PhaseSkipped, phaseStates(p.Phases)[PhaseDNSShift], "the phase after the cancelled one never started")
}
