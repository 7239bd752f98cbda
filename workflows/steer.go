package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/proof"
)

// Steering is the part every migration shares: the audit trail, approvals (N distinct
// approvers, four-eyes), pause and resume, rollback requests, state and phase kept in the
// search attributes and the Temporal UI's current details, and the progress query.
//
// A migration workflow creates one in its setup, drives it from its run loop (SetPhase,
// StartStep, AwaitApproval, WaitWhilePaused, RollbackRequest, Finish) and fills its own
// part of Progress through Update. Handlers registered here serve both the signals (which
// the Temporal UI and CLI can send, so they re-check every rule and audit refusals) and
// the updates (which run the same checks as validators so callers get an immediate no).
//
// Steering holds workflow state only; it is deterministic and must be used from workflow
// code.
type Steering struct {
	opts   SteeringOptions
	logger log.Logger

	p           Progress
	paused      bool
	rollback    *ActionRequest
	rollingBack bool
	// rollbackBegan is when the rollback began, for its duration metric.
	rollbackBegan time.Time
	// rollbackAsked is when the rollback was asked for, for its reaction-time metric.
	rollbackAsked time.Time
	finished      bool
	pending       *approvalGate
	// blocked says what keeps failing and since when, while a step retries at a slow pace.
	blocked      string
	blockedSince time.Time
	// runs counts the runs before this one in the migration's chain (continue-as-new).
	runs int
	// trust checks the API's proofs (steer_trust.go); nil for runs from before signing.
	trust *trust
	now   func() time.Time
	// self and parent are this run's workflow id and its parent's ("" when none).
	self, parent string
	// lastReq is the latest applied request of each action, proof included, so a composite
	// that passes an action on to its phase passes the proof too.
	lastReq map[string]ActionRequest
	// locks is how taking the run's resource locks went; nil until decided (UpdateLocks
	// waits for it).
	locks *LockResult

	// Last values written to search attributes and current details, so unchanged values
	// are not upserted again (each upsert is a history event).
	saState, saPhase, details string
	saAwaiting                bool
	saWritten                 bool
}

// SteeringOptions configures a Steering.
type SteeringOptions struct {
	Kind      string
	Initiator string
	PlanHash  string
	Approvals ApprovalPolicy
	// Details renders the Temporal UI's current details (markdown) from the progress;
	// nil uses a generic rendering.
	Details func(Progress) string
	// Logger is the workflow logger, scoped with the migration id.
	Logger log.Logger
	// Watch, when set, runs every WatchInterval while the migration holds (awaiting
	// approval or paused), so a target that breaks while people deliberate is still
	// noticed. It typically evaluates gates and calls RequestRollback; an error ends the
	// hold with that error.
	Watch         func(ctx workflow.Context) error
	WatchInterval time.Duration
	// Actions lets a migration take over an action ("approve", "pause", "resume",
	// "rollback"). The handler serves both the signal and the update, so a signal sent from
	// the Temporal UI is treated exactly like an API call (the region move forwards
	// approvals to its running child this way).
	Actions map[string]ActionHandler
	// ContinueAsNew says the kind carries its state into a new run when its history grows
	// long (continue.go): its holds then return errContinue when the server suggests it.
	ContinueAsNew bool
	// Start is the run's start proof and StartDigest its input's digest (steer_trust.go).
	Start       *proof.Proof
	StartDigest string
}

// ActionHandler validates and applies one action in place of the steering's own.
type ActionHandler struct {
	Validate func(ActionRequest) error
	Apply    func(workflow.Context, ActionRequest) (ActionResult, error)
}

type approvalGate struct {
	step       string
	required   int
	approvedBy []string
	done       bool
	// opened is when this run opened the gate, for the wait metric (zero for a gate a
	// previous run of the chain opened).
	opened time.Time
}

