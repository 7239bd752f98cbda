package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/proof"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/gameday"
)

// A GameDay (issue 23) as a workflow: each experiment is a step that injects its fault
// into the sandbox with the game's owner label, waits out the fault's duration, clears it,
// waits for the steady state to come back, and collects what the sandbox and the migration
// recorded meanwhile. People press detect and mitigate through the API (signed, like an
// approval: a score must not be forgeable); stop ends the game and clears its faults, and
// only those. Nothing here judges: package gamereport scores the run's records.

var gameActs *gameday.Activities

const (
	// steadyHold is how long the steady state must hold before the game goes on.
	steadyHold = 5 * time.Second
	// recoveryTimeout bounds the wait for the steady state after a fault ends.
	recoveryTimeout = 3 * time.Minute
	// recordMargin is the time recorded before a fault starts (the chart's lead-in).
	recordMargin = 15 * time.Second
	// migrationEndTimeout bounds the wait for the migration under test after the last
	// experiment: the report says whether it ended in a good state.
	migrationEndTimeout = 10 * time.Minute
)

type gameDay struct {
	run     GameDayRun
	trust   *trust
	stopped bool
	// stop is set by the stop update; stopAsked is its future.
	stop      workflow.Settable
	stopAsked workflow.Future
}

// GameDay runs a game (see the file comment).
func GameDay(ctx workflow.Context, in GameDayInput) (GameDayRun, error) {
	info := workflow.GetInfo(ctx)
	g := &gameDay{run: GameDayRun{
		ID: info.WorkflowExecution.ID, Spec: in.Spec, State: GameDayRunning, StartedBy: in.StartedBy,
		Started: workflow.Now(ctx), MigrationID: in.MigrationID,
	}}
	for _, e := range in.Spec.Experiments {
		g.run.Experiments = append(g.run.Experiments, ExperimentRun{Name: e.Name, Fault: e.Fault, State: ExperimentPending})
	}
	g.trust = gameTrust(ctx)
	if err := g.verifyStart(ctx, in); err != nil {
		return g.run, err
	}
	g.stopAsked, g.stop = workflow.NewFuture(ctx)
	if err := g.handlers(ctx); err != nil {
		return g.run, err
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	if in.Spec.Record != nil {
		if err := workflow.ExecuteActivity(actx, r53.ReadWeights, *in.Spec.Record).Get(ctx, &g.run.StartWeights); err != nil {
			g.note("could not read the weights at the start: " + err.Error())
		}
	}

	// The experiments run under a context a stop cancels; the clean-up after it does not.
	ectx, cancel := workflow.WithCancel(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		_ = g.stopAsked.Get(ctx, nil)
		cancel()
	})
	if in.Spec.Mode == GameDayHidden {
		for i := range in.Spec.Experiments {
			g.experiment(ectx, i, workflow.Now(ctx).Add(in.Spec.Experiments[i].StartAfter))
		}
	} else {
		// Informed experiments start at their own times from the game's start and may
		// overlap: each runs in its own coroutine.
		wg := workflow.NewWaitGroup(ctx)
		for i := range in.Spec.Experiments {
			wg.Add(1)
			workflow.Go(ectx, func(ctx workflow.Context) {
				defer wg.Done()
				g.experiment(ctx, i, g.run.Started.Add(in.Spec.Experiments[i].StartAfter))
			})
		}
		wg.Wait(ctx)
	}

	// Clean-up: every fault the game injected that is still there (all of them after a
	// stop), the records of experiments a stop cut short, the migration's end.
	dctx, _ := workflow.NewDisconnectedContext(actx)
	var cleared int
	if err := workflow.ExecuteActivity(dctx, gameActs.ClearFaults, g.run.ID).Get(dctx, &cleared); err != nil {
		g.note("could not clear the game's faults: " + err.Error())
	} else if cleared > 0 {
		g.note(fmt.Sprintf("cleared %d fault(s) still active at the end", cleared))
	}
	for i := range g.run.Experiments {
		if e := &g.run.Experiments[i]; !e.Start.IsZero() && e.Records == nil {
			if e.End.IsZero() {
				e.End = workflow.Now(ctx) // cut short by a stop
			}
			g.collect(dctx, i)
			e.State = ExperimentDone
		}
	}
	if in.MigrationID != "" {
		wait := migrationEndTimeout
		if g.stopped {
			wait = 0
		}
		mctx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
			StartToCloseTimeout: wait + time.Minute, HeartbeatTimeout: 30 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 5},
		})
		var end gameday.MigrationEnd
		if err := workflow.ExecuteActivity(mctx, gameActs.AwaitMigrationEnd, in.MigrationID, wait).Get(dctx, &end); err != nil {
			g.note("could not read the migration's end: " + err.Error())
		} else {
			g.run.Migration = &end
		}
	}
	if in.Spec.Record != nil {
		if err := workflow.ExecuteActivity(dctx, r53.ReadWeights, *in.Spec.Record).Get(dctx, &g.run.EndWeights); err != nil {
			g.note("could not read the weights at the end: " + err.Error())
		}
	}
	g.run.State = GameDayCompleted
	if g.stopped {
		g.run.State = GameDayStopped
	}
	g.run.Ended = workflow.Now(ctx)
	return g.run, nil
}

