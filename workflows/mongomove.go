package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// ErrMongoVerifyFailed is the type of the error a move reports when the primary did not
// end up in the region it was moved to (the move rolls back first).
const ErrMongoVerifyFailed = "MongoVerifyFailed"

// mongoActs is called through a nil pointer: the worker registers activities.NewMongo.
var mongoActs *activities.Mongo

// MongoPrimaryMove extends a replica set into the target region and moves the primary
// there by priority reconfig: add the new members non-voting, wait for their initial sync,
// give them votes one per reconfig, wait for approval, change priorities one member per
// reconfig, wait for the priority takeover (or step the old primary down), verify the
// primary's region tag, then optionally demote and remove the source members (each
// gated). A rollback (requested, or after a failed verification) restores the original
// config by the same one-vote-per-reconfig rule and moves the primary back.
func MongoPrimaryMove(ctx workflow.Context, in MongoPrimaryMoveInput) (MongoPrimaryMoveResult, error) {
	w := &mongoMove{}
	if err := w.setup(ctx, in); err != nil {
		return MongoPrimaryMoveResult{Outcome: Outcome{State: StateFailed, Message: err.Error()}}, err
	}
	return runKind[MongoPrimaryMoveResult](ctx, "mongo primary move", w)
}

// PlanMongoPrimaryMove is the dry run: it reads the set and probes the new members (on a
// worker, which can reach them) and returns every reconfig in order, the approvals, the
// waits and the plan hash. It changes nothing.
func PlanMongoPrimaryMove(ctx workflow.Context, in PlanMongoPrimaryMoveInput) (Plan, error) {
	obs, err := readMongo(ctx, in.Spec, "plan: read "+in.Spec.ReplicaSet)
	if err != nil {
		return Plan{}, err
	}
	p, err := ComputeMongoMovePlan(in.Spec, obs)
	if err != nil {
		return Plan{}, temporal.NewNonRetryableApplicationError("plan mongo primary move: "+err.Error(), ErrPlanInvalid, err)
	}
	return p.Plan, nil
}

type mongoMove struct {
	in   MongoPrimaryMoveInput
	spec MongoMoveSpec
	s    *Steering
	log  log.Logger

	plan            MongoMovePlan
	original        []activities.MongoMember
	originalPrimary string
	members         []activities.MongoMember // last config read or written
	version         int64
	primary         string
	status          []activities.MongoMemberStatus
	planned         int
	applied         int

	// The change record (see mongoUndoRecord): a reconfig or step-down was sent, and the
	// original config was restored since.
	owner     owner
	attempted bool
	restored  bool
}

func (w *mongoMove) setup(ctx workflow.Context, in MongoPrimaryMoveInput) error {
	w.in, w.spec = in, in.Spec
	w.owner = ownerOf(ctx, in.Undo)
	if in.Undo != nil {
		rec, err := decodeRecord[mongoUndoRecord](in.Undo)
		if err != nil {
			return err
		}
		w.spec, w.original, w.originalPrimary = rec.Spec, rec.Members, rec.Primary
	}
	w.log = log.With(workflow.GetLogger(ctx), "migration", workflow.GetInfo(ctx).WorkflowExecution.ID)
	s, err := NewSteering(ctx, SteeringOptions{
		Kind:      KindMongoPrimaryMove,
		Initiator: in.Initiator,
		PlanHash:  in.PlanHash,
		Approvals: in.Approvals,
		Start:     in.StartProof, StartDigest: StartDigest(in),
		Logger:  w.log,
		Details: w.details,
	})
	if err != nil {
		return err
	}
	w.s = s
	return nil
}

func mongoConn(spec MongoMoveSpec) activities.MongoConn {
	return activities.MongoConn{
		URI: spec.URI, ReplicaSet: spec.ReplicaSet, Username: spec.Username,
		Password: activities.MongoSecret{Env: spec.Password.Env, File: spec.Password.File},
		TLS:      spec.TLS, TLSCAFile: spec.TLSCAFile,
	}
}

