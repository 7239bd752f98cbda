package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// startable is a validated spec, ready to plan or start: its kind, the workflow's input
// and the facts the search attributes and the UI summary carry, all from the kind's
// descriptor.
type startable struct {
	id      string
	kind    spec.Kind
	input   any
	source  string
	targets []string
	summary string
}

// buildStart validates the spec statically (no cloud calls, no Temporal calls) and builds
// what StartMigration and PlanMigration run. Bad input stops here and changes nothing.
func buildStart(m *ferryv1.MigrationSpec, initiator, planHash string) (startable, error) {
	k, in, err := spec.Input(m, initiator, planHash)
	if err != nil {
		return startable{}, err
	}
	source, targets := k.Regions(in)
	return startable{
		id:      k.LockID(in),
		kind:    k,
		input:   in,
		source:  source,
		targets: targets,
		summary: k.Summary(in),
	}, nil
}

// specError maps a validation error to InvalidArgument naming the field.
func specError(err error) error {
	if fe, ok := spec.AsFieldError(err); ok {
		return connect.NewError(connect.CodeInvalidArgument, fe)
	}
	return connect.NewError(connect.CodeInvalidArgument, err)
}

func (s *migrationService) PlanMigration(ctx context.Context, req *connect.Request[ferryv1.PlanMigrationRequest]) (*connect.Response[ferryv1.PlanMigrationResponse], error) {
	p, _ := PrincipalFrom(ctx)
	st, err := buildStart(req.Msg.GetSpec(), p.Identity, "")
	if err != nil {
		return nil, specError(err)
	}
	if err := s.mayPlan(p, req.Msg.GetSpec()); err != nil {
		return nil, err
	}
	plan, err := s.plan(ctx, st)
	if err != nil {
		return nil, err
	}
	resp := &ferryv1.PlanMigrationResponse{Id: st.id, Kind: st.kind.Proto, PlanHash: plan.Hash, Observations: plan.Observations}
	for _, step := range plan.Steps {
		resp.Steps = append(resp.Steps, &ferryv1.PlannedStep{
			Name: step.Name, Description: step.Description, NeedsApproval: step.NeedsApproval, Wait: durationpb.New(step.Wait),
		})
	}
	return connect.NewResponse(resp), nil
}

// plan runs the kind's plan workflow: the read-only calls happen on a worker, which holds
// the cloud credentials, so the API server needs none.
func (s *migrationService) plan(ctx context.Context, st startable) (workflows.Plan, error) {
	timeout := s.opts.planTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	run, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       "plan/" + st.id + "/" + uuid.NewString(),
		TaskQueue:                workflows.TaskQueue,
		WorkflowExecutionTimeout: timeout,
		StaticSummary:            "plan: " + st.summary,
	}, st.kind.PlanName, st.kind.PlanInput(st.input))
	if err != nil {
		return workflows.Plan{}, temporalError(err, "plan "+st.id)
	}
	var plan workflows.Plan
	if err := run.Get(ctx, &plan); err != nil {
		return workflows.Plan{}, planError(err, st.id, timeout)
	}
	return plan, nil
}

// planError explains why a plan could not be made. A missing or mismatched resource is the
// spec's fault (InvalidArgument); anything else is the environment's (Unavailable).
func planError(err error, id string, timeout time.Duration) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		if app.NonRetryable() {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("plan %s: %s", id, app.Message()))
		}
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("plan %s: %s", id, app.Message()))
	}
	var timedOut *temporal.TimeoutError
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &timedOut) {
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("plan %s: no worker finished the plan in %s (is a worker running on task queue %s?)", id, timeout, workflows.TaskQueue))
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("plan %s: %w", id, err))
}

// memoIdempotencyKey is the memo field holding StartMigration's idempotency key.
const memoIdempotencyKey = "idempotencyKey"

// memoSpec is the memo field holding the spec as started (protojson), so GetMigration can
// show what was asked for (an AMI share's accounts, a shift's schedule) beside the
// progress. Specs carry secret references, never secrets.
const memoSpec = "spec"

