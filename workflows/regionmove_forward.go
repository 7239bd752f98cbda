package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/proof"
)

// The region move passes steering on to the phase that runs: approvals and resumes sent
// to the parent reach the running child, and the parent's pause and rollback follow it
// there. Only Steering's exported API is used, so the rules (four-eyes among them) stay in
// one place.

// runningChild is the phase whose child runs now: signals for it are forwarded there.
type runningChild struct {
	phase string
	id    string
	fut   workflow.ChildWorkflowFuture
	done  bool
}

// forwardingActions takes over approve and resume from the steering: while a child runs
// and the parent itself holds no gate, they reach the child, by API update or by a signal
// from the Temporal UI alike. The child re-checks everything with the identity carried
// unchanged; the parent checks the four-eyes rule first so an API caller gets an immediate
// no in the common cases. (The handlers run after setup, when w.s is set.)
func (w *regionMove) forwardingActions() map[string]ActionHandler {
	forwarding := func() bool {
		return !w.s.AwaitingApproval() && w.running != nil && !w.running.done && !w.s.Finished()
	}
	validateApprove := func(req ActionRequest) error {
		if !forwarding() {
			return w.s.ValidateApprove(req)
		}
		// Signed for this move, naming the running phase; the phase checks the gate.
		if err := w.s.checkProof(req, proof.ActionApprove, "", w.running.id); err != nil {
			return err
		}
		return w.s.CheckApprover(req)
	}
	applyApprove := func(ctx workflow.Context, req ActionRequest) (ActionResult, error) {
		if !forwarding() {
			return w.s.Approve(ctx, req), nil
		}
		return w.forward(ctx, SignalApprove, "approve", req)
	}
	validateResume := func(req ActionRequest) error {
		if w.s.Paused() || !forwarding() {
			return w.s.ValidateResume(req)
		}
		return nil
	}
	applyResume := func(ctx workflow.Context, req ActionRequest) (ActionResult, error) {
		if w.s.Paused() {
			// The watcher in await forwards the resume to the running child.
			return w.s.Resume(ctx, req), nil
		}
		// The parent is not paused, but the child may be (e.g. its gate paused it).
		return w.forward(ctx, SignalResume, "resume", req)
	}
	return map[string]ActionHandler{
		"approve": {Validate: validateApprove, Apply: applyApprove},
		"resume":  {Validate: validateResume, Apply: applyResume},
	}
}

// forward signals the running child with the request unchanged (identity included).
func (w *regionMove) forward(ctx workflow.Context, signal, action string, req ActionRequest) (ActionResult, error) {
	rc := w.running
	if rc == nil || rc.done {
		return ActionResult{}, errors.New("no phase is running to forward to")
	}
	if err := w.signalChild(ctx, rc, signal, req); err != nil {
		return ActionResult{}, fmt.Errorf("forward %s to %s: %w", action, rc.id, err)
	}
	msg := fmt.Sprintf("forwarded %s to phase %s (%s); it checks its own rules and records the outcome in its audit trail", action, rc.phase, rc.id)
	w.s.Audit(ctx, req.Identity, action+" forwarded", joinReason(req.Reason, rc.id), req.Step)
	return ActionResult{State: w.s.State(), Message: msg}, nil
}

// await waits for a child while forwarding the parent's rollback, pause and resume to it:
// a rollback requested while a phase runs is the phase's own rollback first (the child
// knows how to undo its partial work), then the parent unwinds the earlier phases.
func (w *regionMove) await(ctx workflow.Context, phase, id string, fut workflow.ChildWorkflowFuture, out any) error {
	rc := &runningChild{phase: phase, id: id, fut: fut}
	w.running = rc
	w.setPhaseState(ctx, phase, PhaseRunning, "")
	defer func() {
		rc.done = true
		w.running = nil
		if w.blockedBy == id {
			// The child ended (done, cancelled) while blocked: so did its block.
			w.blockedBy = ""
			w.s.Unblock(ctx, "phase "+phase)
		}
		w.publish(ctx)
	}()
	var err error
	workflow.Go(ctx, func(gctx workflow.Context) {
		err = fut.Get(gctx, out)
		rc.done = true
	})
	rollbackSent := false
	forwardedPause := false
	for {
		if werr := workflow.Await(ctx, func() bool {
			return rc.done || (!rollbackSent && w.s.RollbackRequest() != nil) || w.s.Paused() != forwardedPause
		}); werr != nil {
			// Cancelled: the child is cancelled with the parent's context; wait for it
			// (WaitForCancellation) so the phase's record is final.
			dctx, cancel := workflow.NewDisconnectedContext(ctx)
			defer cancel()
			_ = workflow.Await(dctx, func() bool { return rc.done })
			return werr
		}
		if rc.done {
			return err
		}
		if !rollbackSent && w.s.RollbackRequest() != nil {
			req := *w.s.RollbackRequest()
			rollbackSent = true
			w.setPhaseState(ctx, phase, PhaseRollingBack, "")
			if serr := w.signalChild(ctx, rc, SignalRollback, req); serr != nil && !rc.done {
				w.log.Warn("forward rollback", "child", id, "error", serr)
			}
			w.s.Audit(ctx, SystemIdentity, "rollback forwarded", "to running phase "+phase+" ("+id+")", phase)
			continue
		}
		if w.s.Paused() != forwardedPause {
			forwardedPause = w.s.Paused()
			sig, action := SignalPause, "pause"
			if !forwardedPause {
				sig, action = SignalResume, "resume"
			}
			req := w.s.LastAction(action)
			if serr := w.signalChild(ctx, rc, sig, req); serr != nil && !rc.done {
				w.log.Warn("forward "+action, "child", id, "error", serr)
			}
			w.s.Audit(ctx, req.Identity, action+" forwarded", "to running phase "+phase+" ("+id+")", phase)
		}
	}
}

