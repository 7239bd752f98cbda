package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The lifecycle every kind shares: the plan hash and the drift check against it, step
// statuses, the one-line failure text, and how a run ends (completed, cancelled, failed
// with its changes undone or reported).

// Step statuses of StepProgress.
const (
	StepPending    = "pending"
	StepRunning    = "running"
	StepDone       = "done"
	StepFailed     = "failed"
	StepRolledBack = "rolled-back"
)

// planHashChars is how much of the sha256 a plan hash shows.
const planHashChars = 16

// PlanHash is the one way every kind hashes a plan: sha256 over the version string and a
// canonical JSON encoding of doc (the spec and the observed state) from which every zero
// value (empty string, 0, false, null, empty list or object) is dropped, first 16 hex
// characters. Dropping zeros means a field added to a spec later, left at its default,
// does not change the hashes of plans made before it; the version changes whenever the
// encoding of something already hashed does.
func PlanHash(version string, doc any) string {
	b, err := json.Marshal(doc)
	if err == nil {
		var v any
		if err = json.Unmarshal(b, &v); err == nil {
			// encoding/json writes maps with sorted keys, so this encoding is canonical.
			b, err = json.Marshal(dropZero(v))
		}
	}
	if err != nil {
		// Only values JSON cannot hold (a NaN) fail, and package spec rejects those; the
		// message keeps the hash stable for the same bad input.
		b = fmt.Appendf(nil, "unencodable: %v", err)
	}
	sum := sha256.Sum256(append([]byte(version+"\n"), b...))
	return hex.EncodeToString(sum[:])[:planHashChars]
}

// dropZero removes zero values from decoded JSON, recursively. It returns nil for a zero.
func dropZero(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if z := dropZero(e); z == nil {
				delete(t, k)
			} else {
				t[k] = z
			}
		}
		if len(t) == 0 {
			return nil
		}
		return t
	case []any:
		// Elements keep their places (a zero in a list is meaningful), only an empty list goes.
		if len(t) == 0 {
			return nil
		}
		return t
	case string:
		if t == "" {
			return nil
		}
	case float64:
		if t == 0 {
			return nil
		}
	case bool:
		if !t {
			return nil
		}
	}
	return v
}

// checkDrift refuses to go on when the plan was pinned to another hash than the one the
// state read now gives. seen names what was read, for the message; legacy are the hashes
// the same plan had under earlier encodings (see planhash_v1.go), which a pin may name.
func checkDrift(pinned, now, seen string, legacy ...string) error {
	if pinned == "" || pinned == now || slices.Contains(legacy, pinned) {
		return nil
	}
	msg := fmt.Sprintf("plan drifted: the plan approved had hash %s, but the state read now gives %s", pinned, now)
	if seen != "" {
		msg += " (" + seen + ")"
	}
	msg += "; run `ferry plan` again and start with the new hash"
	return temporal.NewNonRetryableApplicationError(msg, ErrPlanDrifted, nil)
}

// failureLine is a failure as people read it: the root cause once, without the envelopes
// (child workflow, activity, application error) each of which repeats the message below.
func failureLine(err error) string {
	if err == nil {
		return ""
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		line := "timed out (" + strings.ToLower(strings.TrimPrefix(te.TimeoutType().String(), "TIMEOUT_TYPE_")) + ")"
		// A schedule-to-close timeout carries the last attempt's failure: the cause people
		// need ("Throttling", "connection refused"), not only that time ran out.
		if cause := te.Unwrap(); cause != nil {
			if c := failureLine(cause); c != "" {
				line += ": " + c
			}
		}
		return line
	}
	// Each wrapper (a child's, a phase's) says what failed and usually repeats its cause's
	// text; the line keeps the outermost and adds only what it does not already say.
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		return strings.TrimSpace(err.Error())
	}
	line := ae.Message()
	for inner := ae.Unwrap(); inner != nil; {
		var next *temporal.ApplicationError
		if !errors.As(inner, &next) {
			break
		}
		if m := next.Message(); m != "" && !strings.Contains(line, m) {
			if line == "" {
				line = m
			} else {
				line += ": " + m
			}
		}
		inner = next.Unwrap()
	}
	return strings.TrimSpace(line)
}

// keepTrying runs an undo step until it succeeds or the run is cancelled: an undo that
// gives up leaves a half-migrated resource, so a failure past the step's retry budget
// shows the run blocked (state, message, search attribute) and tries again at the blocked
// pace. Only cancellation (a person) stops it.
func keepTrying(ctx workflow.Context, s *Steering, b Budgets, what string, step func(ctx workflow.Context) error) error {
	var since time.Time
	for {
		err := step(ctx)
		if err == nil {
			s.Unblock(ctx, what)
			return nil
		}
		if temporal.IsCanceledError(err) || ctx.Err() != nil {
			return err
		}
		if since.IsZero() {
			since = workflow.Now(ctx)
		}
		s.Block(ctx, what, since, failureLine(err))
		if werr := workflow.Sleep(ctx, b.BlockedPace); werr != nil {
			return werr
		}
	}
}

