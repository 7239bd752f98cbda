package cli

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// dbFixture is the payments night's cutover (Milan's MariaDB to AWS) in state s.
func dbFixture(s mState) *ferryv1.Migration {
	m := base("db/pay.example/db-primary.shop.internal.", ferryv1.MigrationKind_MIGRATION_KIND_DATABASE_CUTOVER, s, "catch up")
	d := &ferryv1.DatabaseCutoverStatus{
		Source: "10.0.1.10:3306", Target: "10.8.1.20:3306", Primary: "10.0.1.10:3306",
		WritesFrozen: true, MaintenanceOn: true, DbRecordValue: "10.0.1.10",
		SourceGtid: "0-1-48211", TargetGtid: "0-1-48207", Lag: durationpb.New(40 * time.Millisecond),
		WriteFreeze: durationpb.New(310 * time.Millisecond),
	}
	m.Steps = []*ferryv1.Step{
		step("preflight", stDone, 29, 28, "GTID replication running, lag 0s, no errant transactions"),
		step("maintenance page on", stDone, 2, 1.5, ""),
		step("freeze writes", stDone, 1.5, 1.4, ""),
		step("catch up", stRun, 1.4, -1, ""),
		step("promote", stPend, -1, -1, "the point of no return"),
		step("repoint", stPend, -1, -1, ""),
		step("verify", stPend, -1, -1, ""),
		step("maintenance page off", stPend, -1, -1, ""),
	}
	switch s {
	case awaiting:
		m.Phase = "approve the freeze"
		d.WritesFrozen, d.MaintenanceOn, d.WriteFreeze = false, false, durationpb.New(0)
		m.Steps[1].Status, m.Steps[2].Status, m.Steps[3].Status = stPend, stPend, stPend
		m.PendingApprovals = []*ferryv1.PendingApproval{{Step: "freeze writes", Required: 1}}
	case completed:
		m.Phase = "done"
		d.Primary, d.WritesFrozen, d.MaintenanceOn, d.PointOfNoReturn = "10.8.1.20:3306", false, false, true
		d.DbRecordValue, d.ReverseReplication, d.TargetGtid = "10.8.1.20", true, "0-1-48211"
		d.WriteFreeze = durationpb.New(682 * time.Millisecond)
		for _, st := range m.Steps {
			st.Status = stDone
		}
	case rolledBk:
		m.Phase = "rolled back"
		d.WritesFrozen, d.MaintenanceOn = false, false
		m.Steps[3].Status, m.Steps[3].Detail = stRolled, "catch-up timeout after 5s: the freeze was undone"
	}
	m.DatabaseCutover = d
	return m
}