// signalChild signals the running child: a signal sent by workflow id alone reaches
// whatever runs under that id then, and before the child's start is recorded that could be
// another run. So it waits for the start first (or for the child to end). Once the start is
// recorded and the child has not ended, the id's current run is the child's chain: version
// 1 signalled the first run by its run id, which a child that continued as new has closed;
// version 2 signals the chain's current run.
func (w *regionMove) signalChild(ctx workflow.Context, rc *runningChild, signal string, req ActionRequest) error {
	exec := rc.fut.GetChildWorkflowExecution()
	v := workflow.GetVersion(ctx, "forward-to-exact-run", workflow.DefaultVersion, 2)
	if v == workflow.DefaultVersion {
		return w.signalChildV0(ctx, rc, signal, req)
	}
	// A real server records a child's start within milliseconds of the command; the wait
	// is bounded only because the SDK's test environment reports a blocked child's start
	// late, and then the signal goes by id as before.
	if _, err := workflow.AwaitWithTimeout(ctx, startRecordWait, func() bool { return exec.IsReady() || rc.done }); err != nil {
		return err
	}
	id, runID := rc.id, ""
	if exec.IsReady() {
		var e workflow.Execution
		if err := exec.Get(ctx, &e); err != nil {
			return err
		}
		// The id the child really runs under: a move started by an older ferry named its
		// children as that version did.
		id, runID = e.ID, e.RunID
		if v >= 2 {
			runID = ""
		}
	}
	return workflow.SignalExternalWorkflow(ctx, id, runID, signal, req).Get(ctx, nil)
}

// startRecordWait bounds signalChild's wait for a child's start to be recorded.
const startRecordWait = 10 * time.Second

// signalChildV0 is how runs started before forward-to-exact-run signalled (kept so their
// histories replay): by workflow id alone when the start was not yet recorded.
func (w *regionMove) signalChildV0(ctx workflow.Context, rc *runningChild, signal string, req ActionRequest) error {
	exec := rc.fut.GetChildWorkflowExecution()
	runID := ""
	if exec.IsReady() {
		var e workflow.Execution
		if err := exec.Get(ctx, &e); err != nil {
			return err
		}
		runID = e.RunID
	}
	err := workflow.SignalExternalWorkflow(ctx, rc.id, runID, signal, req).Get(ctx, nil)
	if err == nil || rc.done || runID != "" {
		return err
	}
	if aerr := workflow.Await(ctx, func() bool { return exec.IsReady() || rc.done }); aerr != nil || rc.done {
		return err
	}
	var e workflow.Execution
	if gerr := exec.Get(ctx, &e); gerr != nil {
		return gerr
	}
	return workflow.SignalExternalWorkflow(ctx, rc.id, e.RunID, signal, req).Get(ctx, nil)
}

// watchPhaseBlocks shows a phase's blocked state on the move itself (state, message,
// search attribute), so the run a person watches, and an alert on FerryState, see that a
// phase's undo or step keeps failing.
func (w *regionMove) watchPhaseBlocks(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, SignalPhaseBlocked)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var n BlockNote
			ch.Receive(ctx, &n)
			what := "phase " + w.phaseNamed(n.ChildID) + ": " + n.What
			if n.Blocked {
				w.blockedBy = n.ChildID
				w.s.Block(ctx, what, n.Since, n.Error)
			} else if w.blockedBy == n.ChildID {
				w.blockedBy = ""
				w.s.Unblock(ctx, what)
			}
		}
	})
}

// phaseNamed names the phase whose child has id, or the id itself.
func (w *regionMove) phaseNamed(id string) string {
	for _, ph := range w.phases {
		if ph.MigrationID == id || ph.RollbackID == id {
			return ph.Name
		}
	}
	return id
}
