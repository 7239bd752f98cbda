package server

import (
	"errors"
	"net/url"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// protoKind is the API's enum for a FerryKind value (unspecified for an unknown one).
func protoKind(name string) ferryv1.MigrationKind {
	k, _ := spec.KindByName(name)
	return k.Proto
}

var states = map[string]ferryv1.MigrationState{
	workflows.StateRunning:          ferryv1.MigrationState_MIGRATION_STATE_RUNNING,
	workflows.StateAwaitingApproval: ferryv1.MigrationState_MIGRATION_STATE_AWAITING_APPROVAL,
	workflows.StatePaused:           ferryv1.MigrationState_MIGRATION_STATE_PAUSED,
	workflows.StateRollingBack:      ferryv1.MigrationState_MIGRATION_STATE_ROLLING_BACK,
	workflows.StateBlocked:          ferryv1.MigrationState_MIGRATION_STATE_BLOCKED,
	workflows.StateCompleted:        ferryv1.MigrationState_MIGRATION_STATE_COMPLETED,
	workflows.StateRolledBack:       ferryv1.MigrationState_MIGRATION_STATE_ROLLED_BACK,
	workflows.StateFailed:           ferryv1.MigrationState_MIGRATION_STATE_FAILED,
	workflows.StateCancelled:        ferryv1.MigrationState_MIGRATION_STATE_CANCELLED,
}

var stepStatuses = map[string]ferryv1.StepStatus{
	workflows.StepPending:    ferryv1.StepStatus_STEP_STATUS_PENDING,
	workflows.StepRunning:    ferryv1.StepStatus_STEP_STATUS_RUNNING,
	workflows.StepDone:       ferryv1.StepStatus_STEP_STATUS_DONE,
	workflows.StepFailed:     ferryv1.StepStatus_STEP_STATUS_FAILED,
	workflows.StepRolledBack: ferryv1.StepStatus_STEP_STATUS_ROLLED_BACK,
}

func kindName(k ferryv1.MigrationKind) string {
	kd, _ := spec.KindByProto(k)
	if kd.KindDef == nil {
		return ""
	}
	return kd.Name
}

func stateName(st ferryv1.MigrationState) string {
	for name, v := range states {
		if v == st {
			return name
		}
	}
	return ""
}

// summary fills what visibility knows: enough for lists, without asking a worker.
func (s *migrationService) summary(info *workflowpb.WorkflowExecutionInfo) *ferryv1.Migration {
	id := info.GetExecution().GetWorkflowId()
	m := &ferryv1.Migration{
		Id:        id,
		StartTime: info.GetStartTime(),
		CloseTime: info.GetCloseTime(),
		UiUrl:     s.uiURL(id, info.GetExecution().GetRunId()),
	}
	str := func(key string) string { return searchAttr(info, key) }
	m.Kind = protoKind(str(workflows.SAKind.GetName()))
	m.State = states[str(workflows.SAState.GetName())]
	m.Phase = str(workflows.SAPhase.GetName())
	m.Initiator = str(workflows.SAInitiator.GetName())
	// A workflow that ended outside its own control (terminated, timed out, failed with an
	// unhandled error) never wrote its final state; the execution status is the truth then.
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
		m.State = ferryv1.MigrationState_MIGRATION_STATE_FAILED
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		m.State = ferryv1.MigrationState_MIGRATION_STATE_CANCELLED
	}
	return m
}

func (s *migrationService) uiURL(id, runID string) string {
	if s.opts.UIURL == "" {
		return ""
	}
	return s.opts.UIURL + "/namespaces/" + url.PathEscape(s.opts.Namespace) + "/workflows/" + url.PathEscape(id) + "/" + url.PathEscape(runID) + "/history"
}

