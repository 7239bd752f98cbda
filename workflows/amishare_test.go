package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/ferryhq/ferry/activities"
)

// fakeEC2 stands in for EC2 behind the mocked activities. It behaves like the real
// activities would against EC2: CopyAMI first finds a copy this migration already started
// (by its tags), and only otherwise "calls CopyImage".
type fakeEC2 struct {
	mu sync.Mutex
	// copies maps source/region to the copy id made for it.
	copies map[string]string
	// copyImageCalls counts real (non-adopted) CopyImage calls per source/region.
	copyImageCalls map[string]int
	tokens         map[string][]string // source/region -> tokens of every attempt
	attempts       map[string]int
	// failBefore makes the first n attempts of a pair fail retryably before CopyImage.
	failBefore map[string]int
	// loseResponse makes the first attempt of a pair start the copy, then fail as if the
	// worker died before reporting it.
	loseResponse map[string]bool
	// waitFails makes the wait for a pair fail with a non-retryable CopyFailed.
	waitFails map[string]bool
	tagged    map[string]map[string]string // image id -> tags
	shared    map[string][]string          // image id -> accounts
	deleted   []string                     // region/image
	delSnaps  []string
	created   []string // instance=image
	inflight  int
	maxFlight int
	next      int
}

func newFakeEC2() *fakeEC2 {
	return &fakeEC2{
		copies: map[string]string{}, copyImageCalls: map[string]int{}, tokens: map[string][]string{},
		attempts: map[string]int{}, failBefore: map[string]int{}, loseResponse: map[string]bool{},
		waitFails: map[string]bool{}, tagged: map[string]map[string]string{}, shared: map[string][]string{},
	}
}

func pairKey(src, region string) string { return src + "/" + region }

var testImages = []activities.SourceImage{
	{ID: "ami-0a1b2c3d4e5f60001", Name: "shop-web", State: "available", SizeGiB: 8, SnapshotIDs: []string{"snap-01"},
		Tags: map[string]string{"app": "shop", "role": "web", "aws:cloudformation:stack-name": "x"}},
	{ID: "ami-0a1b2c3d4e5f60002", Name: "shop-worker", State: "available", SizeGiB: 8, SnapshotIDs: []string{"snap-02"},
		Tags: map[string]string{"app": "shop", "role": "worker"}},
}

func amiTestSpec() AMIShareSpec {
	return AMIShareSpec{
		SourceRegion: "eu-west-1", ImageTags: map[string]string{"app": "shop"},
		TargetRegions:     []string{"eu-west-2", "us-east-1"},
		ShareWithAccounts: []string{"111122223333"},
		CopyTags:          true, AddTags: map[string]string{"migrated-by": "ferry"},
		MaxParallel: 2, PollInterval: time.Second,
	}
}

type amiHarness struct {
	// onFailure is the run's Common.OnFailure ("" is the default: rollback).
	onFailure string
	t         *testing.T
	env       *testsuite.TestWorkflowEnvironment
	f         *fakeEC2
}

func newAMIHarness(t *testing.T) *amiHarness { return newAMIHarnessWait(t, 0) }

