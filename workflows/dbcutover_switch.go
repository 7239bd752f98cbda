package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// The switch itself: freeze, catch up, promote, replicate back, repoint, verify,
// maintenance off. Inside the freeze every activity is bounded by seconds and retried
// only a little: a step that cannot finish must fail fast so the freeze is undone.

func dbConn(spec DBCutoverSpec, addr string) activities.DBConn {
	return activities.DBConn{Addr: addr, User: spec.AdminUser, Flavor: spec.Flavor,
		Password: activities.Secret{Env: spec.AdminPassword.Env, File: spec.AdminPassword.File}}
}

// frozenOpts are the options of an activity run while writes are frozen: bound tight,
// a few quick retries (a dropped connection), then fail.
func frozenOpts(summary string, d time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    d,
		ScheduleToCloseTimeout: 2*d + time.Second,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: time.Second, MaximumAttempts: 3},
		Summary:                summary,
	}
}

func (w *dbCutover) switchOver(ctx workflow.Context, step int) (DBCutoverResult, error) {
	spec := w.spec
	src, tgt := dbConn(spec, spec.Source), dbConn(spec, spec.Target)
	run := func(name string, f func() error) error {
		w.s.SetPhase(ctx, name, "")
		w.s.StartStep(ctx, step)
		if err := f(); err != nil {
			w.s.EndStep(ctx, step, StepFailed, failureLine(err))
			return err
		}
		w.s.EndStep(ctx, step, StepDone, "")
		w.publish(ctx)
		step++
		return nil
	}
	var frozen activities.DBFreezeOutput
	if err := run(dbStepFreeze, func() error {
		w.freezeAt = workflow.Now(ctx)
		// Recorded before the call: a freeze whose answer is lost is still undone.
		w.rec.Frozen = true
		return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts("freeze writes on "+spec.Source, 10*time.Second)),
			mysqlActs.DBFreeze, activities.DBFreezeInput{Server: src, AppUser: spec.AppUser, AppUserHost: spec.AppUserHost, Settle: spec.FreezeSettle}).Get(ctx, &frozen)
	}); err != nil {
		return DBCutoverResult{}, err
	}
	w.s.Audit(ctx, SystemIdentity, "frozen", fmt.Sprintf("%s read_only, %s locked, %d connection(s) killed; GTID position %s", spec.Source, spec.AppUser, frozen.Killed, frozen.Position), dbStepFreeze)

	if err := run(dbStepCatchUp, func() error {
		var out activities.DBCatchUpOutput
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts(fmt.Sprintf("wait up to %s for %s to execute %s", spec.CatchUpTimeout, spec.Target, frozen.Position), spec.CatchUpTimeout+5*time.Second)),
			mysqlActs.DBCatchUp, activities.DBCatchUpInput{Server: tgt, Position: frozen.Position, Timeout: spec.CatchUpTimeout}).Get(ctx, &out)
		w.catchUp = out.Waited
		if err == nil {
			w.obs.Servers.Target.GTID = out.Position
		}
		return err
	}); err != nil {
		return DBCutoverResult{}, err
	}

	if err := run(dbStepPromote, func() error {
		w.rec.PromoteAttempted = true
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts("promote "+spec.Target, 10*time.Second)),
			mysqlActs.DBPromote, activities.DBPromoteInput{Server: tgt, Position: frozen.Position, AppUser: spec.AppUser, AppUserHost: spec.AppUserHost}).Get(ctx, nil)
		if err == nil {
			w.rec.Promoted, w.primary = true, spec.Target
		}
		return err
	}); err != nil {
		return DBCutoverResult{}, err
	}
	w.s.Audit(ctx, SystemIdentity, "point of no return", spec.Target+" is writable: from here going back is a switch the other way", dbStepPromote)

	if err := run(dbStepReplicate, func() error {
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts(spec.Source+" replicates from "+spec.Target, 10*time.Second)),
			mysqlActs.DBReplicate, activities.DBReplicateInput{Server: src, Source: spec.Target, ReplUser: spec.ReplUser, FormerPrimary: true, WaitRunning: 2 * time.Second,
				ReplPassword: activities.Secret{Env: spec.ReplPassword.Env, File: spec.ReplPassword.File}}).Get(ctx, nil)
		if err == nil {
			w.rec.ReplicatedBack = true
		}
		return err
	}); err != nil {
		return DBCutoverResult{}, err
	}

	if err := run(dbStepRepoint, func() error {
		start := workflow.Now(ctx)
		err := w.setRecord(ctx, true, w.rec.DBZoneID, w.rec.DBBefore, []string{spec.DBRecordValue}, &w.rec.DBNow)
		w.insync = workflow.Now(ctx).Sub(start)
		return err
	}); err != nil {
		return DBCutoverResult{}, err
	}
	// Writes resume here: the target is writable and its name points at it.
	w.writableAt = workflow.Now(ctx)
	w.s.Audit(ctx, SystemIdentity, "writes resume", fmt.Sprintf("%s is the primary; write freeze %s (catch-up %s, repoint INSYNC %s)",
		spec.Target, ms(w.writableAt.Sub(w.freezeAt)), ms(w.catchUp), ms(w.insync)), dbStepRepoint)

	if err := run(dbStepVerify, func() error {
		w.canary = fmt.Sprintf("%s/%s", workflow.GetInfo(ctx).WorkflowExecution.ID, workflow.GetInfo(ctx).WorkflowExecution.RunID)
		var out activities.DBVerifyOutput
		return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, frozenOpts("verify "+spec.Target+" and replication back", 20*time.Second)),
			mysqlActs.DBVerify, activities.DBVerifyInput{Primary: tgt, Replica: src, AppUser: spec.AppUser, CanarySchema: spec.CanarySchema, CanaryID: w.canary, Wait: 5 * time.Second}).Get(ctx, &out)
	}); err != nil {
		return DBCutoverResult{}, err
	}

	if spec.Maintenance != nil {
		if err := run(dbStepMaintOff, func() error {
			return holdThrough(ctx, w.s, w.in.budgets(), "maintenance page off", func(ctx workflow.Context) error {
				return w.setRecord(ctx, false, w.rec.MaintZoneID, w.rec.MaintBefore, w.rec.MaintBefore.Values, &w.rec.MaintNow)
			})
		}); err != nil {
			return DBCutoverResult{}, err
		}
	}
	w.rec.Done = true
	msg := fmt.Sprintf("completed: %s is the primary, %s replicates from it; writes were frozen %s (catch-up %s, repoint INSYNC %s)",
		spec.Target, spec.Source, ms(w.writableAt.Sub(w.freezeAt)), ms(w.catchUp), ms(w.insync))
	w.s.Audit(ctx, SystemIdentity, "completed", msg, "")
	w.s.Finish(ctx, StateCompleted, msg)
	w.publish(ctx)
	return w.res(StateCompleted, msg), nil
}

