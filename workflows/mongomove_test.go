package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/ferryhq/ferry/activities"
)

// fakeSet is a replica set model behind the mocked activities: reconfigs change it, the
// primary follows the highest priority when takeover is on, and every config is recorded.
type fakeSet struct {
	mu       sync.Mutex
	obs      activities.MongoReadOutput
	takeover bool
	configs  [][]activities.MongoMember
	stepdown int
}

func (f *fakeSet) lead() {
	if !f.takeover {
		return
	}
	p := &mongoPlanner{cur: f.obs.Config.Members, primary: f.obs.Primary, healthy: mongoHealth(f.obs)}
	if e := p.expectedPrimary(); e != "" {
		f.obs.Primary = e
	}
}

func (f *fakeSet) region(host string) string {
	if i := findMember(f.obs.Config.Members, host); i >= 0 {
		return f.obs.Config.Members[i].Tags["region"]
	}
	return ""
}

type mongoHarness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	set *fakeSet
}

func newMongoHarness(t *testing.T) *mongoHarness { return newMongoHarnessSync(t, 0) }

// newMongoHarnessSync makes the initial sync wait take syncTime of workflow time.
func newMongoHarnessSync(t *testing.T, syncTime time.Duration) *mongoHarness {
	var s testsuite.WorkflowTestSuite
	_, obs := mongoTopology(3, 3)
	for _, p := range obs.Probes {
		// Members to add answer in the status once added (as SECONDARY, caught up).
		obs.Status = append(obs.Status, activities.MongoMemberStatus{Host: p.Host, State: "SECONDARY", Healthy: true})
	}
	h := &mongoHarness{t: t, env: s.NewTestWorkflowEnvironment(), set: &fakeSet{obs: obs, takeover: true}}
	env, f := h.env, h.set
	env.RegisterWorkflow(MongoPrimaryMove)
	env.RegisterWorkflow(PlanMongoPrimaryMove)
	RegisterLock(env)
	env.RegisterActivity(&activities.Mongo{})
	env.OnActivity(mongoActs.ReadReplicaSet, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.MongoReadInput) (activities.MongoReadOutput, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			out := f.obs
			out.Config.Members = cloneMembers(out.Config.Members)
			var probes []activities.MongoProbe
			for _, p := range out.Probes {
				if findMember(out.Config.Members, p.Host) < 0 {
					probes = append(probes, p)
				}
			}
			out.Probes = probes
			return out, nil
		})
	env.OnActivity(mongoActs.ApplyReconfig, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.MongoReconfigInput) (activities.MongoReconfigOutput, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			cur := f.obs.Config.Members
			if activities.SameMembers(cur, in.Members) {
				return activities.MongoReconfigOutput{Skipped: true, Config: f.obs.Config, Primary: f.obs.Primary}, nil
			}
			if !activities.SameMembers(cur, in.Prev) {
				return activities.MongoReconfigOutput{}, temporal.NewNonRetryableApplicationError("drift", activities.ErrMongoConfigDrift, nil)
			}
			if activities.VotingChanges(cur, in.Members) > 1 {
				return activities.MongoReconfigOutput{}, temporal.NewNonRetryableApplicationError("votes", activities.ErrMongoInvalidConfig, nil)
			}
			f.obs.Config.Members = cloneMembers(in.Members)
			f.obs.Config.Version++
			f.configs = append(f.configs, f.obs.Config.Members)
			f.lead()
			return activities.MongoReconfigOutput{Config: f.obs.Config, Primary: f.obs.Primary}, nil
		})
	env.OnActivity(mongoActs.WaitMembersReady, mock.Anything, mock.Anything).After(syncTime).Return(
		func(_ context.Context, in activities.MongoWaitReadyInput) (activities.MongoWaitReadyOutput, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return activities.MongoWaitReadyOutput{Status: f.obs.Status, Polls: 1}, nil
		})
	env.OnActivity(mongoActs.WaitPrimary, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.MongoWaitPrimaryInput) (activities.MongoWaitPrimaryOutput, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			r := f.region(f.obs.Primary)
			return activities.MongoWaitPrimaryOutput{Found: r == in.Region, Primary: f.obs.Primary, Region: r, Polls: 1}, nil
		})
	env.OnActivity(mongoActs.StepDown, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.MongoStepDownInput) (activities.MongoStepDownOutput, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.stepdown++
			return activities.MongoStepDownOutput{SteppedDown: true, Primary: f.obs.Primary, Detail: "stepped down"}, nil
		})
	return h
}