// newAMIHarnessWait makes every WaitAMI take waitFor of workflow time, so signals can
// land while copies are in flight.
func newAMIHarnessWait(t *testing.T, waitFor time.Duration) *amiHarness {
	var s testsuite.WorkflowTestSuite
	h := &amiHarness{t: t, env: s.NewTestWorkflowEnvironment(), f: newFakeEC2()}
	env, f := h.env, h.f
	// The test environment runs an activity's retry backoff on a skipped timer while the
	// workflow goroutine waits on the environment's lock, which its deadlock detector
	// (1s of real time) mistakes for a stuck workflow when an ApplicationError is retried.
	// A real worker never does this; a longer bound keeps the check for true spins.
	env.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: 30 * time.Second})
	env.RegisterWorkflow(AMIShare)
	env.RegisterWorkflow(PlanAMIShare)
	RegisterLock(env)
	env.RegisterActivity(&activities.EC2{})
	env.OnActivity(ec2a.ResolveAMIs, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ResolveAMIsInput) (activities.ResolveAMIsOutput, error) {
			out := activities.ResolveAMIsOutput{EnabledRegions: []string{"eu-west-1", "eu-west-2", "us-east-1"}}
			if len(in.Tags) > 0 {
				out.Images = testImages
			}
			for _, id := range in.ImageIDs { // images created from instances
				out.Images = append(out.Images, activities.SourceImage{ID: id, Name: "ferry-" + id, State: "available",
					SnapshotIDs: []string{"snap-" + id[4:]}, Tags: map[string]string{activities.TagMigration: "x"}})
			}
			for _, id := range in.InstanceIDs {
				out.Instances = append(out.Instances, activities.SourceInstance{ID: id, State: "running"})
			}
			return out, nil
		})
	env.OnActivity(ec2a.CopyAMI, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CopyAMIInput) (activities.CopyAMIOutput, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			k := pairKey(in.SourceImageID, in.Region)
			f.attempts[k]++
			f.tokens[k] = append(f.tokens[k], in.ClientToken)
			if f.attempts[k] <= f.failBefore[k] {
				return activities.CopyAMIOutput{}, temporal.NewApplicationError("copy: RequestLimitExceeded", activities.ErrThrottled)
			}
			if id, ok := f.copies[k]; ok {
				return activities.CopyAMIOutput{ImageID: id, Adopted: true}, nil
			}
			f.next++
			id := fmt.Sprintf("ami-%017x", f.next)
			f.copies[k] = id
			f.copyImageCalls[k]++
			f.inflight++
			f.maxFlight = max(f.maxFlight, f.inflight)
			if f.loseResponse[k] && f.attempts[k] == 1 {
				return activities.CopyAMIOutput{}, errors.New("worker lost before reporting the copy")
			}
			return activities.CopyAMIOutput{ImageID: id}, nil
		})
	env.OnActivity(ec2a.CreateAMI, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CreateAMIInput) (activities.CreateAMIOutput, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.next++
			id := fmt.Sprintf("ami-%017x", 0xc000+f.next)
			f.created = append(f.created, in.InstanceID+"="+id)
			return activities.CreateAMIOutput{ImageID: id}, nil
		})
	wait := env.OnActivity(ec2a.WaitAMI, mock.Anything, mock.Anything)
	if waitFor > 0 {
		wait.After(waitFor)
	}
	wait.Return(
		func(_ context.Context, in activities.WaitAMIInput) (activities.WaitAMIOutput, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.inflight--
			for k, id := range f.copies {
				if id == in.ImageID && f.waitFails[k] {
					return activities.WaitAMIOutput{}, temporal.NewNonRetryableApplicationError(
						fmt.Sprintf("image %s in %s is failed", id, in.Region), activities.ErrCopyFailed, nil)
				}
			}
			return activities.WaitAMIOutput{ImageID: in.ImageID, State: "available", SnapshotIDs: []string{"snap-" + in.ImageID[4:]}, Polls: 3}, nil
		})
	env.OnActivity(ec2a.TagAMI, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.TagAMIInput) (activities.TagAMIOutput, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.tagged[in.ImageID] = in.Tags
			return activities.TagAMIOutput{Tags: len(in.Tags)}, nil
		})
	env.OnActivity(ec2a.ShareAMI, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ShareAMIInput) (activities.ShareAMIOutput, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.shared[in.ImageID] = in.Accounts
			return activities.ShareAMIOutput{LaunchPermissions: len(in.Accounts), Snapshots: len(in.SnapshotIDs)}, nil
		})
	env.OnActivity(ec2a.DeleteAMICopy, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DeleteAMICopyInput) (activities.DeleteAMICopyOutput, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.deleted = append(f.deleted, in.Region+"/"+in.ImageID)
			// Like the real activity: the snapshots recorded, plus what describing the
			// image tells (a copy whose wait failed has none recorded).
			snaps := append([]string{}, in.SnapshotIDs...)
			if s := "snap-" + in.ImageID[4:]; !slices.Contains(snaps, s) {
				snaps = append(snaps, s)
			}
			f.delSnaps = append(f.delSnaps, snaps...)
			return activities.DeleteAMICopyOutput{Deregistered: true, DeletedSnapshots: snaps}, nil
		})
	return h
}