// holdThrough runs a forward step through an outage. A step whose attempt (bounded by the
// StepAttempt budget) ends in a retryable error (the cloud is failing, not the request
// wrong) holds the run blocked ("<what> blocked: <error>, retrying since <time>" in the
// state, the message, the search attribute and the audit) and tries again at the blocked
// pace, so a person can choose: wait, roll back or cancel. A permanent error (bad input,
// permission denied, drift: a non-retryable application error) ends the step at once, as
// does a rollback asked for while it holds (the run's end then undoes what it changed).
//
// Not for steps taken while writes are frozen or a broker drains: there a step that cannot
// finish within its budget must fail fast so the freeze is undone at once.
func holdThrough(ctx workflow.Context, s *Steering, b Budgets, what string, step func(ctx workflow.Context) error) error {
	var since time.Time
	for {
		err := step(ctx)
		if err == nil {
			s.Unblock(ctx, what)
			return nil
		}
		if temporal.IsCanceledError(err) || ctx.Err() != nil || isPermanent(err) || s.RollbackRequest() != nil {
			return err
		}
		// Asked only on a failure, so a step that succeeds records no marker; a run that
		// failed such a step before holding existed fails it again on replay.
		if workflow.GetVersion(ctx, "hold-through-outages", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			return err
		}
		if since.IsZero() {
			// A run that continued as new while blocked keeps the time the block began.
			since = s.blockedSince
			if since.IsZero() {
				since = workflow.Now(ctx)
			}
		}
		s.Block(ctx, what, since, failureLine(err))
		// A rollback asked for while blocked is taken at once, not after the pause.
		if _, werr := workflow.AwaitWithTimeout(ctx, b.BlockedPace, func() bool { return s.RollbackRequest() != nil }); werr != nil {
			return werr
		}
		if s.RollbackRequest() != nil {
			return err
		}
		// An outage can last a weekend: between attempts is a safe point to hand over.
		if s.shouldContinue(ctx) {
			return errContinue
		}
	}
}

// isPermanent reports whether err is an application error marked non-retryable anywhere in
// its chain: bad input, permission denied, drift. Retries exhausted on a retryable error,
// or a timeout, are not permanent: the cloud may come back.
func isPermanent(err error) bool {
	for err != nil {
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) {
			return false
		}
		if ae.NonRetryable() {
			return true
		}
		err = ae.Unwrap()
	}
	return false
}

// undoAttempt is the schedule-to-close bound of a step's activity: while the run rolls
// back, one attempt at an undo step is bounded by the budget (keepTrying starts the next);
// otherwise 0, the activity's own retry policy alone.
func undoAttempt(s *Steering, c Common) time.Duration {
	if s.RollingBack() {
		return c.budgets().UndoAttempt
	}
	return 0
}

// stepAttempt is the schedule-to-close bound of one attempt at a step that holdThrough
// (forward) or keepTrying (undo) repeats: the undo budget while rolling back, else the
// forward step budget.
func stepAttempt(s *Steering, c Common) time.Duration {
	if s.RollingBack() {
		return c.budgets().UndoAttempt
	}
	return c.budgets().StepAttempt
}

// kindRun is what a kind's run lends the shared lifecycle.
type kindRun[R any] interface {
	steering() *Steering
	common() Common
	// changes is what the run has changed so far (its change report).
	changes() Changes
	// execute migrates; undoRecorded undoes Common.Undo (an undo run); rollback undoes
	// this run's own changes in place.
	execute(ctx workflow.Context) (R, error)
	undoRecorded(ctx workflow.Context) (R, error)
	rollback(ctx workflow.Context) (R, error)
	// resultOf builds the kind's result around an outcome.
	resultOf(o Outcome) R
}

// runKind runs a kind's migration, or its undo run, and ends it the one way every kind
// ends (runEnd.end). what names the kind in logs.
func runKind[R any](ctx workflow.Context, what string, k kindRun[R]) (R, error) {
	var res R
	var err error
	c := k.common()
	s := k.steering()
	s.countStart(ctx)
	if c.Undo != nil {
		s.Audit(ctx, SystemIdentity, "undo", fmt.Sprintf("undo of %s: %s (%s)", c.Undo.ID, c.Undo.InEffect, c.Reason), "")
		// The kind's rollback does the work; the request names why, for its messages.
		s.RequestRollback(ctx, "undo of "+c.Undo.ID+": "+c.Reason, "")
		res, err = k.undoRecorded(ctx)
	} else {
		res, err = k.execute(ctx)
	}
	if isContinue(err) {
		return res, err // the kind's workflow function continues as new with its state
	}
	res, err = runEnd[R]{
		ctx: ctx, s: s, log: s.Logger(), onFailure: c.OnFailure, what: what,
		changes: k.changes, undo: k.rollback, result: k.resultOf,
	}.end(res, err)
	s.countEnd(ctx)
	return res, err
}