// maintenanceOn points the application's record at the maintenance endpoint, waits for
// INSYNC and then the record's TTL, so resolvers' cached answers have expired too.
func (w *dbCutover) maintenanceOn(ctx workflow.Context) error {
	if err := w.setRecord(ctx, false, w.rec.MaintZoneID, w.rec.MaintBefore, []string{w.spec.MaintenanceValue}, &w.rec.MaintNow); err != nil {
		return err
	}
	ttl := time.Duration(w.rec.MaintBefore.TTL) * time.Second
	_, err := w.s.Sleep(ctx, ttl, fmt.Sprintf("maintenance record TTL %s", ttl))
	return err
}

// setRecord replaces a simple record's values, conditional on the values last seen (*now),
// and waits INSYNC (setSimpleRecord). frozen picks the tight options used while writes are
// frozen.
func (w *dbCutover) setRecord(ctx workflow.Context, frozen bool, zoneID string, seen activities.RecordSet, values []string, now *[]string) error {
	return setSimpleRecord(ctx, w.s, w.in.Common, recordSet{ZoneID: zoneID, Seen: seen, Now: now, Values: values, Frozen: frozen,
		Comment: "ferry database cutover " + workflow.GetInfo(ctx).WorkflowExecution.ID, Changed: w.publish})
}

// ms rounds a duration for people: a write freeze is read in milliseconds.
func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func sameValues(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// dbObserve reads both records (first: a missing record is refused before any
// connection to a server) and preflights both servers.
func dbObserve(ctx workflow.Context, spec DBCutoverSpec, what string) (dbObs, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second, MaximumAttempts: 5,
			NonRetryableErrorTypes: []string{activities.ErrNoSuchRecord, activities.ErrNoSuchZone, activities.ErrAmbiguousZone}},
		Summary: what + ": read records and servers",
	})
	var obs dbObs
	if err := workflow.ExecuteActivity(actx, r53.ReadRecord, activities.ReadRecordInput{Zone: spec.DBRecord.Zone, Name: spec.DBRecord.Name, Type: spec.DBRecord.Type}).Get(ctx, &obs.DB); err != nil {
		return obs, err
	}
	if m := spec.Maintenance; m != nil {
		var out activities.ReadRecordOutput
		if err := workflow.ExecuteActivity(actx, r53.ReadRecord, activities.ReadRecordInput{Zone: m.Zone, Name: m.Name, Type: m.Type}).Get(ctx, &out); err != nil {
			return obs, err
		}
		obs.Maintenance = &out
	}
	if err := workflow.ExecuteActivity(actx, mysqlActs.DBPreflight, activities.DBPreflightInput{
		Source: dbConn(spec, spec.Source), Target: dbConn(spec, spec.Target), AppUser: spec.AppUser, AppUserHost: spec.AppUserHost,
		ReplUser: spec.ReplUser, MaxLag: spec.MaxLag, MaxTxnAge: spec.MaxTxnAge,
	}).Get(ctx, &obs.Servers); err != nil {
		return obs, err
	}
	if p := obs.Servers.Problems; len(p) > 0 {
		return obs, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %d problem(s) would stop the switch; nothing was changed: %s", what, len(p), strings.Join(p, "; ")), ErrDBPreflightFailed, nil)
	}
	return obs, nil
}

