package cli

import (
	"fmt"
	"time"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// The database cutover's view: the two servers with the one the application writes to
// marked, whether writes are frozen (and for how long: the number the night is judged by),
// whether the point of no return is passed, where the maintenance page and the database's
// name point, and the replication between the two.
func init() {
	registerView(ferryv1.MigrationKind_MIGRATION_KIND_DATABASE_CUTOVER, kindView{detail: dbDetail, line: dbLine})
}

func dbDetail(p *printer, m *ferryv1.Migration) {
	d := m.GetDatabaseCutover()
	if d == nil {
		return
	}
	p.printf("\nservers (* takes the application's writes):\n")
	rows := [][]string{{"   ROLE", "SERVER", "GTID"}}
	for _, s := range []struct{ role, host, gtid string }{{"source", d.GetSource(), d.GetSourceGtid()}, {"target", d.GetTarget(), d.GetTargetGtid()}} {
		mark := "   "
		if s.host != "" && s.host == d.GetPrimary() {
			mark = " * "
		}
		rows = append(rows, []string{mark + s.role, orDash(s.host), orDash(s.gtid)})
	}
	p.table(rows, func(row, col int, cell string) string {
		if row > 0 && col == 0 && cell[:3] == " * " {
			return p.st.paint(ansiBold, cell)
		}
		return cell
	})
	writes := "accepted"
	if d.GetWritesFrozen() {
		writes = "frozen"
	}
	freeze := d.GetWriteFreeze().AsDuration().Round(time.Millisecond)
	p.printf("  writes             %s (frozen %s in all)\n", p.st.state(writes), freeze)
	pnr := "not passed: a failure undoes the freeze and changes nothing else"
	if d.GetPointOfNoReturn() {
		pnr = "passed: the target took writes; going back is the switch the other way"
	}
	p.printf("  point of no return %s\n", pnr)
	p.printf("  maintenance page   %s\n", onOff(d.GetMaintenanceOn()))
	p.printf("  database name ->   %s\n", orDash(d.GetDbRecordValue()))
	p.printf("  replication        lag %s; old primary from new: %s\n", d.GetLag().AsDuration().Round(time.Millisecond), yesNo(d.GetReverseReplication()))
}

func dbLine(p *printer, m *ferryv1.Migration) string {
	d := m.GetDatabaseCutover()
	if d == nil {
		return ""
	}
	line := "primary " + orDash(d.GetPrimary())
	if d.GetWritesFrozen() {
		line += "  " + p.st.state("frozen")
	}
	if f := d.GetWriteFreeze().AsDuration(); f > 0 {
		line += fmt.Sprintf("  freeze %s", f.Round(time.Millisecond))
	}
	if d.GetPointOfNoReturn() {
		line += "  past the point of no return"
	}
	return line
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
