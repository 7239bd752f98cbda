package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

// migrationService implements ferryv1connect.MigrationServiceHandler over a Temporal client.
type migrationService struct {
	temporal client.Client
	opts     Options
	signer   signer
}

func (s *migrationService) GetMigration(ctx context.Context, req *connect.Request[ferryv1.GetMigrationRequest]) (*connect.Response[ferryv1.GetMigrationResponse], error) {
	if req.Msg.GetId() == "" {
		return nil, invalidArgument("id", "is empty: pass the migration id printed by `ferry start` or `ferry list`")
	}
	m, err := s.load(ctx, req.Msg.GetId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ferryv1.GetMigrationResponse{Migration: m}), nil
}

func (s *migrationService) ListMigrations(ctx context.Context, req *connect.Request[ferryv1.ListMigrationsRequest]) (*connect.Response[ferryv1.ListMigrationsResponse], error) {
	r := req.Msg
	size := r.GetPageSize()
	switch {
	case size < 0 || size > 500:
		return nil, invalidArgument("page_size", fmt.Sprintf("%d is outside 0..500", size))
	case size == 0:
		size = 50
	}
	var token []byte
	if r.GetPageToken() != "" {
		var err error
		if token, err = base64.RawURLEncoding.DecodeString(r.GetPageToken()); err != nil {
			return nil, invalidArgument("page_token", "is not a token returned by ListMigrations")
		}
	}
	query, err := listQuery(r)
	if err != nil {
		return nil, err
	}
	resp, err := s.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace:     s.opts.Namespace,
		PageSize:      size,
		NextPageToken: token,
		Query:         query,
	})
	if err != nil {
		return nil, temporalError(err, "list migrations")
	}
	out := &ferryv1.ListMigrationsResponse{NextPageToken: base64.RawURLEncoding.EncodeToString(resp.GetNextPageToken())}
	for _, e := range resp.GetExecutions() {
		out.Migrations = append(out.Migrations, s.summary(e))
	}
	return connect.NewResponse(out), nil
}

func (s *migrationService) WatchMigration(ctx context.Context, req *connect.Request[ferryv1.WatchMigrationRequest], stream *connect.ServerStream[ferryv1.WatchMigrationResponse]) error {
	if req.Msg.GetId() == "" {
		return invalidArgument("id", "is empty")
	}
	var last *ferryv1.Migration
	ticker := time.NewTicker(watchInterval)
	defer ticker.Stop()
	for {
		m, detailed, err := s.loadDetail(ctx, req.Msg.GetId())
		if err != nil {
			return err
		}
		// A running migration whose progress query failed this once (a busy worker) is not
		// news; the next tick will read it. A closed one is sent as it is.
		if (detailed || m.GetCloseTime() != nil) && !proto.Equal(m, last) {
			if err := stream.Send(&ferryv1.WatchMigrationResponse{Migration: m}); err != nil {
				return err
			}
			last = m
		}
		if m.GetCloseTime() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// watchInterval is how often WatchMigration re-reads progress. Queries are cheap (served
// from a worker's cache), and half a second is well under any step's wait.
const watchInterval = 500 * time.Millisecond

func (s *migrationService) ApproveStep(ctx context.Context, req *connect.Request[ferryv1.ApproveStepRequest]) (*connect.Response[ferryv1.ApproveStepResponse], error) {
	m, err := s.act(ctx, req.Msg.GetId(), workflows.UpdateApprove, req.Msg.GetComment(), req.Msg.GetStep())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ferryv1.ApproveStepResponse{Migration: m}), nil
}

func (s *migrationService) RollbackMigration(ctx context.Context, req *connect.Request[ferryv1.RollbackMigrationRequest]) (*connect.Response[ferryv1.RollbackMigrationResponse], error) {
	m, err := s.act(ctx, req.Msg.GetId(), workflows.UpdateRollback, req.Msg.GetReason(), "")
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ferryv1.RollbackMigrationResponse{Migration: m}), nil
}