// dbPlan is the plan from what the preflight read.
func dbPlan(spec DBCutoverSpec, obs dbObs) Plan {
	p := Plan{ID: DBCutoverWorkflowID(spec.DBRecord.Name), Kind: KindDBCutover}
	add := func(name, desc string, approval bool, wait time.Duration) {
		p.Steps = append(p.Steps, PlannedStep{Name: name, Description: desc, NeedsApproval: approval, Wait: wait})
	}
	add(dbStepPreflight, fmt.Sprintf("checked: %s replicates from %s with GTIDs, lag %s (max %s), no errant transactions, users and binlogs ready", spec.Target, spec.Source, obs.Servers.Lag, spec.MaxLag), false, 0)
	if spec.RequireApproval {
		add(dbStepApproval, "approve the cutover; after this no step waits for a person", true, 0)
	}
	if m := obs.Maintenance; m != nil {
		add(dbStepMaintOn, fmt.Sprintf("%s -> %s (from %s), wait INSYNC and its TTL %ds", m.Set.Name, spec.MaintenanceValue, strings.Join(m.Set.Values, ","), m.Set.TTL), false, time.Duration(m.Set.TTL)*time.Second)
	}
	add(dbStepFreeze, fmt.Sprintf("%s read_only, %s locked and its connections killed, GTID position checked still", spec.Source, spec.AppUser), false, 0)
	add(dbStepCatchUp, fmt.Sprintf("wait up to %s for %s to execute the source's last GTID; on timeout the freeze is undone", spec.CatchUpTimeout, spec.Target), false, spec.CatchUpTimeout)
	add(dbStepPromote, fmt.Sprintf("POINT OF NO RETURN: stop replication on %s and make it writable; going back after this is a switch the other way", spec.Target), false, 0)
	add(dbStepReplicate, fmt.Sprintf("%s replicates from %s (the way back)", spec.Source, spec.Target), false, 0)
	add(dbStepRepoint, fmt.Sprintf("%s -> %s (from %s), wait INSYNC", obs.DB.Set.Name, spec.DBRecordValue, strings.Join(obs.DB.Set.Values, ",")), false, 0)
	add(dbStepVerify, fmt.Sprintf("no application connection on %s, a canary written and read on %s, replication back running", spec.Source, spec.Target), false, 0)
	if m := obs.Maintenance; m != nil {
		add(dbStepMaintOff, fmt.Sprintf("%s back to %s", m.Set.Name, strings.Join(m.Set.Values, ",")), false, 0)
	}
	s := obs.Servers
	p.Observations = []string{
		fmt.Sprintf("source %s (server_id %d, %s) at %s; target %s (server_id %d) lag %s; %s = %s",
			spec.Source, s.Source.ServerID, s.Source.Version, s.Source.GTID, spec.Target, s.Target.ServerID, s.Lag, obs.DB.Set.Name, strings.Join(obs.DB.Set.Values, ",")),
	}
	doc := map[string]any{"spec": spec, "db": obs.DB, "sourceId": s.Source.ServerID, "targetId": s.Target.ServerID}
	if obs.Maintenance != nil {
		doc["maintenance"] = *obs.Maintenance
	}
	p.Hash = PlanHash(dbPlanHashVersion, doc)
	p.Resources = []Resource{DNSRecordResource(obs.DB.ZoneID, obs.DB.Set.Name, obs.DB.Set.Type), dbServerResource(spec.Source), dbServerResource(spec.Target)}
	if m := obs.Maintenance; m != nil {
		p.Resources = append(p.Resources, DNSRecordResource(m.ZoneID, m.Set.Name, m.Set.Type))
	}
	return p
}

// dbServerResource is a database server by its address.
func dbServerResource(addr string) Resource {
	return Resource{ID: "mysql/" + strings.ToLower(addr), Display: "database server " + addr}
}