func mongoInput() MongoPrimaryMoveInput {
	spec, _ := mongoTopology(3, 3)
	return MongoPrimaryMoveInput{Spec: spec, Common: Common{Name: "rs0 to eu-west-2", Reason: "region move", Initiator: "alice", Approvals: ApprovalPolicy{RequiredApprovers: 2}}}
}

func (h *mongoHarness) run(in MongoPrimaryMoveInput) (MongoPrimaryMoveResult, error) {
	h.env.ExecuteWorkflow(MongoPrimaryMove, in)
	require.True(h.t, h.env.IsWorkflowCompleted())
	var res MongoPrimaryMoveResult
	err := h.env.GetWorkflowError()
	if err == nil {
		require.NoError(h.t, h.env.GetWorkflowResult(&res))
	}
	return res, err
}

func (h *mongoHarness) progress() Progress {
	v, err := h.env.QueryWorkflow(QueryProgress)
	require.NoError(h.t, err)
	var p Progress
	require.NoError(h.t, v.Get(&p))
	return p
}

func (h *mongoHarness) update(name, identity string) *updateOutcome {
	o := &updateOutcome{}
	h.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnReject:   func(err error) { o.rejected = err },
		OnAccept:   func() { o.accepted = true },
		OnComplete: func(any, error) {},
	}, ActionRequest{Identity: identity, Reason: "test"})
	return o
}

// requireOneVotePerReconfig checks the configs the fake set went through.
func (h *mongoHarness) requireOneVotePerReconfig(start []activities.MongoMember) {
	prev := start
	for i, c := range h.set.configs {
		require.LessOrEqual(h.t, activities.VotingChanges(prev, c), 1, "reconfig %d", i)
		prev = c
	}
}

func TestMongoMoveFourEyesApproval(t *testing.T) {
	h := newMongoHarness(t)
	start := cloneMembers(h.set.obs.Config.Members)
	var self, first, again, second *updateOutcome
	h.env.RegisterDelayedCallback(func() {
		p := h.progress()
		require.NotNil(t, p.PendingApproval, "the move must wait for approval before the primary moves")
		require.Equal(t, "approve primary move", p.PendingApproval.Step)
		require.Equal(t, "eu-west-1", h.set.region(h.set.obs.Primary), "no priority change before approval")
		self = h.update(UpdateApprove, "alice")
		first = h.update(UpdateApprove, "bob")
		again = h.update(UpdateApprove, "bob")
		second = h.update(UpdateApprove, "carol")
	}, time.Minute)
	res, err := h.run(mongoInput())
	require.NoError(t, err)
	requireRejected(t, self, "four-eyes")
	requireAccepted(t, first)
	requireRejected(t, again, "already approved")
	requireAccepted(t, second)
	require.Equal(t, StateCompleted, res.State)
	require.Equal(t, "10.2.0.1:27017", res.Primary)
	h.requireOneVotePerReconfig(start)
	p := h.progress()
	require.NotNil(t, p.Mongo)
	require.Equal(t, 8, p.Mongo.ReconfigsApplied)
	require.Equal(t, p.Mongo.ReconfigsPlanned, p.Mongo.ReconfigsApplied)
	require.Len(t, p.Mongo.Members, 6)
	require.Zero(t, h.set.stepdown, "the takeover happened; no stepdown needed")
}

func TestMongoMoveRollbackSignalAtApproval(t *testing.T) {
	h := newMongoHarness(t)
	start := cloneMembers(h.set.obs.Config.Members)
	var rb *updateOutcome
	h.env.RegisterDelayedCallback(func() {
		require.NotNil(t, h.progress().PendingApproval)
		rb = h.update(UpdateRollback, "bob")
	}, time.Minute)
	res, err := h.run(mongoInput())
	require.NoError(t, err)
	requireAccepted(t, rb)
	require.Equal(t, StateRolledBack, res.State)
	require.True(t, activities.SameMembers(h.set.obs.Config.Members, start), "restored: %s", activities.DescribeMembers(h.set.obs.Config.Members))
	require.Equal(t, "eu-west-1", h.set.region(h.set.obs.Primary))
	h.requireOneVotePerReconfig(start)
}