func (s *migrationService) PauseMigration(ctx context.Context, req *connect.Request[ferryv1.PauseMigrationRequest]) (*connect.Response[ferryv1.PauseMigrationResponse], error) {
	m, err := s.act(ctx, req.Msg.GetId(), workflows.UpdatePause, req.Msg.GetReason(), "")
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ferryv1.PauseMigrationResponse{Migration: m}), nil
}

func (s *migrationService) ResumeMigration(ctx context.Context, req *connect.Request[ferryv1.ResumeMigrationRequest]) (*connect.Response[ferryv1.ResumeMigrationResponse], error) {
	m, err := s.act(ctx, req.Msg.GetId(), workflows.UpdateResume, req.Msg.GetReason(), "")
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ferryv1.ResumeMigrationResponse{Migration: m}), nil
}

func (s *migrationService) CancelMigration(ctx context.Context, req *connect.Request[ferryv1.CancelMigrationRequest]) (*connect.Response[ferryv1.CancelMigrationResponse], error) {
	id := req.Msg.GetId()
	if id == "" {
		return nil, invalidArgument("id", "is empty")
	}
	if _, err := s.describeMigration(ctx, id, "cancel migration "+id); err != nil {
		return nil, err
	}
	p, _ := PrincipalFrom(ctx)
	// The raw service call carries identity and reason, which the SDK's CancelWorkflow drops;
	// both end up in the workflow's history for the audit trail.
	_, err := s.temporal.WorkflowService().RequestCancelWorkflowExecution(ctx, &workflowservice.RequestCancelWorkflowExecutionRequest{
		Namespace:         s.opts.Namespace,
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: id},
		Identity:          p.Identity,
		Reason:            req.Msg.GetReason(),
	})
	if err != nil {
		if werr := waitError(ctx, err, "cancel migration "+id); werr != nil {
			return nil, werr
		}
		return nil, temporalError(err, "cancel migration "+id)
	}
	m, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&ferryv1.CancelMigrationResponse{Migration: m}), nil
}

// act sends an update carrying the caller's identity and waits for the workflow to accept
// or refuse it, so the caller learns at once whether it took effect.
func (s *migrationService) act(ctx context.Context, id, update, reason, step string) (*ferryv1.Migration, error) {
	if id == "" {
		return nil, invalidArgument("id", "is empty")
	}
	// The action ("approve", ...) is the update's name less its suffix: what a proof names.
	action := strings.TrimSuffix(update, "-update")
	op := action + " " + id
	// Refused before the update is sent: an update of another application's workflow could
	// share a name with ferry's.
	if _, err := s.describeMigration(ctx, id, op); err != nil {
		return nil, err
	}
	p, _ := PrincipalFrom(ctx)
	h, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id,
		UpdateName: update,
		Args: []any{workflows.ActionRequest{Identity: p.Identity, Reason: reason, Step: step,
			Proof: s.actionProof(ctx, id, action, step, p)}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if werr := waitError(ctx, err, op); werr != nil {
		return nil, werr
	}
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		// Temporal answers NotFound for an update to a closed workflow too; the caller needs
		// to hear that the migration has ended, not that it never existed.
		if m, lerr := s.load(ctx, id); lerr == nil && m.GetCloseTime() != nil {
			return nil, connect.NewError(connect.CodeFailedPrecondition,
				fmt.Errorf("%s: the migration has ended (%s); start a new one to change anything", op, strings.ToLower(strings.TrimPrefix(m.GetState().String(), "MIGRATION_STATE_"))))
		}
	}
	if err != nil {
		return nil, temporalError(err, op)
	}
	return s.load(ctx, id)
}

// load reads a migration: the execution's metadata from Temporal and its progress from the
// workflow's query.
func (s *migrationService) load(ctx context.Context, id string) (*ferryv1.Migration, error) {
	m, _, err := s.loadDetail(ctx, id)
	return m, err
}