// NewSteering registers the progress query, the approve/pause/resume/rollback signals and
// updates, and writes the initial state.
func NewSteering(ctx workflow.Context, opts SteeringOptions) (*Steering, error) {
	if opts.Approvals.RequiredApprovers < 1 {
		opts.Approvals.RequiredApprovers = 1
	}
	if opts.Logger == nil {
		opts.Logger = workflow.GetLogger(ctx)
	}
	info := workflow.GetInfo(ctx)
	s := &Steering{
		opts:    opts,
		logger:  opts.Logger,
		now:     func() time.Time { return workflow.Now(ctx) },
		self:    info.WorkflowExecution.ID,
		lastReq: map[string]ActionRequest{},
		p: Progress{
			Kind:      opts.Kind,
			State:     StateRunning,
			Initiator: opts.Initiator,
			PlanHash:  opts.PlanHash,
		},
	}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) {
		return s.Progress(), nil
	}); err != nil {
		return nil, fmt.Errorf("register progress query: %w", err)
	}
	if err := s.registerLocks(ctx); err != nil {
		return nil, err
	}
	if p := info.ParentWorkflowExecution; p != nil {
		s.parent = p.ID
	}
	s.loadTrust(ctx)
	actions := []struct {
		signal, update string
		action         string
		validate       func(ActionRequest) error
		apply          func(workflow.Context, ActionRequest) string
	}{
		{SignalApprove, UpdateApprove, "approve", s.validateApprove, s.applyApprove},
		{SignalPause, UpdatePause, "pause", s.validatePause, s.applyPause},
		{SignalResume, UpdateResume, "resume", s.validateResume, s.applyResume},
		{SignalRollback, UpdateRollback, "rollback", s.validateRollback, s.applyRollback},
	}
	for _, a := range actions {
		validate := a.validate
		apply := func(ctx workflow.Context, req ActionRequest) (ActionResult, error) {
			msg := a.apply(ctx, req)
			return ActionResult{State: s.state(), Message: msg}, nil
		}
		if h, ok := opts.Actions[a.action]; ok {
			validate, apply = h.Validate, h.Apply
		}
		err := workflow.SetUpdateHandlerWithOptions(ctx, a.update,
			func(ctx workflow.Context, req ActionRequest) (ActionResult, error) {
				// The validator already ran, but re-checking keeps the handler safe if an
				// update is ever admitted without it (e.g. replays of older histories).
				if err := validate(req); err != nil {
					return ActionResult{}, err
				}
				return apply(ctx, req)
			},
			workflow.UpdateHandlerOptions{
				Validator: func(_ workflow.Context, req ActionRequest) error { return validate(req) },
			})
		if err != nil {
			return nil, fmt.Errorf("register update %s: %w", a.update, err)
		}
		ch := workflow.GetSignalChannel(ctx, a.signal)
		workflow.Go(ctx, func(ctx workflow.Context) {
			for {
				var req ActionRequest
				if more := ch.Receive(ctx, &req); !more {
					return
				}
				// Signals cannot be answered, so a refusal or failure is only visible here: in
				// the audit trail and the log.
				if err := validate(req); err != nil {
					s.logger.Warn("refused signal", "signal", a.signal, "identity", req.Identity, "reason", err.Error())
					// The identity is only claimed: the trail marks it so when no valid proof backs it.
					s.Audit(ctx, s.unverified(req, a.action), a.action+" refused", err.Error(), req.Step)
					continue
				}
				if _, err := apply(ctx, req); err != nil {
					s.logger.Warn("signal failed", "signal", a.signal, "identity", req.Identity, "error", err.Error())
					s.Audit(ctx, req.Identity, a.action+" failed", err.Error(), req.Step)
				}
			}
		})
	}
	s.refresh(ctx)
	if err := s.verifyStart(ctx, opts.Start, opts.StartDigest); err != nil {
		s.Finish(ctx, StateFailed, err.Error())
		return nil, err
	}
	return s, nil
}

// Logger returns the migration's logger.
func (s *Steering) Logger() log.Logger { return s.logger }

// Progress returns a copy of the progress for the query.
func (s *Steering) Progress() Progress {
	p := s.p
	p.State = s.state()
	p.Steps = slices.Clone(s.p.Steps)
	p.Audit = slices.Clone(s.p.Audit)
	if s.pending != nil && !s.pending.done {
		p.PendingApproval = &PendingApproval{
			Step:       s.pending.step,
			Required:   s.pending.required,
			ApprovedBy: slices.Clone(s.pending.approvedBy),
		}
	}
	// Each kind's part is copied too, so a caller holding the snapshot never sees (or makes)
	// a later change.
	if s.p.DNS != nil {
		d := *s.p.DNS
		d.Gates = slices.Clone(d.Gates)
		p.DNS = &d
	}
	if s.p.AMI != nil {
		a := *s.p.AMI
		a.Copies = slices.Clone(a.Copies)
		p.AMI = &a
	}
	if s.p.Mongo != nil {
		m := *s.p.Mongo
		m.Members = slices.Clone(m.Members)
		p.Mongo = &m
	}
	p.Phases = slices.Clone(s.p.Phases)
	return p
}

// state derives the state from the flags, so no code path can leave a stale state behind.
func (s *Steering) state() string {
	switch {
	case s.finished:
		return s.p.State
	case s.blocked != "":
		return StateBlocked
	case s.rollingBack:
		return StateRollingBack
	case s.paused:
		return StatePaused
	case s.pending != nil && !s.pending.done:
		return StateAwaitingApproval
	}
	return StateRunning
}

// --- what the workflow calls ---------------------------------------------------------------