func (h *amiHarness) run(spec AMIShareSpec, planHash string) {
	h.env.ExecuteWorkflow(AMIShare, AMIShareInput{Spec: spec, Common: Common{Name: "test", Initiator: "alice", Approvals: ApprovalPolicy{RequiredApprovers: 1}, PlanHash: planHash, OnFailure: h.onFailure}})
	require.True(h.t, h.env.IsWorkflowCompleted())
}

func (h *amiHarness) progress() Progress {
	v, err := h.env.QueryWorkflow(QueryProgress)
	require.NoError(h.t, err)
	var p Progress
	require.NoError(h.t, v.Get(&p))
	return p
}

type amiUpdate struct {
	accepted bool
	rejected error
}

func (h *amiHarness) update(name, identity string) *amiUpdate {
	o := &amiUpdate{}
	h.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnReject:   func(err error) { o.rejected = err },
		OnAccept:   func() { o.accepted = true },
		OnComplete: func(any, error) {},
	}, ActionRequest{Identity: identity, Reason: "test"})
	return o
}

func statesOf(copies []AMICopyProgress) map[string]string {
	m := map[string]string{}
	for _, c := range copies {
		m[pairKey(c.SourceImageID, c.Region)] = c.State
	}
	return m
}

func TestAMIShareCopiesEveryPairOnceThroughRetries(t *testing.T) {
	h := newAMIHarness(t)
	web2 := pairKey(testImages[0].ID, "eu-west-2")
	work1 := pairKey(testImages[1].ID, "us-east-1")
	h.f.failBefore[web2] = 2 // RequestLimitExceeded twice, then the copy starts
	h.f.loseResponse[work1] = true
	h.run(amiTestSpec(), "")
	require.NoError(t, h.env.GetWorkflowError())
	var res AMIShareResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, StateCompleted, res.State, res.Message)
	require.Len(t, res.Copies, 4)
	for _, c := range res.Copies {
		require.Equal(t, AMICopyShared, c.State, "%+v", c)
		require.NotEmpty(t, c.ImageID)
	}

	f := h.f
	require.Len(t, f.copyImageCalls, 4)
	for k, n := range f.copyImageCalls {
		require.Equal(t, 1, n, "CopyImage calls for %s", k)
	}
	require.Equal(t, 3, f.attempts[web2])
	require.Equal(t, 2, f.attempts[work1])
	// Every attempt of a pair sends the same token; pairs differ.
	seen := map[string]string{}
	for k, toks := range f.tokens {
		for _, tok := range toks {
			require.Equal(t, toks[0], tok, "token changed between attempts of %s", k)
		}
		require.Len(t, toks[0], 64)
		require.NotContains(t, seen, toks[0], "token shared by %s and %s", seen[toks[0]], k)
		seen[toks[0]] = k
	}
	require.LessOrEqual(t, f.maxFlight, 2, "at most MaxParallel copies in flight")
	// The adopted copy is reported as such.
	for _, c := range res.Copies {
		require.Equal(t, pairKey(c.SourceImageID, c.Region) == work1, c.Adopted, "%+v", c)
	}

	// Tags: the source's (without aws:*), the added ones, and ferry's.
	id := f.copies[web2]
	tags := f.tagged[id]
	require.Equal(t, "shop", tags["app"])
	require.Equal(t, "web", tags["role"])
	require.Equal(t, "ferry", tags["migrated-by"])
	require.Equal(t, testImages[0].ID, tags[activities.TagSourceImage])
	require.Equal(t, "default-test-workflow-id", tags[activities.TagMigration])
	require.NotContains(t, tags, "aws:cloudformation:stack-name")
	require.Equal(t, []string{"111122223333"}, f.shared[id])

	p := h.progress()
	require.Equal(t, StateCompleted, p.State)
	require.NotNil(t, p.AMI)
	require.Len(t, p.AMI.Copies, 4)
}