func (w *mongoMove) details(p Progress) string {
	var b strings.Builder
	if m := p.Mongo; m != nil {
		fmt.Fprintf(&b, "replica set **%s**: primary **%s** · reconfigs %d/%d · config v%d\n\n",
			w.spec.ReplicaSet, orDash(m.Primary), m.ReconfigsApplied, m.ReconfigsPlanned, m.ConfigVersion)
		if len(m.Members) > 0 {
			b.WriteString("| member | region | state | votes | priority | lag |\n| --- | --- | --- | --- | --- | --- |\n")
			for _, mm := range m.Members {
				fmt.Fprintf(&b, "| %s | %s | %s | %d | %g | %s |\n", mm.Host, mm.Region, mm.State, mm.Votes, mm.Priority, mm.Lag)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString(RenderDetails(p))
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// publish writes the Mongo part of the progress. A fresh struct each time, so the query
// never shares a slice with state the workflow changes later.
func (w *mongoMove) publish(ctx workflow.Context) {
	mp := &MongoProgress{Primary: w.primary, ReconfigsPlanned: w.planned, ReconfigsApplied: w.applied, ConfigVersion: w.version}
	for _, m := range w.members {
		mm := MongoMemberProgress{Host: m.Host, Region: m.Tags[w.spec.RegionTag], State: "unknown", Priority: m.Priority, Votes: m.Votes}
		for _, st := range w.status {
			if st.Host == m.Host {
				mm.State, mm.Lag = st.State, st.Lag
			}
		}
		if m.Host == w.primary {
			mm.State = "PRIMARY"
		}
		mp.Members = append(mp.Members, mm)
	}
	w.s.Update(ctx, func(p *Progress) { p.Mongo = mp })
}

func (w *mongoMove) observe(ctx workflow.Context, obs activities.MongoReadOutput) {
	w.members, w.version, w.primary, w.status = obs.Config.Members, obs.Config.Version, obs.Primary, obs.Status
	w.publish(ctx)
}

func (w *mongoMove) steering() *Steering { return w.s }
func (w *mongoMove) common() Common      { return w.in.Common }

// undoRecorded is an undo run: the recorded config came in through setup, and the
// rollback planner takes the set from the config read now back to it, one vote per
// reconfig, the primary moved back.
func (w *mongoMove) undoRecorded(ctx workflow.Context) (MongoPrimaryMoveResult, error) {
	w.attempted = true
	return w.rollback(ctx)
}

func (w *mongoMove) resultOf(o Outcome) MongoPrimaryMoveResult {
	return MongoPrimaryMoveResult{Outcome: o, Primary: w.primary}
}

func (w *mongoMove) res(state, msg string) MongoPrimaryMoveResult {
	return w.resultOf(Outcome{State: state, Message: msg, Changes: w.changes()})
}

func (w *mongoMove) execute(ctx workflow.Context) (MongoPrimaryMoveResult, error) {
	w.s.SetPhase(ctx, "preflight", "reading the replica set and probing the new members")
	obs, err := readMongo(ctx, w.spec, "preflight: read "+w.spec.ReplicaSet)
	if err != nil {
		return MongoPrimaryMoveResult{}, err
	}
	w.observe(ctx, obs)
	plan, err := ComputeMongoMovePlan(w.spec, obs)
	if err != nil {
		return MongoPrimaryMoveResult{}, temporal.NewNonRetryableApplicationError("plan mongo primary move: "+err.Error(), ErrPlanInvalid, err)
	}
	if err := checkDrift(w.in.PlanHash, plan.Plan.Hash, plan.Plan.Observations[0], mongoPlanHashesV1(w.spec, obs)); err != nil {
		return MongoPrimaryMoveResult{}, err
	}
	if err := holdLocks(ctx, w.s, w.in.Common, plan.Plan.Resources); err != nil {
		return MongoPrimaryMoveResult{}, err
	}
	w.plan, w.original, w.originalPrimary = plan, plan.Original, obs.Primary
	w.planned = plan.Reconfigs
	names, descs := make([]string, len(plan.Steps)), make([]string, len(plan.Steps))
	for i, st := range plan.Steps {
		names[i], descs[i] = st.Name, st.Description
	}
	w.s.SetSteps(ctx, names, descs)
	w.s.Update(ctx, func(p *Progress) { p.PlanHash = plan.Plan.Hash })
	w.publish(ctx)
	w.s.Audit(ctx, SystemIdentity, "preflight",
		fmt.Sprintf("plan %s: %d step(s), %d reconfig(s); %s", plan.Plan.Hash, len(plan.Steps), plan.Reconfigs, strings.Join(plan.Plan.Observations, "; ")), "")

	for i, st := range plan.Steps {
		if err := w.s.WaitWhilePaused(ctx); err != nil {
			return MongoPrimaryMoveResult{}, err
		}
		if w.s.RollbackRequest() != nil {
			return w.rollback(ctx)
		}
		w.s.SetPhase(ctx, fmt.Sprintf("%s %d/%d", st.Phase, i+1, len(plan.Steps)), st.Name)
		w.s.StartStep(ctx, i)
		switch st.Kind {
		case MongoStepReconfig:
			// An unreachable set holds the move blocked rather than failing it; a refused
			// or drifted config ends the step.
			if err := holdThrough(ctx, w.s, w.in.budgets(), "reconfig", func(ctx workflow.Context) error { return w.reconfig(ctx, st) }); err != nil {
				w.s.EndStep(ctx, i, StepFailed, failureLine(err))
				return MongoPrimaryMoveResult{}, err
			}
		case MongoStepWaitSync:
			interrupted, err := w.waitSync(ctx, st, true)
			if err != nil {
				w.s.EndStep(ctx, i, StepFailed, failureLine(err))
				return MongoPrimaryMoveResult{}, err
			}
			if interrupted {
				w.s.EndStep(ctx, i, StepFailed, "interrupted by a rollback request")
				return w.rollback(ctx)
			}
		case MongoStepApproval:
			if !st.NeedsApproval {
				w.s.EndStep(ctx, i, StepDone, "skipped: the spec skips this approval")
				continue
			}
			w.s.SetMessage(ctx, "waiting for approval: "+st.Description)
			approved, err := w.s.AwaitApproval(ctx, st.Name)
			if err != nil {
				return MongoPrimaryMoveResult{}, err
			}
			if !approved {
				w.s.EndStep(ctx, i, StepFailed, "not approved: rollback requested")
				return w.rollback(ctx)
			}
		case MongoStepMovePrimary:
			ok, detail, err := w.movePrimary(ctx, st, true)
			if err != nil {
				w.s.EndStep(ctx, i, StepFailed, failureLine(err))
				return MongoPrimaryMoveResult{}, err
			}
			if w.s.RollbackRequest() != nil && !ok {
				w.s.EndStep(ctx, i, StepFailed, "interrupted by a rollback request")
				return w.rollback(ctx)
			}
			if !ok {
				w.s.EndStep(ctx, i, StepFailed, detail)
				w.s.RequestRollback(ctx, "verification failed: "+detail, st.Name)
				return w.rollback(ctx)
			}
		}
		w.s.EndStep(ctx, i, StepDone, "")
	}
	msg := fmt.Sprintf("completed: primary %s in %s, config version %d", w.primary, w.spec.TargetRegion, w.version)
	w.s.Audit(ctx, SystemIdentity, "completed", msg, "")
	w.s.Finish(ctx, StateCompleted, msg)
	w.log.Info("mongo primary move completed", "primary", w.primary, "version", w.version)
	return w.res(StateCompleted, msg), nil
}

// reconfig applies one planned reconfig. The activity is idempotent (it compares the live
// members with the step's before and after), so the retry policy may resend it freely.
func (w *mongoMove) reconfig(ctx workflow.Context, st MongoStep) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// The server waits up to MaxTime for the old and then the new config to commit.
		StartToCloseTimeout:    2 * time.Minute,
		ScheduleToCloseTimeout: stepAttempt(w.s, w.in.Common),
		// The activity heartbeats while the server holds the call, so a dead worker is
		// noticed in seconds and the (idempotent) reconfig resumes on another.
		HeartbeatTimeout: 10 * time.Second,
		// "Not primary", "stepped down", elections and commit timeouts pass once the set
		// settles; invalid configs and drift come back non-retryable.
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second, MaximumAttempts: 30,
			NonRetryableErrorTypes: []string{activities.ErrMongoInvalidConfig, activities.ErrMongoConfigDrift},
		},
		Summary: "reconfig: " + st.Name,
	})
	var out activities.MongoReconfigOutput
	// Recorded before the call: from here on the run has something to undo.
	w.attempted = true
	err := workflow.ExecuteActivity(actx, mongoActs.ApplyReconfig, activities.MongoReconfigInput{
		Conn: mongoConn(w.spec), Step: st.Name, Prev: st.Prev, Members: st.Members, MaxTime: time.Minute,
	}).Get(ctx, &out)
	if err != nil {
		// Unwrapped, so the workflow failure keeps the activity's error type.
		return err
	}
	w.applied++
	w.members, w.version = st.Members, out.Config.Version
	if len(out.Config.Members) > 0 {
		w.members = out.Config.Members
	}
	if out.Primary != "" {
		w.primary = out.Primary
	}
	w.publish(ctx)
	what := "applied"
	if out.Skipped {
		what = "already applied"
	}
	w.s.Audit(ctx, SystemIdentity, "reconfig", fmt.Sprintf("%s (%s, version %d)", st.Description, what, out.Config.Version), st.Name)
	return nil
}