// experiment runs experiment i from at: wait, inject, hold, clear, await the steady state,
// collect. A stop cancels ctx at any point; the clean-up collects what was injected.
func (g *gameDay) experiment(ctx workflow.Context, i int, at time.Time) {
	spec := g.run.Spec.Experiments[i]
	e := &g.run.Experiments[i]
	if g.stopped || workflow.Sleep(ctx, max(0, at.Sub(workflow.Now(ctx)))) != nil {
		e.State = ExperimentSkipped
		return
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	// The id names this run's experiment i, so a retried injection finds its own fault.
	f := control.Fault{ID: fmt.Sprintf("gameday-%s-%d", workflow.GetInfo(ctx).WorkflowExecution.RunID, i),
		Target: spec.Fault.Target, Kind: spec.Fault.Kind, Rate: spec.Fault.Rate,
		LatencyMs: spec.Fault.LatencyMs, Command: spec.Fault.Command, Code: spec.Fault.Code}
	var inj gameday.InjectedFault
	err := workflow.ExecuteActivity(actx, gameActs.InjectFault,
		gameday.InjectFaultInput{Owner: g.run.ID, Fault: f, Duration: spec.Duration}).Get(ctx, &inj)
	if err != nil {
		e.State = ExperimentSkipped
		if !temporal.IsCanceledError(err) {
			g.note(fmt.Sprintf("%s: the fault was not injected: %s", spec.Name, failureLine(err)))
		}
		return
	}
	e.FaultID, e.Start, e.State = inj.ID, inj.Start, ExperimentInjected
	// The sandbox ends the fault on its own clock (it was added with its duration); the
	// game waits as long, then clears what is left (a fault the sandbox has not expired
	// yet, by a hair).
	_ = workflow.Sleep(ctx, max(0, e.Start.Add(spec.Duration).Sub(workflow.Now(ctx))))
	if ctx.Err() != nil {
		return
	}
	e.End = workflow.Now(ctx)
	if err := workflow.ExecuteActivity(actx, gameActs.DeleteFault, inj.ID).Get(ctx, nil); err != nil && !temporal.IsCanceledError(err) {
		g.note(fmt.Sprintf("%s: clearing the fault: %s", spec.Name, failureLine(err)))
	}
	e.State = ExperimentRecovering
	sctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: recoveryTimeout + time.Minute, HeartbeatTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var steady gameday.SteadyStateOutput
	err = workflow.ExecuteActivity(sctx, gameActs.AwaitSteadyState, gameday.SteadyStateInput{
		Regions: g.run.Spec.Regions, MaxErrorRate: g.run.Spec.MaxErrorRate, Hold: steadyHold, Timeout: recoveryTimeout,
	}).Get(ctx, &steady)
	switch {
	case err != nil && ctx.Err() != nil:
		return
	case err != nil:
		g.note(fmt.Sprintf("%s: watching the steady state: %s", spec.Name, failureLine(err)))
	case steady.Healthy:
		e.Steady = steady.At
	default:
		g.note(fmt.Sprintf("%s: the steady state did not come back within %s (%s)", spec.Name, recoveryTimeout, steady.Detail))
	}
	g.collect(ctx, i)
	e.State = ExperimentDone
}

// collect reads experiment i's records: from recordMargin before its fault to now.
func (g *gameDay) collect(ctx workflow.Context, i int) {
	e := &g.run.Experiments[i]
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	from := e.Start.Add(-recordMargin)
	to := workflow.Now(ctx).Add(time.Second)
	if max := from.Add(control.MaxSeriesSec * time.Second); to.After(max) {
		to = max
	}
	var rec gameday.Records
	err := workflow.ExecuteActivity(actx, gameActs.Collect, gameday.CollectInput{
		From: from, To: to, WeightsSince: g.run.Started, Record: g.run.Spec.Record, Migration: g.run.MigrationID,
	}).Get(ctx, &rec)
	if err != nil {
		g.note(fmt.Sprintf("%s: collecting the records: %s", e.Name, failureLine(err)))
		return
	}
	e.Records = &rec
}

func (g *gameDay) note(s string) { g.run.Notes = append(g.run.Notes, s) }

// handlers registers the query and the updates.
func (g *gameDay) handlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryGameDay, func() (GameDayRun, error) { return g.run, nil }); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateGameDayPress,
		func(ctx workflow.Context, req GameDayPressRequest) (GameDayPress, error) {
			if err := g.checkPress(req, workflow.Now(ctx)); err != nil {
				return GameDayPress{}, err
			}
			p := GameDayPress{Time: workflow.Now(ctx), Action: strings.TrimPrefix(req.Action, "gameday-"),
				Identity: req.Identity, Team: g.run.Spec.TeamOf(req.Identity), Note: req.Note}
			g.run.Presses = append(g.run.Presses, p)
			g.usePress(req)
			return p, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(req GameDayPressRequest) error {
			if req.Action != PressDetect && req.Action != PressMitigate {
				return fmt.Errorf("action %q: a press is %s or %s", req.Action, PressDetect, PressMitigate)
			}
			if g.run.State != GameDayRunning || g.stopped {
				return errors.New("the game has ended: presses count while it runs")
			}
			if g.run.Spec.TeamOf(req.Identity) == "" {
				return fmt.Errorf("%s is in no team of this GameDay (%s): only players' presses are scored", req.Identity, teamList(g.run.Spec))
			}
			return nil
		}}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateGameDayStop,
		func(ctx workflow.Context, req GameDayPressRequest) (string, error) {
			if err := g.checkPress(req, workflow.Now(ctx)); err != nil {
				return "", err
			}
			g.stopped = true
			g.run.StoppedBy = req.Identity
			g.usePress(req)
			g.stop.Set(nil, nil)
			return "stopping: the game's faults are being cleared", nil
		},
		workflow.UpdateHandlerOptions{Validator: func(req GameDayPressRequest) error {
			if req.Action != PressStop {
				return fmt.Errorf("action %q is not %s", req.Action, PressStop)
			}
			if g.stopped || g.run.State != GameDayRunning {
				return errors.New("the game is stopping already")
			}
			return nil
		}})
}