func TestAMIShareWorkerRestartMidCopyAdoptsTheCopy(t *testing.T) {
	h := newAMIHarness(t)
	spec := amiTestSpec()
	spec.TargetRegions = []string{"eu-west-2"}
	for _, im := range testImages {
		h.f.loseResponse[pairKey(im.ID, "eu-west-2")] = true
	}
	h.run(spec, "")
	require.NoError(t, h.env.GetWorkflowError())
	for _, im := range testImages {
		k := pairKey(im.ID, "eu-west-2")
		require.Equal(t, 1, h.f.copyImageCalls[k], "a second attempt must find the first copy, not start another (%s)", k)
		require.Equal(t, 2, h.f.attempts[k])
	}
}

func TestAMISharePartialFailureListsEveryPair(t *testing.T) {
	h := newAMIHarness(t)
	h.onFailure = OnFailureLeave
	bad := pairKey(testImages[1].ID, "us-east-1")
	h.f.waitFails[bad] = true
	h.run(amiTestSpec(), "")
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "%v", err)
	require.Equal(t, ErrMigrationFailed, ae.Type())
	var res AMIShareResult
	require.NoError(t, ae.Details(&res))
	require.Equal(t, StateFailed, res.State)
	st := statesOf(res.Copies)
	require.Len(t, st, 4)
	for k, s := range st {
		if k == bad {
			require.Equal(t, AMICopyFailed, s)
		} else {
			require.Equal(t, AMICopyShared, s, k)
		}
	}
	for _, c := range res.Copies {
		if pairKey(c.SourceImageID, c.Region) == bad {
			require.Contains(t, c.Detail, "is failed")
		}
	}
	require.Contains(t, res.Message, testImages[1].ID+" to us-east-1")
	require.Empty(t, h.f.deleted, "onFailure leave keeps the copies")
	require.NotEmpty(t, res.Changes.Record, "the report carries the record an undo needs")
	require.Equal(t, KindAMIShare, res.Changes.Kind)
	require.Contains(t, res.Changes.InEffect, "4 image(s)", "the report names every copy still there")
	require.Equal(t, StateFailed, h.progress().State)
}

func TestAMIShareRollbackOnFailureRemovesOnlyRecordedCopies(t *testing.T) {
	h := newAMIHarness(t)
	spec := amiTestSpec()
	bad := pairKey(testImages[1].ID, "us-east-1")
	h.f.waitFails[bad] = true
	h.run(spec, "")
	require.NoError(t, h.env.GetWorkflowError())
	var res AMIShareResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, StateRolledBack, res.State, res.Message)
	require.Len(t, h.f.deleted, 4, "all four copies were recorded, including the one whose wait failed")
	for k, id := range h.f.copies {
		region := k[len(testImages[0].ID)+1:]
		require.Contains(t, h.f.deleted, region+"/"+id)
		require.Contains(t, h.f.delSnaps, "snap-"+id[4:], "snapshot of %s", id)
	}
	for _, c := range res.Copies {
		require.Equal(t, AMICopyRolledBack, c.State, "%+v", c)
	}
}

