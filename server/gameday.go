package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/gamereport"
	"github.com/ferryhq/ferry/proof"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// gameDayService serves GameDays (issue 23): a game is a workflow next to the migrations,
// started, pressed and stopped only through here, so its presses carry the identity the
// API authenticated (signed, as approvals are) and its scores cannot be forged.
type gameDayService struct {
	m *migrationService
}

func (g *gameDayService) StartGameDay(ctx context.Context, req *connect.Request[ferryv1.StartGameDayRequest]) (*connect.Response[ferryv1.StartGameDayResponse], error) {
	p, _ := PrincipalFrom(ctx)
	sc := req.Msg.GetScenario()
	if sc == nil {
		return nil, invalidArgument("scenario", "is required: the GameDay scenario (see examples/gameday-informed.yaml)")
	}
	gs, err := spec.GameDay(sc)
	if err != nil {
		return nil, specError(err)
	}
	id := workflows.GameDayWorkflowID(gs.Name)
	// One game of a scenario at a time: refused before its migration starts.
	if d, err := g.m.temporal.DescribeWorkflowExecution(ctx, id, ""); err == nil &&
		d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf(
			"start gameday: %s is running already; stop it with `ferry gameday stop %s` or wait for its end", id, id))
	}
	in := workflows.GameDayInput{Spec: gs, StartedBy: p.Identity}
	// The migration goes through StartMigration's own checks (spec, policy, locks): a
	// GameDay is no way around them.
	if m := sc.GetMigration(); m != nil {
		resp, err := g.m.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
		if err != nil {
			return nil, fmt.Errorf("start gameday: its migration: %w", err)
		}
		in.MigrationID = resp.Msg.GetMigration().GetId()
	}
	input, err := g.m.signer.signStart(id, p.Identity, in)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	details := fmt.Sprintf("**GameDay: %s** (%s)\n\nstarted by %s; %d experiment(s)", gs.Name, gs.Mode, p.Identity, len(gs.Experiments))
	if in.MigrationID != "" {
		details += "; migration " + in.MigrationID
	}
	run, err := g.m.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: workflows.TaskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            "GameDay: " + gs.Name,
		StaticDetails:                            details,
	}, workflows.GameDayWorkflowName, input)
	if err != nil {
		return nil, temporalError(err, "start gameday "+id)
	}
	return connect.NewResponse(&ferryv1.StartGameDayResponse{
		Id: id, MigrationId: in.MigrationID, Experiments: int32(len(gs.Experiments)), UiUrl: g.m.uiURL(id, run.GetRunID()),
	}), nil
}

// describe finds game id, refusing (NotFound) a workflow that is not a GameDay: the API
// acts on games and migrations only.
func (g *gameDayService) describe(ctx context.Context, id, op string) (*workflowpb.WorkflowExecutionInfo, error) {
	d, err := g.m.temporal.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) || (err == nil && d.GetWorkflowExecutionInfo().GetType().GetName() != workflows.GameDayWorkflowName) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("%s: no GameDay %s (ids look like gameday/region-move-under-fire)", op, id))
	}
	if err != nil {
		return nil, temporalError(err, op)
	}
	return d.GetWorkflowExecutionInfo(), nil
}

// load reads a game: its query while it runs, its result once it has ended.
func (g *gameDayService) load(ctx context.Context, id, op string) (workflows.GameDayRun, string, error) {
	var run workflows.GameDayRun
	ctx, cancel := context.WithTimeout(ctx, g.m.opts.callTimeout())
	defer cancel()
	info, err := g.describe(ctx, id, op)
	if err != nil {
		return run, "", err
	}
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		v, err := g.m.temporal.QueryWorkflow(ctx, id, "", workflows.QueryGameDay)
		if err == nil {
			err = v.Get(&run)
		}
		if werr := waitError(ctx, err, op); werr != nil {
			return run, "", werr
		}
		if err != nil {
			return run, "", temporalError(err, op)
		}
		return run, info.GetExecution().GetRunId(), nil
	}
	if err := g.m.temporal.GetWorkflow(ctx, id, info.GetExecution().GetRunId()).Get(ctx, &run); err != nil {
		return run, "", connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s: the game ended without a record: %s", op, applicationMessage(err)))
	}
	return run, info.GetExecution().GetRunId(), nil
}

