package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/workflows"
)

// The kind contract's promise, judged from the sandbox: a migration that fails part-way on
// a permanent error ends where it started (weights, replica-set config and primary, no
// images left), and only when the fault also hits the undo does it end failed, naming what
// is still in effect, which the sandbox then confirms.

// world is the sandbox's own view of everything a region move touches.
type world struct {
	weights   map[string]int64
	primary   string
	config    map[string]string
	images    int // images in eu-west-2 that are not deregistered
	snapshots int // snapshots in eu-west-2
}

func (s *stack) world(t *testing.T) world {
	t.Helper()
	ctx := context.Background()
	ims, err := s.ec2("eu-west-2").DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	require.NoError(t, err)
	n := 0
	for _, im := range ims.Images {
		if im.State != ec2types.ImageStateDeregistered {
			n++
		}
	}
	snaps, err := s.ec2("eu-west-2").DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	require.NoError(t, err)
	return world{
		weights: s.weights(t), primary: s.primaryRegion(),
		config: testenv.ReplicaSetConfig(s.mongo.Cluster("rs0").Members()),
		images: n, snapshots: len(snaps.Snapshots),
	}
}

// mongoReconfigs is how many reconfigs the move's MongoDB phase plans.
func mongoReconfigs(plan workflows.Plan) int {
	n := 0
	for _, st := range plan.Steps {
		if strings.HasPrefix(st.Name, workflows.PhaseMongoPrimaryMove+": ") && strings.Contains(st.Description, "→") {
			n++
		}
	}
	return n
}

// failure is one failure point: the faults that make a migration fail there, added before
// it starts.
type failure struct {
	name   string
	faults func(reconfigs int) []control.Fault
	// unchanged: the failure came before anything changed, so there was nothing to roll
	// back and the move ends failed, saying so.
	unchanged bool
}

func deny(target string, after, count int) control.Fault {
	return control.Fault{Target: target, Kind: control.KindDenied, Rate: 1, After: after, Count: count}
}

func refuse(command string, after, count int) control.Fault {
	return control.Fault{Target: "mongo:rs0:*", Kind: control.KindCommandError, Rate: 1, Command: command, After: after, Count: count}
}

// regionMoveFailures fail each phase at two points or more. Count 1 is a permanent error
// on that one call (the undo's own calls go through); count 0 keeps refusing, undo too.
var regionMoveFailures = []failure{
	{name: "ami: every copy denied", faults: func(int) []control.Fault { return []control.Fault{deny("aws:ec2:CopyImage", 0, 0)} }, unchanged: true},
	{name: "ami: first copy denied", faults: func(int) []control.Fault { return []control.Fault{deny("aws:ec2:CopyImage", 0, 1)} }},
	{name: "ami: second copy denied", faults: func(int) []control.Fault { return []control.Fault{deny("aws:ec2:CopyImage", 1, 1)} }},
	{name: "mongo: second reconfig refused", faults: func(int) []control.Fault {
		return []control.Fault{refuse("replSetReconfig", 1, 1)}
	}},
	{name: "mongo: last reconfig refused", faults: func(n int) []control.Fault {
		return []control.Fault{refuse("replSetReconfig", n-1, 1)}
	}},
	{name: "dns: first batch denied", faults: func(int) []control.Fault {
		return []control.Fault{deny("aws:route53:ChangeResourceRecordSets", 0, 1)}
	}},
	{name: "dns: second batch denied (traffic split)", faults: func(int) []control.Fault {
		return []control.Fault{deny("aws:route53:ChangeResourceRecordSets", 1, 1)}
	}},
}

func TestRegionMoveFailurePartWayEndsWhereItStarted(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS and MongoDB")
	}
	for _, fc := range regionMoveFailures {
		t.Run(fc.name, func(t *testing.T) {
			s := startStack(t)
			start := s.world(t)
			in := s.moveSpec(t)
			plan := s.planMove(t, in)
			for _, f := range fc.faults(mongoReconfigs(plan)) {
				_, err := s.sb.Faults().Add(f)
				require.NoError(t, err)
			}
			res, err := s.runToEnd(t, in, plan.Hash)
			end := s.world(t)
			if fc.unchanged {
				require.Error(t, err)
				require.Equal(t, workflows.StateFailed, res.State, res.Message)
				require.Contains(t, res.Message, "nothing was changed")
				require.Equal(t, start, end, "nothing changed (%s)", res.Message)
				return
			}
			require.NoError(t, err)
			require.Equal(t, workflows.StateRolledBack, res.State, res.Message)
			require.Equal(t, start, end, "the sandbox is back where the move started (%s)", res.Message)
		})
	}
}