// applyProgress adds what only the workflow knows (steps, approvals, audit, details).
func applyProgress(m *ferryv1.Migration, p *workflows.Progress, status enumspb.WorkflowExecutionStatus) {
	if k := protoKind(p.Kind); k != ferryv1.MigrationKind_MIGRATION_KIND_UNSPECIFIED {
		m.Kind = k
	}
	// While running, and when it returned normally, the workflow's own state is the most
	// precise (e.g. completed vs rolled-back); otherwise summary's status mapping stands.
	if st, ok := states[p.State]; ok && (status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED) {
		m.State = st
	}
	m.Phase = p.Phase
	m.Message = p.Message
	m.PlanHash = p.PlanHash
	if p.Initiator != "" {
		m.Initiator = p.Initiator
	}
	for _, st := range p.Steps {
		m.Steps = append(m.Steps, &ferryv1.Step{
			Name:      st.Name,
			Status:    stepStatuses[st.Status],
			StartTime: ts(st.StartTime),
			EndTime:   ts(st.EndTime),
			Detail:    st.Detail,
		})
	}
	if a := p.PendingApproval; a != nil {
		m.PendingApprovals = append(m.PendingApprovals, &ferryv1.PendingApproval{
			Step: a.Step, Required: uint32(a.Required), ApprovedBy: a.ApprovedBy,
		})
	}
	for _, e := range p.Audit {
		m.Audit = append(m.Audit, &ferryv1.AuditEntry{
			Time: ts(e.Time), Identity: e.Identity, Action: e.Action, Reason: e.Reason, Step: e.Step,
		})
	}
	if d := p.DNS; d != nil {
		ds := &ferryv1.DnsShiftStatus{FromWeight: uint32(d.FromWeight), ToWeight: uint32(d.ToWeight), StepIndex: int32(d.StepIndex)}
		for _, g := range d.Gates {
			ds.Gates = append(ds.Gates, &ferryv1.GateResult{Name: g.Name, Healthy: g.Healthy, Verdict: g.Verdict, Detail: g.Detail, Time: ts(g.Time)})
		}
		m.DnsShift = ds
	}
	if a := p.AMI; a != nil {
		as := &ferryv1.AmiShareStatus{}
		for _, c := range a.Copies {
			as.Copies = append(as.Copies, &ferryv1.AmiCopyStatus{SourceImageId: c.SourceImageID, Region: c.Region, ImageId: c.ImageID, State: c.State, Detail: c.Detail})
		}
		m.AmiShare = as
	}
	if mg := p.Mongo; mg != nil {
		ms := &ferryv1.MongoMoveStatus{Primary: mg.Primary, ReconfigsPlanned: int32(mg.ReconfigsPlanned), ReconfigsApplied: int32(mg.ReconfigsApplied), ConfigVersion: mg.ConfigVersion}
		for _, mem := range mg.Members {
			ms.Members = append(ms.Members, &ferryv1.MongoMemberStatus{Host: mem.Host, Region: mem.Region, State: mem.State, Priority: mem.Priority, Votes: int32(mem.Votes), Lag: durationpb.New(mem.Lag)})
		}
		m.MongoMove = ms
	}
	for _, ph := range p.Phases {
		m.Phases = append(m.Phases, &ferryv1.PhaseStatus{Name: ph.Name, MigrationId: ph.MigrationID, State: ph.State})
	}
	if d := p.DB; d != nil {
		m.DatabaseCutover = &ferryv1.DatabaseCutoverStatus{
			Source: d.Source, Target: d.Target, Primary: d.Primary, WritesFrozen: d.WritesFrozen,
			PointOfNoReturn: d.PointOfNoReturn, MaintenanceOn: d.MaintenanceOn, DbRecordValue: d.DBRecordValue,
			SourceGtid: d.SourceGTID, TargetGtid: d.TargetGTID, Lag: durationpb.New(d.Lag),
			WriteFreeze: durationpb.New(d.WriteFreeze), ReverseReplication: d.ReverseReplicate,
		}
	}
	if b := p.Broker; b != nil {
		bs := &ferryv1.BrokerMoveStatus{OldBroker: b.Old, NewBroker: b.New, Order: b.Order, Shovels: b.Shovels}
		for _, a := range b.Apps {
			bs.Applications = append(bs.Applications, &ferryv1.BrokerAppStatus{ConnectionName: a.ConnectionName, Role: a.Role, Broker: a.Broker})
		}
		if d := b.Drain; d != nil {
			bs.Drain = &ferryv1.BrokerDrainStatus{Broker: d.Broker, MessagesLeft: d.MessagesLeft, AckRate: d.AckRate, Estimate: durationpb.New(d.Estimate),
				Blocking: d.Blocking, Drained: d.Drained, Started: ts(d.Started)}
		}
		m.BrokerMove = bs
	}
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func isApplicationError(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app)
}

func applicationMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}