// SetPhase records the phase (e.g. "step 2/5: 25%") and a one-line message.
func (s *Steering) SetPhase(ctx workflow.Context, phase, message string) {
	s.p.Phase, s.p.Message = phase, message
	s.refresh(ctx)
}

// SetMessage updates the one-line message only.
func (s *Steering) SetMessage(ctx workflow.Context, message string) {
	s.p.Message = message
	s.refresh(ctx)
}

// Update lets the migration change its own part of the progress (steps, DNS, ...).
func (s *Steering) Update(ctx workflow.Context, f func(p *Progress)) {
	f(&s.p)
	s.refresh(ctx)
}

// SetSteps replaces the step list (all pending).
func (s *Steering) SetSteps(ctx workflow.Context, names, details []string) {
	s.p.Steps = make([]StepProgress, len(names))
	for i, n := range names {
		s.p.Steps[i] = StepProgress{Name: n, Status: StepPending}
		if i < len(details) {
			s.p.Steps[i].Detail = details[i]
		}
	}
	s.refresh(ctx)
}

// SetPlannedSteps sets the step list from a plan's steps: names and descriptions.
func (s *Steering) SetPlannedSteps(ctx workflow.Context, steps []PlannedStep) {
	names, descs := make([]string, len(steps)), make([]string, len(steps))
	for i, st := range steps {
		names[i], descs[i] = st.Name, st.Description
	}
	s.SetSteps(ctx, names, descs)
}

// MarkRolledBack marks every step done or running as rolled back, at a rollback's end.
func (s *Steering) MarkRolledBack(ctx workflow.Context) {
	for i, st := range s.p.Steps {
		if st.Status == StepDone || st.Status == StepRunning {
			s.EndStep(ctx, i, StepRolledBack, "")
		}
	}
}

// StartStep marks step i running.
func (s *Steering) StartStep(ctx workflow.Context, i int) {
	if i < 0 || i >= len(s.p.Steps) {
		return
	}
	s.p.Steps[i].Status = StepRunning
	s.p.Steps[i].StartTime = workflow.Now(ctx)
	s.p.Steps[i].EndTime = time.Time{}
	s.refresh(ctx)
}

// EndStep marks step i with status (done, failed, rolled-back) and an optional detail.
func (s *Steering) EndStep(ctx workflow.Context, i int, status, detail string) {
	if i < 0 || i >= len(s.p.Steps) {
		return
	}
	s.p.Steps[i].Status = status
	s.p.Steps[i].EndTime = workflow.Now(ctx)
	if detail != "" {
		s.p.Steps[i].Detail = detail
	}
	s.countStep(ctx, s.p.Steps[i])
	s.refresh(ctx)
}

// Audit appends to the audit trail.
func (s *Steering) Audit(ctx workflow.Context, identity, action, reason, step string) {
	s.AuditDetails(ctx, identity, action, reason, step, "")
}

// AuditDetails appends to the audit trail with details for whoever digs: a failure's whole
// error chain, where the reason holds the one line people read.
func (s *Steering) AuditDetails(ctx workflow.Context, identity, action, reason, step, details string) {
	if identity == "" {
		identity = "(unknown)"
	}
	if details == reason {
		details = ""
	}
	s.p.Audit = append(s.p.Audit, AuditEntry{
		Time: workflow.Now(ctx), Identity: identity, Action: action, Reason: reason, Step: step, Details: details,
	})
	s.refresh(ctx)
}

// State is the migration's state now (derived, never stored apart from the flags).
func (s *Steering) State() string { return s.state() }

// Finished reports whether Finish ran: every later action is refused.
func (s *Steering) Finished() bool { return s.finished }

// RollingBack reports whether the rollback is running (BeginRollback ran).
func (s *Steering) RollingBack() bool { return s.rollingBack }

// AwaitingApproval reports whether this migration's own approval gate is open.
func (s *Steering) AwaitingApproval() bool { return s.pending != nil && !s.pending.done }

// LastAction returns the latest audited request of action ("pause", "resume", ...), so a
// composite that passes an action on to a phase carries who asked and why.
func (s *Steering) LastAction(action string) ActionRequest {
	if r, ok := s.lastReq[action]; ok {
		return r
	}
	for i := len(s.p.Audit) - 1; i >= 0; i-- {
		if e := s.p.Audit[i]; e.Action == action {
			return ActionRequest{Identity: e.Identity, Reason: e.Reason, Step: e.Step}
		}
	}
	return ActionRequest{Identity: SystemIdentity}
}

// Paused reports whether a pause is in force.
func (s *Steering) Paused() bool { return s.paused }