// loadDetail is load that also says whether the workflow's progress was read.
// Each read is bounded by CallTimeout: within a unary call that is its deadline already,
// and WatchMigration, which has none, reads once per tick.
func (s *migrationService) loadDetail(ctx context.Context, id string) (*ferryv1.Migration, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.callTimeout())
	defer cancel()
	info, err := s.describeMigration(ctx, id, "get migration "+id)
	if err != nil {
		return nil, false, err
	}
	m := s.summary(info)
	m.Spec = specOf(info)
	qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
	defer qcancel()
	v, err := s.temporal.QueryWorkflow(qctx, id, info.GetExecution().GetRunId(), workflows.QueryProgress)
	if err != nil {
		// Metadata alone still answers "where is it"; say why the detail is missing.
		m.Message = "progress unavailable (is a worker running?): " + err.Error()
		return m, false, nil
	}
	var p workflows.Progress
	if err := v.Get(&p); err != nil {
		return nil, false, connect.NewError(connect.CodeInternal, fmt.Errorf("decode progress of %s: %w", id, err))
	}
	applyProgress(m, &p, info.GetStatus())
	s.addChildApprovals(ctx, m, &p)
	return m, true, nil
}

// addChildApprovals lists the running child's pending approval on a region move, so the
// parent shows one list of everything waiting for a person. Approving the parent forwards
// to the child (the workflow does that, keeping the approver's identity for four-eyes).
func (s *migrationService) addChildApprovals(ctx context.Context, m *ferryv1.Migration, p *workflows.Progress) {
	for _, ph := range p.Phases {
		if ph.State != workflows.PhaseRunning || ph.MigrationID == "" {
			continue
		}
		cp, err := s.progress(ctx, ph.MigrationID)
		if err != nil || cp.PendingApproval == nil {
			continue
		}
		a := cp.PendingApproval
		if m.State == ferryv1.MigrationState_MIGRATION_STATE_RUNNING {
			m.State = ferryv1.MigrationState_MIGRATION_STATE_AWAITING_APPROVAL
		}
		m.PendingApprovals = append(m.PendingApprovals, &ferryv1.PendingApproval{
			Step: ph.Name + ": " + a.Step, Required: uint32(a.Required), ApprovedBy: a.ApprovedBy,
		})
	}
}

// progress reads a migration's progress query (its current run), bounded by 5 s.
func (s *migrationService) progress(ctx context.Context, id string) (workflows.Progress, error) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var p workflows.Progress
	v, err := s.temporal.QueryWorkflow(qctx, id, "", workflows.QueryProgress)
	if err == nil {
		err = v.Get(&p)
	}
	return p, err
}

// temporalError maps Temporal errors to Connect codes with the operation named.
func temporalError(err error, op string) error {
	var (
		notFound  *serviceerror.NotFound
		started   *serviceerror.WorkflowExecutionAlreadyStarted
		invalid   *serviceerror.InvalidArgument
		failedPre *serviceerror.FailedPrecondition
		rejected  *client.WorkflowUpdateServiceTimeoutOrCanceledError
	)
	switch {
	case errors.As(err, &notFound):
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s: no such migration (ids look like dns/shop.example/www.shop.example/A; see `ferry list`)", op))
	case errors.As(err, &started):
		return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("%s: %w", op, err))
	case errors.As(err, &invalid):
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %s", op, invalid.Message))
	case errors.As(err, &failedPre):
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s: %s", op, failedPre.Message))
	case errors.As(err, &rejected):
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s: %w", op, err))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("%s: %w", op, err))
	}
	// An update refused by the workflow's validator arrives as an application error: the
	// request was understood but the migration is not in a state to take it.
	if isApplicationError(err) {
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s: %s", op, applicationMessage(err)))
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s: %w", op, err))
}

func invalidArgument(field, msg string) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s %s", field, msg))
}