func (g *gameDayService) GetGameDay(ctx context.Context, req *connect.Request[ferryv1.GetGameDayRequest]) (*connect.Response[ferryv1.GetGameDayResponse], error) {
	id := req.Msg.GetId()
	run, runID, err := g.load(ctx, id, "get gameday "+id)
	if err != nil {
		return nil, err
	}
	st := &ferryv1.GameDayStatus{
		Id: run.ID, Name: run.Spec.Name, Mode: run.Spec.Mode, State: run.State, StartedBy: run.StartedBy,
		StartTime: timestamppb.New(run.Started), MigrationId: run.MigrationID, Notes: run.Notes, UiUrl: g.m.uiURL(id, runID),
	}
	if !run.Ended.IsZero() {
		st.EndTime = timestamppb.New(run.Ended)
	}
	for _, e := range run.Experiments {
		x := &ferryv1.GameDayExperimentStatus{Name: e.Name, Fault: e.Fault.Target + " " + e.Fault.Kind, State: e.State}
		// The heroes of a hidden game learn of a fault by its effects, not from ferry.
		if run.Spec.Mode == workflows.GameDayHidden && e.Start.IsZero() && run.State == workflows.GameDayRunning {
			x.Name, x.Fault = "hidden", ""
		}
		if !e.Start.IsZero() {
			x.StartTime = timestamppb.New(e.Start)
			if run.Spec.Mode == workflows.GameDayHidden && run.State == workflows.GameDayRunning {
				x.Name, x.Fault = "hidden", "" // running: what it is stays hidden too
			}
		}
		if !e.End.IsZero() {
			x.EndTime = timestamppb.New(e.End)
		}
		st.Experiments = append(st.Experiments, x)
	}
	for _, p := range run.Presses {
		st.Presses = append(st.Presses, &ferryv1.GameDayPressStatus{Time: timestamppb.New(p.Time), Action: p.Action, Identity: p.Identity, Team: p.Team, Note: p.Note})
	}
	return connect.NewResponse(&ferryv1.GetGameDayResponse{GameDay: st}), nil
}

var pressActions = map[string]string{"detect": workflows.PressDetect, "mitigate": workflows.PressMitigate, "stop": workflows.PressStop}

func (g *gameDayService) PressGameDay(ctx context.Context, req *connect.Request[ferryv1.PressGameDayRequest]) (*connect.Response[ferryv1.PressGameDayResponse], error) {
	p, _ := PrincipalFrom(ctx)
	id, note := req.Msg.GetId(), req.Msg.GetNote()
	action, ok := pressActions[req.Msg.GetAction()]
	if !ok {
		return nil, invalidArgument("action", fmt.Sprintf("%q: use detect, mitigate or stop", req.Msg.GetAction()))
	}
	if len(note) > 500 {
		return nil, invalidArgument("note", "is longer than 500 characters: say what you saw in a sentence")
	}
	op := req.Msg.GetAction() + " gameday " + id
	// Stopping a game is an operator's act; detect and mitigate are every player's.
	if action == workflows.PressStop && !slices.Contains(p.Roles, RoleOperator) {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s: %s (roles %v) may not stop a GameDay: it needs the operator role", op, p.Identity, p.Roles))
	}
	// Only a GameDay takes a press; the game itself answers the rest (no worker round trip
	// here: the update makes one).
	if _, err := g.describe(ctx, id, op); err != nil {
		return nil, err
	}
	update := workflows.UpdateGameDayPress
	if action == workflows.PressStop {
		update = workflows.UpdateGameDayStop
	}
	pr := workflows.GameDayPressRequest{Action: action, Identity: p.Identity, Note: note,
		Proof: g.m.signer.sign(proof.Claims{Action: action, Migration: id, Identity: p.Identity, Roles: p.Roles})}
	h, err := g.m.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: update, Args: []any{pr}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	out := &ferryv1.PressGameDayResponse{}
	if err == nil {
		if action == workflows.PressStop {
			err = h.Get(ctx, &out.Message)
		} else {
			var press workflows.GameDayPress
			if err = h.Get(ctx, &press); err == nil {
				out.Time, out.Team = timestamppb.New(press.Time), press.Team
				out.Message = fmt.Sprintf("%s by %s (%s) recorded at %s", req.Msg.GetAction(), p.Identity, press.Team, press.Time.UTC().Format(time.TimeOnly))
			}
		}
	}
	if werr := waitError(ctx, err, op); werr != nil {
		return nil, werr
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s: the game has ended", op))
	}
	if err != nil {
		return nil, temporalError(err, op)
	}
	return connect.NewResponse(out), nil
}

func (g *gameDayService) GetGameDayReport(ctx context.Context, req *connect.Request[ferryv1.GetGameDayReportRequest]) (*connect.Response[ferryv1.GetGameDayReportResponse], error) {
	id := req.Msg.GetId()
	run, _, err := g.load(ctx, id, "report gameday "+id)
	if err != nil {
		return nil, err
	}
	if run.Spec.Mode == workflows.GameDayHidden && run.State == workflows.GameDayRunning {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"report gameday %s: a hidden game's report names its faults, so it is made once the game has ended (stop it with `ferry gameday stop %s`)", id, id))
	}
	r := gamereport.Build(run)
	j, err := gamereport.JSON(r)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	h, err := gamereport.HTML(r)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return connect.NewResponse(&ferryv1.GetGameDayReportResponse{Json: string(j), Html: string(h), State: run.State}), nil
}
