package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// ErrDBPreflightFailed is a cutover refused by its preflight (nothing changed).
const ErrDBPreflightFailed = "DBPreflightFailed"

// mysqlActs is called through a nil pointer: the worker registers activities.MySQL.
var mysqlActs *activities.MySQL

// DatabaseCutover switches a MySQL / MariaDB primary to its replica behind a maintenance
// page: preflight (no change), an optional approval (before the freeze, so no person's
// response time falls inside it), maintenance page on, freeze writes on the source, wait
// for the target to execute the source's last GTID, promote the target (the point of no
// return), make the source replicate from it, repoint the database's DNS name, verify,
// maintenance page off. A failure before the point of no return unfreezes the source and
// puts the maintenance record back at once; after it, the rollback is the same switch in
// the other direction.
func DatabaseCutover(ctx workflow.Context, in DBCutoverInput) (DBCutoverResult, error) {
	w := &dbCutover{}
	if err := w.setup(ctx, in); err != nil {
		return DBCutoverResult{Outcome: Outcome{State: StateFailed, Message: err.Error()}}, err
	}
	return runKind[DBCutoverResult](ctx, "database cutover", w)
}

// PlanDatabaseCutover is the dry run: it reads both records and both servers (on a
// worker, which holds the credentials) and returns every step, the point of no return and
// the plan hash. It changes nothing.
func PlanDatabaseCutover(ctx workflow.Context, in PlanDBCutoverInput) (Plan, error) {
	obs, err := dbObserve(ctx, in.Spec, "plan")
	if err != nil {
		return Plan{}, err
	}
	return dbPlan(in.Spec, obs), nil
}

// dbObs is what a preflight reads: both records and both servers.
type dbObs struct {
	DB          activities.ReadRecordOutput
	Maintenance *activities.ReadRecordOutput
	Servers     activities.DBPreflightOutput
}

type dbCutover struct {
	in    DBCutoverInput
	spec  DBCutoverSpec
	s     *Steering
	log   log.Logger
	owner owner
	obs   dbObs

	// The change record (dbUndoRecord), kept as each change is made.
	rec dbUndoRecord
	// primary is the server the application writes to (or will once writes resume).
	primary string

	freezeAt, writableAt time.Time
	catchUp, insync      time.Duration
	canary               string
	// notes say what an undo could not check or do, for people.
	notes []string
}

func (w *dbCutover) setup(ctx workflow.Context, in DBCutoverInput) error {
	w.in, w.spec = in, in.Spec
	w.owner = ownerOf(ctx, in.Undo)
	if in.Undo != nil {
		rec, err := decodeRecord[dbUndoRecord](in.Undo)
		if err != nil {
			return err
		}
		w.rec, w.spec = rec, rec.Spec
	}
	w.primary = w.spec.Source
	if w.rec.Promoted {
		w.primary = w.spec.Target
	}
	w.log = log.With(workflow.GetLogger(ctx), "migration", workflow.GetInfo(ctx).WorkflowExecution.ID)
	s, err := NewSteering(ctx, SteeringOptions{
		Kind: KindDBCutover, Initiator: in.Initiator, PlanHash: in.PlanHash, Approvals: in.Approvals,
		Start: in.StartProof, StartDigest: StartDigest(in), Logger: w.log, Details: w.details,
	})
	if err != nil {
		return err
	}
	w.s = s
	w.publish(ctx)
	return nil
}

func (w *dbCutover) steering() *Steering { return w.s }
func (w *dbCutover) common() Common      { return w.in.Common }

func (w *dbCutover) resultOf(o Outcome) DBCutoverResult {
	r := DBCutoverResult{Outcome: o, Primary: w.primary, CatchUp: w.catchUp, RepointInsync: w.insync}
	if !w.freezeAt.IsZero() && !w.writableAt.IsZero() {
		r.WriteFreeze = w.writableAt.Sub(w.freezeAt)
	}
	return r
}

func (w *dbCutover) res(state, msg string) DBCutoverResult {
	return w.resultOf(Outcome{State: state, Message: msg, Changes: w.changes()})
}

func (w *dbCutover) details(p Progress) string {
	var b strings.Builder
	if d := p.DB; d != nil {
		fmt.Fprintf(&b, "primary **%s** (source %s, target %s) · writes frozen: %v · point of no return passed: %v · maintenance page: %v\n\n",
			orDash(d.Primary), d.Source, d.Target, d.WritesFrozen, d.PointOfNoReturn, d.MaintenanceOn)
	}
	b.WriteString(RenderDetails(p))
	return b.String()
}