func TestAMIShareApprovalBeforeSharingWithFourEyes(t *testing.T) {
	h := newAMIHarness(t)
	spec := amiTestSpec()
	spec.ApproveBeforeSharing = true
	var self, other *amiUpdate
	var during Progress
	h.env.RegisterDelayedCallback(func() {
		during = h.progress()
		self = h.update(UpdateApprove, "alice")
	}, time.Minute)
	h.env.RegisterDelayedCallback(func() { other = h.update(UpdateApprove, "bob") }, 2*time.Minute)
	h.run(spec, "")
	require.NoError(t, h.env.GetWorkflowError())

	require.Equal(t, StateAwaitingApproval, during.State)
	require.NotNil(t, during.PendingApproval)
	require.Equal(t, amiApproveStep, during.PendingApproval.Step)
	for _, c := range during.AMI.Copies {
		require.Equal(t, AMICopyAvailable, c.State, "copies wait unshared: %+v", c)
	}
	require.False(t, self.accepted)
	require.ErrorContains(t, self.rejected, "four-eyes")
	require.True(t, other.accepted, "%v", other.rejected)

	var res AMIShareResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, StateCompleted, res.State)
	require.Len(t, h.f.shared, 4)
	p := h.progress()
	var actions []string
	for _, a := range p.Audit {
		actions = append(actions, a.Identity+" "+a.Action)
	}
	require.Contains(t, actions, "bob approve")
}

func TestAMIShareRollbackWhileAwaitingApproval(t *testing.T) {
	h := newAMIHarness(t)
	spec := amiTestSpec()
	spec.ApproveBeforeSharing = true
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalRollback, ActionRequest{Identity: "bob", Reason: "wrong account"})
	}, time.Minute)
	h.run(spec, "")
	require.NoError(t, h.env.GetWorkflowError())
	var res AMIShareResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, StateRolledBack, res.State)
	require.Empty(t, h.f.shared, "nothing was shared")
	var got, want []string
	got = append(got, h.f.deleted...)
	for k, id := range h.f.copies {
		want = append(want, k[len(testImages[0].ID)+1:]+"/"+id)
	}
	sort.Strings(got)
	sort.Strings(want)
	require.Equal(t, want, got)
	require.Len(t, h.f.delSnaps, 4)
}

func TestAMISharePlanAndDrift(t *testing.T) {
	h := newAMIHarness(t)
	spec := amiTestSpec()
	spec.ApproveBeforeSharing = true
	spec.KMSKeys = map[string]string{"eu-west-2": "alias/shop"}
	h.env.ExecuteWorkflow(PlanAMIShare, PlanAMIShareInput{Spec: spec})
	require.NoError(t, h.env.GetWorkflowError())
	var plan Plan
	require.NoError(t, h.env.GetWorkflowResult(&plan))
	require.Equal(t, "ami/eu-west-1/tags:app=shop", plan.ID)
	require.Len(t, plan.Hash, 16)
	var names []string
	for _, s := range plan.Steps {
		names = append(names, s.Name)
	}
	require.Equal(t, []string{
		"copy ami-0a1b2c3d4e5f60001 to eu-west-2", "copy ami-0a1b2c3d4e5f60001 to us-east-1",
		"copy ami-0a1b2c3d4e5f60002 to eu-west-2", "copy ami-0a1b2c3d4e5f60002 to us-east-1",
		amiApproveStep, amiShareStep,
	}, names)
	require.True(t, plan.Steps[4].NeedsApproval)
	require.Contains(t, plan.Steps[0].Description, "encrypted with alias/shop")
	// The poll interval is a test knob, not part of the plan.
	spec2 := spec
	spec2.PollInterval = time.Hour
	obs := activities.ResolveAMIsOutput{Images: testImages, EnabledRegions: []string{"eu-west-1", "eu-west-2", "us-east-1"}}
	require.Equal(t, plan.Hash, AMISharePlanHash(spec2, obs))

	d := newAMIHarness(t)
	d.run(spec, "0123456789abcdef")
	err := d.env.GetWorkflowError()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "%v", err)
	require.True(t, HasErrorType(err, ErrPlanDrifted), "%v", err)
	require.Empty(t, d.f.copyImageCalls, "a drifted plan copies nothing")
}

