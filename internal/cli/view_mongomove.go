package cli

import (
	"fmt"
	"strconv"
	"time"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// The MongoDB primary move's view: the members as a table with the primary marked, each
// member's sync judged against the spec's maxLag, and a bar over the reconfigs (one vote
// or priority change each, MongoDB's safe-reconfig rule).
func init() {
	registerView(ferryv1.MigrationKind_MIGRATION_KIND_MONGO_PRIMARY_MOVE, kindView{detail: mongoDetail, line: mongoLine})
}

// mongoDefaultMaxLag is the spec's default maxLag (spec.MongoPrimaryMove), used to judge a
// member's lag when the spec in the answer leaves it unset.
const mongoDefaultMaxLag = 10 * time.Second

// mongoSync says where a member's data is: being copied (initial sync), within the lag the
// move accepts, or behind it.
func mongoSync(mem *ferryv1.MongoMemberStatus, maxLag time.Duration) string {
	switch mem.GetState() {
	case "PRIMARY":
		return "-"
	case "STARTUP", "STARTUP2":
		return "initial sync"
	case "SECONDARY":
		if mem.GetLag().AsDuration() <= maxLag {
			return "in sync"
		}
		return "catching up"
	}
	return "-"
}

func mongoDetail(p *printer, m *ferryv1.Migration) {
	mg := m.GetMongoMove()
	if mg == nil {
		return
	}
	maxLag := mongoDefaultMaxLag
	if l := m.GetSpec().GetMongoPrimaryMove().GetMaxLag(); l != nil {
		maxLag = l.AsDuration()
	}
	p.printf("\nmembers (config version %d, * primary):\n", mg.GetConfigVersion())
	rows := [][]string{{"   HOST", "REGION", "STATE", "VOTES", "PRIORITY", "LAG", "SYNC"}}
	// The sync bar counts the members the move adds (the target region's); the others
	// were in sync before it began.
	target := m.GetSpec().GetMongoPrimaryMove().GetTargetRegion()
	synced, syncing := 0, 0
	for _, mem := range mg.GetMembers() {
		mark := "   "
		if mem.GetHost() == mg.GetPrimary() || mem.GetState() == "PRIMARY" {
			mark = " * "
		}
		sync := mongoSync(mem, maxLag)
		if sync != "-" && (target == "" || mem.GetRegion() == target) {
			syncing++
			if sync == "in sync" {
				synced++
			}
		}
		rows = append(rows, []string{mark + mem.GetHost(), orDash(mem.GetRegion()), mem.GetState(), strconv.Itoa(int(mem.GetVotes())),
			strconv.FormatFloat(mem.GetPriority(), 'g', -1, 64), mem.GetLag().AsDuration().String(), sync})
	}
	p.table(rows, func(row, col int, cell string) string {
		if row > 0 && (col == 2 || col == 6) {
			return p.st.state(cell)
		}
		if row > 0 && col == 0 && cell[:3] == " * " {
			return p.st.paint(ansiBold, cell)
		}
		return cell
	})
	if syncing > 0 && synced < syncing && m.GetCloseTime() == nil {
		p.printf("  sync      %s  (lag at most %s)\n", p.st.etaBar(synced, syncing, stepStart(m), p.now), maxLag)
	}
	if n := mg.GetReconfigsPlanned(); n > 0 {
		p.printf("  reconfigs %s  %d of %d\n", p.st.progressBar(float64(mg.GetReconfigsApplied()), float64(n)), mg.GetReconfigsApplied(), n)
	}
}

// stepStart is when the step under way began (else the migration's start): a wait's pace
// is measured from it.
func stepStart(m *ferryv1.Migration) time.Time {
	if s := runningStep(m); s != nil && s.GetStartTime() != nil {
		return s.GetStartTime().AsTime()
	}
	return m.GetStartTime().AsTime()
}

func mongoLine(p *printer, m *ferryv1.Migration) string {
	mg := m.GetMongoMove()
	if mg == nil {
		return ""
	}
	line := "primary " + orDash(mg.GetPrimary())
	if n := mg.GetReconfigsPlanned(); n > 0 {
		line += fmt.Sprintf("  reconfigs %d/%d", mg.GetReconfigsApplied(), n)
	}
	for _, mem := range mg.GetMembers() {
		if mem.GetState() == "STARTUP2" {
			line += "  " + mem.GetHost() + " " + p.st.state("initial sync")
		}
	}
	return line
}