func (w *dbCutover) publish(ctx workflow.Context) {
	d := &DBCutoverProgress{
		Source: w.spec.Source, Target: w.spec.Target, Primary: w.primary,
		WritesFrozen: w.rec.frozen(), PointOfNoReturn: w.rec.Promoted, MaintenanceOn: w.rec.maintenanceOn(),
		DBRecordValue: strings.Join(w.rec.DBNow, ","), SourceGTID: w.obs.Servers.Source.GTID, TargetGTID: w.obs.Servers.Target.GTID,
		Lag: w.obs.Servers.Lag, FreezeStartedAt: w.freezeAt, ReverseReplicate: w.rec.ReplicatedBack,
	}
	if !w.writableAt.IsZero() {
		d.FreezeEndedAt, d.WriteFreeze = w.writableAt, w.writableAt.Sub(w.freezeAt)
	}
	w.s.Update(ctx, func(p *Progress) { p.DB = d })
}

// Step names, in order; the plan and the progress use the same.
const (
	dbStepPreflight   = "preflight"
	dbStepApproval    = "approval"
	dbStepMaintOn     = "maintenance page on"
	dbStepFreeze      = "freeze writes"
	dbStepCatchUp     = "catch up"
	dbStepPromote     = "promote (point of no return)"
	dbStepReplicate   = "replicate back"
	dbStepRepoint     = "repoint"
	dbStepVerify      = "verify"
	dbStepMaintOff    = "maintenance page off"
	dbPlanHashVersion = "db-cutover/v1"
)

func (w *dbCutover) execute(ctx workflow.Context) (DBCutoverResult, error) {
	w.s.SetPhase(ctx, dbStepPreflight, "reading the records and both servers")
	obs, err := dbObserve(ctx, w.spec, "preflight")
	if err != nil {
		return DBCutoverResult{}, err
	}
	w.obs = obs
	plan := dbPlan(w.spec, obs)
	if err := checkDrift(w.in.PlanHash, plan.Hash, plan.Observations[0]); err != nil {
		return DBCutoverResult{}, err
	}
	if err := holdLocks(ctx, w.s, w.in.Common, plan.Resources); err != nil {
		return DBCutoverResult{}, err
	}
	w.rec.Spec, w.rec.DBZoneID, w.rec.DBBefore, w.rec.DBNow = w.spec, obs.DB.ZoneID, obs.DB.Set, obs.DB.Set.Values
	if obs.Maintenance != nil {
		w.rec.MaintZoneID, w.rec.MaintBefore, w.rec.MaintNow = obs.Maintenance.ZoneID, obs.Maintenance.Set, obs.Maintenance.Set.Values
	}
	w.s.SetPlannedSteps(ctx, plan.Steps)
	w.s.Update(ctx, func(p *Progress) { p.PlanHash = plan.Hash })
	w.publish(ctx)
	w.s.Audit(ctx, SystemIdentity, "preflight", fmt.Sprintf("plan %s: %s", plan.Hash, strings.Join(plan.Observations, "; ")), "")
	step := 0
	w.s.EndStep(ctx, step, StepDone, "")

	// Everything a person decides happens before the freeze: inside it, the write downtime
	// would become human response time.
	for _, st := range plan.Steps[1:] {
		step++
		if st.Name == dbStepFreeze {
			break
		}
		if err := w.s.WaitWhilePaused(ctx); err != nil {
			return DBCutoverResult{}, err
		}
		if w.s.RollbackRequest() != nil {
			w.s.EndStep(ctx, step, StepFailed, "rollback requested")
			return w.rollback(ctx)
		}
		w.s.SetPhase(ctx, st.Name, st.Description)
		w.s.StartStep(ctx, step)
		switch st.Name {
		case dbStepApproval:
			w.s.SetMessage(ctx, "waiting for approval: "+st.Description)
			ok, err := w.s.AwaitApproval(ctx, st.Name)
			if err != nil {
				return DBCutoverResult{}, err
			}
			if !ok {
				w.s.EndStep(ctx, step, StepFailed, "not approved: rollback requested")
				return w.rollback(ctx)
			}
		case dbStepMaintOn:
			if err := holdThrough(ctx, w.s, w.in.budgets(), "maintenance page on", w.maintenanceOn); err != nil {
				w.s.EndStep(ctx, step, StepFailed, failureLine(err))
				return DBCutoverResult{}, err
			}
		}
		w.s.EndStep(ctx, step, StepDone, "")
	}
	if w.s.RollbackRequest() != nil {
		return w.rollback(ctx)
	}
	// From the freeze on, no step holds: each is bounded and a failure ends the run, whose
	// end (runEnd) undoes the freeze at once.
	return w.switchOver(ctx, step)
}