func (s *migrationService) StartMigration(ctx context.Context, req *connect.Request[ferryv1.StartMigrationRequest]) (*connect.Response[ferryv1.StartMigrationResponse], error) {
	p, _ := PrincipalFrom(ctx)
	key := req.Msg.GetIdempotencyKey()
	st, err := buildStart(req.Msg.GetSpec(), p.Identity, req.Msg.GetPlanHash())
	if err != nil {
		return nil, specError(err)
	}
	if pol := s.opts.Policy; pol != nil {
		if err := pol.check(st.kind.Name, st.input); err != nil {
			return nil, err
		}
	}
	// Signed after the checks: the proof says this input passed them.
	input, err := s.signer.signStart(st.id, p.Identity, st.input)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	opts := client.StartWorkflowOptions{
		ID:        st.id,
		TaskQueue: workflows.TaskQueue,
		// The workflow id is the lock on the resource: a second start while one runs must
		// fail, not attach to the running one (the SDK's default), and a finished migration
		// of the same resource may run again.
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SAKind.ValueSet(st.kind.Name),
			workflows.SAState.ValueSet(workflows.StateRunning),
			workflows.SAPhase.ValueSet("starting"),
			workflows.SAInitiator.ValueSet(p.Identity),
			workflows.SASourceRegion.ValueSet(st.source),
			workflows.SATargetRegions.ValueSet(st.targets),
			workflows.SAAwaitingApproval.ValueSet(false),
		),
		StaticSummary: st.summary,
		StaticDetails: fmt.Sprintf("**%s**\n\nstarted by %s; reason: %s", st.summary, p.Identity, req.Msg.GetSpec().GetReason()),
	}
	opts.Memo = map[string]any{}
	if key != "" {
		opts.Memo[memoIdempotencyKey] = key
	}
	if b, err := protojson.Marshal(req.Msg.GetSpec()); err == nil {
		opts.Memo[memoSpec] = string(b)
	}
	run, err := s.temporal.ExecuteWorkflow(ctx, opts, st.kind.WorkflowName, input)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return s.alreadyStarted(ctx, st, key)
	}
	if err != nil {
		return nil, temporalError(err, "start "+st.id)
	}
	if err := s.awaitLocks(ctx, st, run.GetRunID()); err != nil {
		return nil, err
	}
	// Built from what was just started rather than queried: the first workflow task may not
	// have run yet, and StartMigration must cost about what a bare start costs.
	m := &ferryv1.Migration{
		Id:        st.id,
		Kind:      st.kind.Proto,
		State:     ferryv1.MigrationState_MIGRATION_STATE_RUNNING,
		Phase:     "starting",
		Initiator: p.Identity,
		PlanHash:  req.Msg.GetPlanHash(),
		Spec:      req.Msg.GetSpec(),
		StartTime: timestamppb.Now(),
		UiUrl:     s.uiURL(st.id, run.GetRunID()),
	}
	return connect.NewResponse(&ferryv1.StartMigrationResponse{Migration: m}), nil
}

// alreadyStarted answers a start whose workflow id is taken: a retry of the same request
// (same idempotency key) gets the running migration; anything else is told who holds the
// resource.
func (s *migrationService) alreadyStarted(ctx context.Context, st startable, key string) (*connect.Response[ferryv1.StartMigrationResponse], error) {
	d, err := s.temporal.DescribeWorkflowExecution(ctx, st.id, "")
	if err != nil {
		return nil, temporalError(err, "start "+st.id)
	}
	info := d.GetWorkflowExecutionInfo()
	var running string
	if p, ok := info.GetMemo().GetFields()[memoIdempotencyKey]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &running)
	}
	if key != "" && running == key {
		m, err := s.load(ctx, st.id)
		if err != nil {
			return nil, err
		}
		return connect.NewResponse(&ferryv1.StartMigrationResponse{Migration: m}), nil
	}
	other := s.summary(info)
	return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf(
		"%s is already being migrated by %s (started by %s at %s); watch it with `ferry watch %s` or wait for it to end",
		st.summary, st.id, other.GetInitiator(), info.GetStartTime().AsTime().Format(time.RFC3339), st.id))
}

// defaultLockWait is Options.LockWait's default: a preflight's few read calls, retried on
// throttling, on a worker that may be busy.
const defaultLockWait = 20 * time.Second

// awaitLocks waits until the run just started has taken its resource locks (workflows
// UpdateLocks). A run refused because another migration holds a resource (named by the
// cloud's identity, whatever the spelling) is answered AlreadyExists naming the holder;
// the refused run changed nothing. Anything else (no worker yet, the run failed its
// preflight) leaves the answer to the migration's own state, as before locks existed.
func (s *migrationService) awaitLocks(ctx context.Context, st startable, runID string) error {
	wait := s.opts.lockWait()
	if wait == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	h, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: st.id, RunID: runID, UpdateName: workflows.UpdateLocks,
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var r workflows.LockResult
	if err == nil {
		err = h.Get(ctx, &r)
	}
	if err != nil {
		s.opts.Logger.Info("start: lock state not known yet", "migration", st.id, "error", err)
		return nil
	}
	if r.State != workflows.LocksRefused {
		return nil
	}
	return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("%s: %s (the refused run %s changed nothing)", st.summary, r.Message, st.id))
}

// specOf is the spec a migration was started with, from its memo; nil for one started
// before specs were kept there, or by a parent (a region move's phases).
func specOf(info *workflowpb.WorkflowExecutionInfo) *ferryv1.MigrationSpec {
	p, ok := info.GetMemo().GetFields()[memoSpec]
	if !ok {
		return nil
	}
	var text string
	if err := converter.GetDefaultDataConverter().FromPayload(p, &text); err != nil {
		return nil
	}
	var m ferryv1.MigrationSpec
	if err := protojson.Unmarshal([]byte(text), &m); err != nil {
		return nil
	}
	return &m
}