func TestAMICopyTokenIsStableAndBounded(t *testing.T) {
	a := AMICopyToken("ami/eu-west-1/tags:app=shop", "run-1", "ami-1", "eu-west-2")
	require.Len(t, a, 64)
	require.Equal(t, a, AMICopyToken("ami/eu-west-1/tags:app=shop", "run-1", "ami-1", "eu-west-2"))
	require.NotEqual(t, a, AMICopyToken("ami/eu-west-1/tags:app=shop", "run-1", "ami-1", "us-east-1"))
	require.NotEqual(t, a, AMICopyToken("ami/eu-west-1/tags:app=shop", "run-2", "ami-1", "eu-west-2"))
}

func TestAMISharePauseHoldsNewCopies(t *testing.T) {
	h := newAMIHarnessWait(t, 10*time.Minute)
	spec := amiTestSpec()
	spec.TargetRegions = []string{"eu-west-2"}
	spec.MaxParallel = 1
	var paused Progress
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalPause, ActionRequest{Identity: "bob", Reason: "look first"})
	}, time.Minute)
	h.env.RegisterDelayedCallback(func() { paused = h.progress() }, 30*time.Minute)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalResume, ActionRequest{Identity: "bob", Reason: "go on"})
	}, 40*time.Minute)
	h.run(spec, "")
	require.NoError(t, h.env.GetWorkflowError())

	require.Equal(t, StatePaused, paused.State)
	st := statesOf(paused.AMI.Copies)
	require.Equal(t, AMICopyShared, st[pairKey(testImages[0].ID, "eu-west-2")], "the copy in flight finished")
	require.Equal(t, AMICopyPending, st[pairKey(testImages[1].ID, "eu-west-2")], "no new copy starts while paused")
	var res AMIShareResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, StateCompleted, res.State)
}

func TestAMIShareRollbackDuringWaitRemovesStartedCopies(t *testing.T) {
	h := newAMIHarnessWait(t, 10*time.Minute)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalRollback, ActionRequest{Identity: "bob", Reason: "stop"})
	}, time.Minute)
	spec := amiTestSpec()
	h.run(spec, "")
	require.NoError(t, h.env.GetWorkflowError())
	var res AMIShareResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, StateRolledBack, res.State, res.Message)
	// MaxParallel 2: two copies had started; only they are removed, and nothing else
	// was copied or shared.
	require.Len(t, h.f.copies, 2)
	require.Len(t, h.f.deleted, 2)
	require.Empty(t, h.f.shared)
	for _, c := range res.Copies {
		require.Equal(t, AMICopyRolledBack, c.State, "%+v", c)
	}
}

func TestAMIShareCreatesImagesFromInstancesFirst(t *testing.T) {
	h := newAMIHarness(t)
	spec := amiTestSpec()
	spec.ImageTags = nil
	spec.CreateFromInstances = []string{"i-0123456789abcdef0"}
	h.f.waitFails[pairKey("ami-0000000000000c001", "us-east-1")] = true
	h.run(spec, "")
	require.NoError(t, h.env.GetWorkflowError())
	var res AMIShareResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	require.Equal(t, []string{"i-0123456789abcdef0=ami-0000000000000c001"}, h.f.created)
	require.Len(t, res.Copies, 2)
	for _, c := range res.Copies {
		require.Equal(t, "ami-0000000000000c001", c.SourceImageID)
		require.Equal(t, "i-0123456789abcdef0", c.SourceInstanceID)
	}
	// The failure rolled back both copies and then the image made from the instance.
	require.Equal(t, StateRolledBack, res.State, res.Message)
	require.Len(t, h.f.deleted, 3)
	require.Equal(t, "eu-west-1/ami-0000000000000c001", h.f.deleted[2])
}