// When the fault also hits the undo for good, the undo never gives up: the MongoDB phase's
// undo shows itself blocked until a person cancels the move, which then ends cancelled and
// names what is still in effect; the sandbox confirms the claim.
func TestRegionMoveUndoRefusedForGoodBlocksUntilCancelled(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS and MongoDB")
	}
	s := startStack(t)
	start := s.world(t)
	_, err := s.sb.Faults().Add(refuse("replSetReconfig", 1, 0))
	require.NoError(t, err)
	in := s.moveSpec(t)
	in.Budgets = &workflows.Budgets{UndoAttempt: time.Second, BlockedPace: 300 * time.Millisecond}
	in.PlanHash = s.planMove(t, in).Hash
	k := workflows.KindByName(workflows.KindRegionMove)
	id := k.LockID(in)
	done := make(chan error, 1)
	var res workflows.RegionMoveResult
	go func() {
		_, err := s.startAndApprove(t, k, in, &res)
		done <- err
	}()
	ctx := context.Background()
	mongoID := workflows.MongoPrimaryMoveWorkflowID("rs0", in.Spec.Mongo.URI)
	testenv.Eventually(t, 2*time.Minute, "the MongoDB undo shows itself blocked", func() bool {
		p, ok := s.progress(ctx, mongoID)
		return ok && p.State == workflows.StateBlocked && strings.Contains(p.Message, "Unauthorized")
	})
	// The move a person watches (and an alert on FerryState) shows it too.
	testenv.Eventually(t, 30*time.Second, "the region move shows its phase's undo blocked", func() bool {
		p, ok := s.progress(ctx, id)
		return ok && p.State == workflows.StateBlocked && strings.Contains(p.Message, "mongo-primary-move") && strings.Contains(p.Message, "Unauthorized")
	})
	require.NoError(t, s.c.CancelWorkflow(ctx, id, ""))
	err = <-done
	require.True(t, temporal.IsCanceledError(err), "%v", err)
	p, ok := s.progress(ctx, id)
	require.True(t, ok)
	require.Equal(t, workflows.StateCancelled, p.State)
	require.Contains(t, p.Message, "ami-share: 2 image(s)")
	require.Contains(t, p.Message, "mongo-primary-move: replica set rs0")
	// The claim matches the sandbox: the new members are in the config (without votes),
	// the copies are there, traffic never moved.
	end := s.world(t)
	require.Len(t, end.config, len(start.config)+3, "the three eu-west-2 members are in the config")
	require.Equal(t, "eu-west-1", end.primary)
	require.Equal(t, 2, end.images)
	require.Equal(t, start.weights, end.weights)
}

// kindSpec is the spec of the marketplace move's phase of kind, to run that kind alone.
func (s *stack) kindSpec(t testing.TB, kind string) any {
	t.Helper()
	move := s.moveSpec(t)
	switch kind {
	case workflows.KindDNSShift:
		return *move.Spec.DNS
	case workflows.KindMongoPrimaryMove:
		return *move.Spec.Mongo
	case workflows.KindAMIShare:
		return *move.Spec.AMI
	}
	t.Fatalf("no phase of kind %s", kind)
	return nil
}

// Each kind run alone undoes what it changed when it fails part-way (onFailure defaults to
// rollback), the same way the region move undoes it.
func TestKindAloneFailurePartWayEndsWhereItStarted(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS and MongoDB")
	}
	cases := []struct {
		name  string
		kind  string
		fault control.Fault
	}{
		{"dns shift: second batch denied", workflows.KindDNSShift, deny("aws:route53:ChangeResourceRecordSets", 1, 1)},
		{"mongo move: third reconfig refused", workflows.KindMongoPrimaryMove, refuse("replSetReconfig", 2, 1)},
		{"ami share: second copy denied", workflows.KindAMIShare, deny("aws:ec2:CopyImage", 1, 1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startStack(t)
			start := s.world(t)
			_, err := s.sb.Faults().Add(c.fault)
			require.NoError(t, err)
			k := workflows.KindByName(c.kind)
			in := k.NewInput(s.kindSpec(t, c.kind), workflows.Common{Name: c.name, Initiator: "alice",
				Approvals: workflows.ApprovalPolicy{RequiredApprovers: 1}, OnFailure: workflows.OnFailureRollback})
			var out workflows.Outcome
			err = s.runKind(t, k, in, &out)
			require.NoError(t, err)
			require.Equal(t, workflows.StateRolledBack, out.State, out.Message)
			require.Contains(t, out.Message, "failed: ", "the message says why it rolled back")
			require.True(t, out.Changes.None(), "nothing left in effect: %s", out.Changes.InEffect)
			require.Equal(t, start, s.world(t), "the sandbox is back where the %s started", c.kind)
		})
	}
}