// interruptible runs an activity that a rollback request may cut short (a wait); it
// reports interrupted when it was cancelled for that reason.
func (w *mongoMove) interruptible(ctx workflow.Context, allow bool, start func(workflow.Context) workflow.Future, out any) (bool, error) {
	if !allow {
		return false, start(ctx).Get(ctx, out)
	}
	actx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	done := false
	workflow.Go(ctx, func(gctx workflow.Context) {
		if err := workflow.Await(gctx, func() bool { return done || w.s.RollbackRequest() != nil }); err == nil && !done {
			cancel()
		}
	})
	err := start(actx).Get(ctx, out)
	done = true
	if err != nil && w.s.RollbackRequest() != nil && temporal.IsCanceledError(err) {
		return true, nil
	}
	return false, err
}

func (w *mongoMove) waitSync(ctx workflow.Context, st MongoStep, allowInterrupt bool) (bool, error) {
	opts := workflow.ActivityOptions{
		// Initial sync of a large data set takes hours; the heartbeat, not this bound,
		// is what notices a stuck worker.
		StartToCloseTimeout: 24 * time.Hour,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 20,
		},
		Summary: fmt.Sprintf("wait until %s are SECONDARY with lag < %s", strings.Join(st.Hosts, ", "), w.spec.MaxLag),
	}
	var out activities.MongoWaitReadyOutput
	interrupted, err := w.interruptible(ctx, allowInterrupt, func(c workflow.Context) workflow.Future {
		// c, not ctx: a rollback request cancels c.
		return workflow.ExecuteActivity(workflow.WithActivityOptions(c, opts), mongoActs.WaitMembersReady, activities.MongoWaitReadyInput{
			Conn: mongoConn(w.spec), Hosts: st.Hosts, MaxLag: w.spec.MaxLag, PollInterval: w.pollInterval(),
		})
	}, &out)
	if interrupted || err != nil {
		return interrupted, err
	}
	w.status = out.Status
	w.publish(ctx)
	w.s.Audit(ctx, SystemIdentity, "members ready", fmt.Sprintf("%s SECONDARY with lag < %s after %d poll(s)", strings.Join(st.Hosts, ", "), w.spec.MaxLag, out.Polls), st.Name)
	return false, nil
}