func teamList(s GameDaySpec) string {
	var names []string
	for _, t := range s.Teams {
		names = append(names, t.Name+": "+strings.Join(t.Members, ", "))
	}
	return strings.Join(names, "; ")
}

// gameTrust loads the worker's trusted keys for this run, as migrations do.
func gameTrust(ctx workflow.Context) *trust {
	keys := proof.Keys{}
	if err := workflow.SideEffect(ctx, func(ctx workflow.Context) any {
		k, _ := ctx.Value(trustKey{}).(proof.Keys)
		return k
	}).Get(&keys); err != nil || keys == nil {
		keys = proof.Keys{}
	}
	return &trust{keys: keys}
}

// verifyStart refuses a game the API did not start (its start proof names this game and
// this input): a game injects faults, and its scores must come from a start the API
// checked.
func (g *gameDay) verifyStart(ctx workflow.Context, in GameDayInput) error {
	if !g.trust.enforced() {
		return nil
	}
	info := workflow.GetInfo(ctx)
	c, err := in.StartProof.Verify(g.trust.keys, info.WorkflowStartTime)
	switch {
	case err != nil:
	case c.Action != proof.ActionStart || c.Migration != info.WorkflowExecution.ID:
		err = fmt.Errorf("the proof is for %s of %s", c.Action, c.Migration)
	case c.InputHash != StartDigest(in):
		err = errors.New("the input differs from the one the API checked")
	}
	if err == nil {
		return nil
	}
	return temporal.NewNonRetryableApplicationError("refused: this GameDay was not started through ferry's API: "+err.Error()+"; start it with `ferry gameday run`", ErrNotStartedByAPI, nil)
}

// checkPress checks a press's proof: signed by the API for this game, this action and the
// identity it claims, unexpired, not used before.
func (g *gameDay) checkPress(req GameDayPressRequest, now time.Time) error {
	if !g.trust.enforced() {
		return nil
	}
	c, err := req.Proof.Verify(g.trust.keys, now)
	switch {
	case err != nil:
		return fmt.Errorf("%s refused: %w; press through ferry's API (`ferry gameday`)", req.Action, err)
	case c.Action != req.Action:
		return fmt.Errorf("%s refused: the proof is for %q", req.Action, c.Action)
	case c.Identity != req.Identity:
		return fmt.Errorf("%s refused: the proof is %s's, not %s's", req.Action, c.Identity, req.Identity)
	case c.Migration != g.run.ID:
		return fmt.Errorf("%s refused: the proof is for %s, not this game (%s)", req.Action, c.Migration, g.run.ID)
	case slices.Contains(g.trust.nonces, c.Nonce):
		return fmt.Errorf("%s refused: this proof was used already", req.Action)
	}
	return nil
}

func (g *gameDay) usePress(req GameDayPressRequest) {
	if req.Proof != nil {
		g.trust.nonces = append(g.trust.nonces, req.Proof.Claims.Nonce)
	}
}

// slug makes a workflow-id part of a name: lower case, runs of other characters as "-".
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	if out := strings.TrimSuffix(b.String(), "-"); out != "" {
		return out
	}
	return "game" // a name of other letters only
}