// runEnd is what a kind lends endRun: its steering, its changes so far, how to undo them
// in place, and how to build its result.
type runEnd[R any] struct {
	ctx       workflow.Context
	s         *Steering
	log       log.Logger
	onFailure string
	// what names the run for logs, e.g. "dns shift".
	what    string
	changes func() Changes
	// undo undoes the changes in place (the kind's own rollback) with why as the reason.
	undo func(ctx workflow.Context) (R, error)
	// result builds the kind's result around the outcome.
	result func(o Outcome) R
}

// end finishes a run whose execute returned err (nil: res is final). A cancelled run stops
// where it is (someone chose to stop there; every state a kind leaves between steps is
// valid) and reports what is in effect. A failed run undoes its changes by default, so a
// kind run alone that fails part-way ends where it started; with OnFailureLeave, or when
// the undo fails too, it ends failed with a message that names what is still in effect and
// the change report in the error's details for its parent or a person.
func (e runEnd[R]) end(res R, err error) (R, error) {
	if err == nil {
		return res, nil
	}
	ctx := e.ctx
	if e.isCancel(err) {
		return e.cancelled(err)
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Type() == ErrMigrationFailed {
		return res, err // already finished with its own message (a failed undo)
	}
	line := failureLine(err)
	e.log.Error(e.what+" failed", "error", err)
	if e.s.RollingBack() {
		// The rollback itself failed (asked for, or after a gate): what it could not undo
		// is still in effect.
		line = "rollback failed: " + line
		e.s.AuditDetails(ctx, SystemIdentity, "rollback failed", line, "", err.Error())
		return e.fail(line, e.changes(), err)
	}
	e.s.AuditDetails(ctx, SystemIdentity, "failed", line, "", err.Error())
	ch := e.changes()
	// A rollback someone asked for is never lost to a step that failed meanwhile: it is
	// honoured even when the run was told to leave its changes on failure.
	if !ch.None() && (e.onFailure != OnFailureLeave || e.s.RollbackRequest() != nil) {
		e.s.RequestRollback(ctx, "failed: "+line, "")
		res, uerr := e.undo(ctx)
		if uerr == nil {
			return res, nil
		}
		if e.isCancel(uerr) {
			// A person stopped the undo (it never gives up on its own).
			return e.cancelled(uerr)
		}
		line = fmt.Sprintf("%s; the rollback failed too: %s", line, failureLine(uerr))
		e.s.AuditDetails(ctx, SystemIdentity, "rollback failed", failureLine(uerr), "", uerr.Error())
		ch = e.changes()
	}
	return e.fail(line, ch, err)
}

func (e runEnd[R]) isCancel(err error) bool {
	return temporal.IsCanceledError(err) || errors.Is(e.ctx.Err(), workflow.ErrCanceled)
}

// cancelled finishes a run a person cancelled: it stops where it is (every state a kind
// leaves between steps is valid) and reports what is in effect.
func (e runEnd[R]) cancelled(err error) (R, error) {
	dctx, cancel := workflow.NewDisconnectedContext(e.ctx)
	defer cancel()
	ch := e.changes()
	msg := "cancelled; " + inEffectText(ch)
	e.s.Audit(dctx, SystemIdentity, "cancelled", msg, "")
	e.s.Finish(dctx, StateCancelled, msg)
	e.log.Info(e.what+" cancelled", "inEffect", ch.InEffect)
	return e.result(Outcome{State: StateCancelled, Message: msg, Changes: ch}), err
}

// fail finishes the run as failed with ch in effect and returns the error that carries the
// result (and so the change report) in its details.
func (e runEnd[R]) fail(line string, ch Changes, cause error) (R, error) {
	msg := "failed: " + readable(line) + "; " + inEffectText(ch)
	e.s.Finish(e.ctx, StateFailed, msg)
	res := e.result(Outcome{State: StateFailed, Message: msg, Changes: ch, Failure: line})
	return res, temporal.NewNonRetryableApplicationError(msg, ErrMigrationFailed, flatCause(cause), res)
}

// flatCause is cause as one error with no chain below it: the innermost application
// error's type (what HasErrorType and a parent look for) and the chain said once
// (failureLine). The Temporal UI shows a failure's causes nested, and each envelope (the
// child, the phase, the activity) repeated the message below it, so a failed phase read
// as a five-deep chain of one sentence. Only the failure's content changes, not the
// commands, so no GetVersion is needed (docs/design.md, Versioning).
func flatCause(cause error) error {
	if cause == nil {
		return nil
	}
	typ := ""
	for err := cause; err != nil; {
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) {
			break
		}
		typ = ae.Type()
		err = ae.Unwrap()
	}
	return temporal.NewNonRetryableApplicationError(readable(failureLine(cause)), typ, nil)
}

// inEffectText says what is still changed, for the final message.
func inEffectText(ch Changes) string {
	if ch.None() {
		return "nothing was changed"
	}
	return "still in effect: " + ch.InEffect
}

// HasErrorType reports whether err, or an error it wraps (a child's or an activity's),
// is an application error of type typ: a failed run's error is ErrMigrationFailed with the
// cause below it.
func HasErrorType(err error, typ string) bool {
	for err != nil {
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) {
			return false
		}
		if ae.Type() == typ {
			return true
		}
		err = ae.Unwrap()
	}
	return false
}