// Pause pauses on ferry's own behalf (e.g. a gate failed and the spec says pause).
func (s *Steering) Pause(ctx workflow.Context, reason, step string) {
	if s.paused || s.finished || s.rollingBack {
		return
	}
	s.paused = true
	s.Audit(ctx, SystemIdentity, "pause", reason, step)
}

// WaitWhilePaused blocks while paused; it returns early when a rollback is requested, so a
// paused migration can always be rolled back.
func (s *Steering) WaitWhilePaused(ctx workflow.Context) error {
	if !s.paused {
		return nil
	}
	s.logger.Info("paused; waiting for resume or rollback")
	return s.hold(ctx, "paused: watching gates", func() bool { return !s.paused || s.rollback != nil })
}

// hold waits for cond, running the Watch between waits when one is configured.
func (s *Steering) hold(ctx workflow.Context, summary string, cond func() bool) error {
	if s.opts.Watch == nil || s.opts.WatchInterval <= 0 {
		return workflow.Await(ctx, cond)
	}
	for {
		ok, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
			Timeout:      s.opts.WatchInterval,
			TimerOptions: workflow.TimerOptions{Summary: summary},
		}, cond)
		if err != nil || ok {
			return err
		}
		if err := s.opts.Watch(ctx); err != nil {
			return err
		}
		// Between beats, with nothing to act on: a safe point to hand over to a new run.
		if !cond() && s.shouldContinue(ctx) {
			return errContinue
		}
	}
}

// RollbackRequest returns the pending rollback request, or nil.
func (s *Steering) RollbackRequest() *ActionRequest { return s.rollback }

// RequestRollback asks for a rollback on ferry's own behalf (e.g. a gate failed).
func (s *Steering) RequestRollback(ctx workflow.Context, reason, step string) {
	if s.rollback != nil || s.rollingBack || s.finished {
		return
	}
	s.rollback = &ActionRequest{Identity: SystemIdentity, Reason: reason, Step: step}
	s.rollbackAsked = workflow.Now(ctx)
	s.Audit(ctx, SystemIdentity, "rollback", reason, step)
}

// BeginRollback records that the rollback is running: further pause and rollback requests
// are refused until it ends, and a pause in force is lifted (a rollback must not stall).
//
// It returns why, for messages: who asked for the rollback and their reason.
func (s *Steering) BeginRollback(ctx workflow.Context) (why string) {
	by := SystemIdentity
	if s.rollback != nil {
		by = s.rollback.Identity
	}
	s.countRollback(ctx, by)
	s.rollingBack = true
	s.paused = false
	if s.pending != nil {
		s.pending.done = true
	}
	s.refresh(ctx)
	why = "rollback"
	if r := s.rollback; r != nil {
		why = fmt.Sprintf("rollback by %s: %s", r.Identity, r.Reason)
	}
	return why
}

// Sleep waits d, returning early (true) when a rollback is requested.
func (s *Steering) Sleep(ctx workflow.Context, d time.Duration, summary string) (interrupted bool, err error) {
	if d <= 0 {
		return s.rollback != nil, nil
	}
	return workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{
		Timeout:      d,
		TimerOptions: workflow.TimerOptions{Summary: summary},
	}, func() bool { return s.rollback != nil && !s.rollingBack })
}

// AwaitApproval opens an approval gate for step and blocks until enough distinct approvers
// approved (true) or a rollback was requested (false).
func (s *Steering) AwaitApproval(ctx workflow.Context, step string) (approved bool, err error) {
	if s.rollback != nil {
		return false, nil
	}
	g := s.pending
	if g == nil || g.step != step || g.done {
		g = &approvalGate{step: step, required: s.opts.Approvals.RequiredApprovers, opened: workflow.Now(ctx)}
		s.pending = g
		s.Audit(ctx, SystemIdentity, "awaiting approval", fmt.Sprintf("%d approver(s) needed", g.required), step)
		s.logger.Info("awaiting approval", "step", step, "required", g.required)
	} // else: the gate the previous run of the chain opened, with its approvers so far
	err = s.hold(ctx, "awaiting approval: watching gates", func() bool { return g.done || s.rollback != nil })
	if isContinue(err) {
		return false, err // the gate stays open for the next run
	}
	approved = g.done && s.rollback == nil
	if approved {
		s.countApprovalWait(ctx, g.opened)
	}
	s.pending = nil
	s.refresh(ctx)
	return approved, err
}

// Finish records the final state; every later action is refused.
func (s *Steering) Finish(ctx workflow.Context, state, message string) {
	s.finished = true
	s.rollingBack = false
	s.paused = false
	s.pending = nil
	s.p.State = state
	s.p.Message = message
	s.refresh(ctx)
}

// --- handlers --------------------------------------------------------------------------------

// --- visibility ------------------------------------------------------------------------------