// pollInterval is short: polling is cheap next to the time a wait stands for, and a
// primary change noticed late lengthens the move for nothing.
func (w *mongoMove) pollInterval() time.Duration { return 200 * time.Millisecond }

// movePrimary waits for the priority takeover up to TakeoverTimeout; if the primary is
// not in the step's region by then, it steps the old primary down with the catch-up period
// and waits again. It returns ok once the primary's own hello carries the region tag.
func (w *mongoMove) movePrimary(ctx workflow.Context, st MongoStep, allowInterrupt bool) (ok bool, detail string, err error) {
	wait := func(label string) (activities.MongoWaitPrimaryOutput, bool, error) {
		opts := workflow.ActivityOptions{
			StartToCloseTimeout: w.spec.TakeoverTimeout + time.Minute,
			HeartbeatTimeout:    15 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumAttempts: 5},
			Summary:             fmt.Sprintf("%s: wait up to %s for a primary in %s", label, w.spec.TakeoverTimeout, st.Region),
		}
		var out activities.MongoWaitPrimaryOutput
		interrupted, err := w.interruptible(ctx, allowInterrupt, func(c workflow.Context) workflow.Future {
			return workflow.ExecuteActivity(workflow.WithActivityOptions(c, opts), mongoActs.WaitPrimary, activities.MongoWaitPrimaryInput{
				Conn: mongoConn(w.spec), RegionTag: w.spec.RegionTag, Region: st.Region,
				Timeout: w.spec.TakeoverTimeout, PollInterval: w.pollInterval(),
			})
		}, &out)
		if err == nil && !interrupted {
			w.primary = out.Primary
			if len(out.Status) > 0 {
				w.status = out.Status
			}
			w.publish(ctx)
		}
		return out, interrupted, err
	}
	out, interrupted, err := wait("takeover")
	if err != nil || interrupted {
		return false, "", err
	}
	if out.Found {
		w.s.Audit(ctx, SystemIdentity, "primary moved", fmt.Sprintf("%s (%s=%s) took over", out.Primary, w.spec.RegionTag, out.Region), st.Name)
		return true, "", nil
	}
	w.s.Audit(ctx, SystemIdentity, "no takeover",
		fmt.Sprintf("primary still %s after %s; stepping it down with a %s catch-up period", orDash(out.Primary), w.spec.TakeoverTimeout, w.spec.CatchUpPeriod), st.Name)
	catchUp := int(w.spec.CatchUpPeriod / time.Second)
	sctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: w.spec.CatchUpPeriod + time.Minute,
		HeartbeatTimeout:    10 * time.Second, // beats while the server holds the call
		// A stepdown that found no caught-up secondary is worth a few more tries; after
		// that, verification fails and the move rolls back.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumAttempts: 4},
		Summary:     fmt.Sprintf("replSetStepDown (catch-up %s) unless the primary is in %s", w.spec.CatchUpPeriod, st.Region),
	})
	var sd activities.MongoStepDownOutput
	w.attempted = true
	if err := workflow.ExecuteActivity(sctx, mongoActs.StepDown, activities.MongoStepDownInput{
		Conn: mongoConn(w.spec), RegionTag: w.spec.RegionTag, Region: st.Region, StepDownSecs: max(60, catchUp+1), CatchUpSecs: catchUp,
	}).Get(ctx, &sd); err != nil {
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) && ae.Type() == activities.ErrMongoStepDown {
			return false, err.Error(), nil
		}
		return false, "", err
	}
	w.s.Audit(ctx, SystemIdentity, "stepdown", sd.Detail, st.Name)
	out, interrupted, err = wait("after stepdown")
	if err != nil || interrupted {
		return false, "", err
	}
	if !out.Found {
		return false, fmt.Sprintf("the primary is %s (%s=%q), not in %s, after a takeover wait and a stepdown",
			orDash(out.Primary), w.spec.RegionTag, out.Region, st.Region), nil
	}
	w.s.Audit(ctx, SystemIdentity, "primary moved", fmt.Sprintf("%s (%s=%s) elected after the stepdown", out.Primary, w.spec.RegionTag, out.Region), st.Name)
	return true, "", nil
}