// A Route 53 outage several times the undo budget long, during a DNS shift's rollback: the
// shift shows itself blocked meanwhile, keeps trying, and ends rolled-back once the outage
// ends, with the weights back where they started.
func TestDNSRollbackKeepsTryingThroughAnOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS")
	}
	s := startStack(t)
	start := s.weights(t)
	// The first batch goes in; every later one is refused until the fault is cleared.
	f, err := s.sb.Faults().Add(deny("aws:route53:ChangeResourceRecordSets", 1, 0))
	require.NoError(t, err)
	k := workflows.KindByName(workflows.KindDNSShift)
	budgets := &workflows.Budgets{UndoAttempt: time.Second, BlockedPace: 300 * time.Millisecond}
	in := k.NewInput(*s.moveSpec(t).Spec.DNS, workflows.Common{Name: "www", Initiator: "alice",
		Approvals: workflows.ApprovalPolicy{RequiredApprovers: 1}, Budgets: budgets})
	id := k.LockID(in)

	done := make(chan error, 1)
	var out workflows.DNSShiftResult
	go func() { done <- s.runKind(t, k, in, &out) }()
	ctx := context.Background()
	var blocked workflows.Progress
	testenv.Eventually(t, time.Minute, "the rollback shows itself blocked", func() bool {
		p, ok := s.progress(ctx, id)
		if ok && p.State == workflows.StateBlocked {
			blocked = p
			return true
		}
		return false
	})
	require.Contains(t, blocked.Message, "rollback blocked: ")
	require.Contains(t, blocked.Message, "AccessDenied")
	// The outage lasts several undo attempts (each up to one budget long), then ends.
	testenv.Eventually(t, time.Minute, "the refused batches of several attempts", func() bool {
		for _, g := range s.sb.Faults().List() {
			if g.ID == f.ID {
				return g.Fired >= 4
			}
		}
		return false
	})
	_, err = s.sb.Faults().Delete(f.ID)
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.Equal(t, workflows.StateRolledBack, out.State, out.Message)
	require.Equal(t, start, s.weights(t), "the weights are back where they started")
	p, _ := s.progress(ctx, id)
	var actions []string
	for _, e := range p.Audit {
		actions = append(actions, e.Action)
	}
	require.Contains(t, actions, "rollback blocked")
	require.Contains(t, actions, "rollback unblocked")
}

// planMove runs the move's dry run.
func (s *stack) planMove(t *testing.T, in workflows.RegionMoveInput) workflows.Plan {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := workflows.RegionMoveWorkflowID(in.Name, in.Spec.SourceRegion, in.Spec.TargetRegion)
	pr, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "plan/" + id, TaskQueue: workflows.TaskQueue},
		workflows.PlanRegionMove, workflows.PlanRegionMoveInput{Spec: in.Spec, Name: in.Name})
	require.NoError(t, err)
	var plan workflows.Plan
	require.NoError(t, pr.Get(ctx, &plan))
	return plan
}

// runToEnd starts the move pinned to planHash, approves every gate and returns its result,
// from the failure's details when it failed.
func (s *stack) runToEnd(t *testing.T, in workflows.RegionMoveInput, planHash string) (workflows.RegionMoveResult, error) {
	t.Helper()
	in.PlanHash = planHash
	var res workflows.RegionMoveResult
	err := s.runKind(t, workflows.KindByName(workflows.KindRegionMove), in, &res)
	t.Logf("%s: %s", res.State, res.Message)
	for _, ph := range res.Phases {
		t.Logf("  %s %s: %s", ph.Name, ph.State, ph.Detail)
	}
	return res, err
}

// startAndApprove starts a migration of kind k under its lock id, approves every gate as it
// opens (the approver), and decodes its result into out.
func (s *stack) startAndApprove(t *testing.T, k *workflows.KindDef, in any, out any) (*approver, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	id := k.LockID(in)
	run, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, k.WorkflowName, in)
	require.NoError(t, err)
	a := &approver{}
	actx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.run(actx, s, id) }()
	err = run.Get(ctx, out)
	stop()
	wg.Wait()
	require.NotErrorIs(t, err, context.DeadlineExceeded, "approved: %v; refused: %v", a.approved, a.errs)
	return a, err
}

// runKind runs a migration of kind k to its end and decodes its result into out, or the
// result a failed run attached to its error.
func (s *stack) runKind(t *testing.T, k *workflows.KindDef, in any, out any) error {
	t.Helper()
	_, err := s.startAndApprove(t, k, in, out)
	if err != nil {
		require.True(t, workflows.HasErrorType(err, workflows.ErrMigrationFailed), "%v", err)
		// The outermost application error is the run's MigrationFailed; its details are the
		// run's result.
		var ae *temporal.ApplicationError
		require.ErrorAs(t, err, &ae)
		require.NoError(t, ae.Details(out), "the failure carries the result: %v", err)
	}
	return err
}