func TestMongoMoveRollbackAfterMove(t *testing.T) {
	h := newMongoHarness(t)
	start := cloneMembers(h.set.obs.Config.Members)
	in := mongoInput()
	in.Spec.SkipPrimaryApproval, in.Spec.DemoteSource = true, true
	h.env.RegisterDelayedCallback(func() {
		p := h.progress()
		require.NotNil(t, p.PendingApproval)
		require.Equal(t, "approve demote", p.PendingApproval.Step)
		require.Equal(t, "eu-west-2", h.set.region(h.set.obs.Primary))
		h.env.SignalWorkflow(SignalRollback, ActionRequest{Identity: "bob", Reason: "latency in eu-west-2"})
	}, time.Minute)
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	require.True(t, activities.SameMembers(h.set.obs.Config.Members, start), "restored: %s", activities.DescribeMembers(h.set.obs.Config.Members))
	require.Equal(t, "eu-west-1", h.set.region(h.set.obs.Primary), "the primary moved back")
	h.requireOneVotePerReconfig(start)
}

func TestMongoMoveVerificationFailureRollsBack(t *testing.T) {
	h := newMongoHarness(t)
	h.set.takeover = false // no takeover and the stepdown elects nobody in eu-west-2
	start := cloneMembers(h.set.obs.Config.Members)
	in := mongoInput()
	in.Spec.SkipPrimaryApproval = true
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	require.Contains(t, res.Message, "verification failed")
	require.Equal(t, 1, h.set.stepdown, "a stepdown is tried after the takeover wait")
	require.True(t, activities.SameMembers(h.set.obs.Config.Members, start))
	h.requireOneVotePerReconfig(start)
}

func TestMongoMovePlanDrift(t *testing.T) {
	h := newMongoHarness(t)
	in := mongoInput()
	in.PlanHash = "0000000000000000"
	_, err := h.run(in)
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	require.True(t, HasErrorType(err, ErrPlanDrifted), "%v", err)
	require.Empty(t, h.set.configs, "nothing changed")
}

func TestMongoMoveRollbackDuringInitialSync(t *testing.T) {
	h := newMongoHarnessSync(t, 2*time.Hour)
	start := cloneMembers(h.set.obs.Config.Members)
	h.env.RegisterDelayedCallback(func() {
		p := h.progress()
		require.Equal(t, "wait for 10.2.0.1:27017, 10.2.0.2:27017, 10.2.0.3:27017", p.Steps[1].Name)
		require.Equal(t, "running", p.Steps[1].Status)
		h.env.SignalWorkflow(SignalRollback, ActionRequest{Identity: "bob", Reason: "initial sync too slow"})
	}, 10*time.Minute)
	begin := h.env.Now()
	res, err := h.run(mongoInput())
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	audit := h.progress().Audit
	last := audit[len(audit)-1]
	require.Equal(t, "rolled back", last.Action)
	require.Less(t, last.Time.Sub(begin), time.Hour, "the rollback must not wait for the sync to finish")
	require.True(t, activities.SameMembers(h.set.obs.Config.Members, start))
	h.requireOneVotePerReconfig(start)
}

func TestMongoMovePauseHoldsNextStep(t *testing.T) {
	h := newMongoHarness(t)
	in := mongoInput()
	in.Spec.SkipPrimaryApproval = true
	in.Approvals.RequiredApprovers = 1
	var applied int
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalPause, ActionRequest{Identity: "bob", Reason: "hold"})
	}, 0)
	h.env.RegisterDelayedCallback(func() {
		h.set.mu.Lock()
		applied = len(h.set.configs)
		h.set.mu.Unlock()
		require.Equal(t, StatePaused, h.progress().State)
		h.env.SignalWorkflow(SignalResume, ActionRequest{Identity: "bob", Reason: "go"})
	}, time.Hour)
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
	require.LessOrEqual(t, applied, 1, "no reconfig after the pause took hold")
}

func TestPlanMongoPrimaryMoveWorkflow(t *testing.T) {
	h := newMongoHarness(t)
	in := mongoInput()
	in.Spec.SkipPrimaryApproval = true
	h.env.ExecuteWorkflow(PlanMongoPrimaryMove, PlanMongoPrimaryMoveInput{Spec: in.Spec})
	require.NoError(t, h.env.GetWorkflowError())
	var plan Plan
	require.NoError(t, h.env.GetWorkflowResult(&plan))
	require.Equal(t, "mongo/rs0@10.1.0.1:27017", plan.ID, "named by the set and its lowest seed host")
	require.Equal(t, KindMongoPrimaryMove, plan.Kind)
	require.Len(t, plan.Steps, 11)
	require.False(t, plan.Steps[4].NeedsApproval, "the spec skips the primary approval")
	require.Contains(t, plan.Steps[0].Description, "10.2.0.1:27017(v0,p0)")
	require.Empty(t, h.set.configs, "a plan changes nothing")

	// Starting with that hash runs; the state has not changed.
	h2 := newMongoHarness(t)
	in.PlanHash = plan.Hash
	res, err := h2.run(in)
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
}