// rollback restores the original config: the planner computes the way back from the
// config read now, one vote per reconfig, primary moved back before the added members go.
func (w *mongoMove) rollback(ctx workflow.Context) (MongoPrimaryMoveResult, error) {
	why := w.s.BeginRollback(ctx)
	w.log.Info("rolling back", "reason", why)
	// Each attempt plans the way back from the set as it is then, so trying again after a
	// refused reconfig picks up where the last attempt stopped.
	var msg string
	err := keepTrying(ctx, w.s, w.in.budgets(), "rollback", func(ctx workflow.Context) error {
		var err error
		msg, err = w.unwind(ctx, why)
		return err
	})
	if err != nil {
		return MongoPrimaryMoveResult{}, err
	}
	w.restored = true
	w.s.MarkRolledBack(ctx)
	w.s.Audit(ctx, SystemIdentity, "rolled back", msg, "")
	w.s.Finish(ctx, StateRolledBack, msg)
	return w.res(StateRolledBack, msg), nil
}

// unwind brings the set from the config read now back to w.original with
// w.originalPrimary as primary, and says where it ended.
func (w *mongoMove) unwind(ctx workflow.Context, why string) (string, error) {
	w.s.SetPhase(ctx, "rollback: read", why)
	obs, err := readMongo(ctx, w.spec, "rollback: read "+w.spec.ReplicaSet)
	if err != nil {
		return "", err
	}
	w.observe(ctx, obs)
	steps, err := ComputeMongoRollbackPlan(w.spec, obs, w.original, w.originalPrimary)
	if err != nil {
		return "", temporal.NewNonRetryableApplicationError("plan rollback: "+err.Error(), ErrPlanInvalid, err)
	}
	for _, st := range steps {
		if st.Kind == MongoStepReconfig {
			w.planned++
		}
	}
	w.publish(ctx)
	w.s.Audit(ctx, SystemIdentity, "rollback plan", fmt.Sprintf("%d step(s) back to %s", len(steps), activities.DescribeMembers(w.original)), "")
	for i, st := range steps {
		w.s.SetPhase(ctx, fmt.Sprintf("rollback %d/%d", i+1, len(steps)), st.Name)
		switch st.Kind {
		case MongoStepReconfig:
			if err := w.reconfig(ctx, st); err != nil {
				return "", err
			}
		case MongoStepWaitSync:
			if _, err := w.waitSync(ctx, st, false); err != nil {
				return "", err
			}
		case MongoStepMovePrimary:
			ok, detail, err := w.movePrimary(ctx, st, false)
			if err != nil {
				return "", err
			}
			if !ok {
				return "", temporal.NewNonRetryableApplicationError(
					"rollback could not move the primary back: "+detail+"; the config is restored up to the priorities, check the set", ErrMongoVerifyFailed, nil)
			}
		}
	}
	return fmt.Sprintf("back to %s, primary %s (%s)", activities.DescribeMembers(w.original), w.primary, why), nil
}

// readMongo runs the read-only ReadReplicaSet activity with its options.
func readMongo(ctx workflow.Context, spec MongoMoveSpec, summary string) (activities.MongoReadOutput, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		// It beats while the driver looks for a reachable member, so a dead worker costs
		// seconds rather than the minute.
		HeartbeatTimeout: 10 * time.Second,
		// A wrong set name or an unresolvable password come back non-retryable; a set in
		// an election is worth a few tries.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 20 * time.Second, MaximumAttempts: 5},
		Summary:     summary,
	})
	var out activities.MongoReadOutput
	err := workflow.ExecuteActivity(actx, mongoActs.ReadReplicaSet, activities.MongoReadInput{
		Conn: mongoConn(spec), Probe: spec.NewMembers,
	}).Get(ctx, &out)
	return out, err
}
