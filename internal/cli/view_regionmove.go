package cli

import (
	"fmt"
	"strings"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// The region move's view: its phases as a tree, each with its child migration's own view
// inline (fetched by `ferry get`), so one command shows copies, members and weights.
func init() {
	registerView(ferryv1.MigrationKind_MIGRATION_KIND_REGION_MOVE, kindView{detail: regionDetail, line: regionLine})
}

func regionDetail(p *printer, m *ferryv1.Migration) {
	phases := m.GetPhases()
	if len(phases) == 0 {
		return
	}
	p.printf("\nphases:\n")
	for i, ph := range phases {
		last := i == len(phases)-1
		branch, stem := "├─ ", "│  "
		if last {
			branch, stem = "└─ ", "   "
		}
		// Padded before painting, so colour codes do not skew the columns.
		state := fmt.Sprintf("%-12s", ph.GetState())
		p.printf("%s%-20s %s %s\n", branch, ph.GetName(), strings.Replace(state, ph.GetState(), p.st.state(ph.GetState()), 1), p.st.paint(ansiDim, ph.GetMigrationId()))
		if p.child == nil || ph.GetMigrationId() == "" || ph.GetState() == "pending" || ph.GetState() == "skipped" {
			continue
		}
		c := p.child(ph.GetMigrationId())
		if c == nil {
			continue
		}
		// The child's own view, drawn under the branch's stem at one more level.
		var b strings.Builder
		sub := *p
		sub.w, sub.depth, sub.child = &b, 0, nil
		if v, ok := kindViews[c.GetKind()]; ok && v.detail != nil {
			v.detail(&sub, c)
		}
		sub.pendingOnly(c)
		for _, line := range strings.Split(strings.Trim(b.String(), "\n"), "\n") {
			if strings.TrimSpace(line) == "" {
				p.printf("%s\n", strings.TrimRight(stem, " "))
				continue
			}
			p.printf("%s  %s\n", stem, line)
		}
	}
}

// pendingOnly notes the approval a child waits for (the parent forwards approvals).
func (p *printer) pendingOnly(m *ferryv1.Migration) {
	for _, a := range m.GetPendingApprovals() {
		p.printf("\n%s %s (%d of %d)\n", p.st.paint(ansiYellow, "awaiting approval:"), a.GetStep(), len(a.GetApprovedBy()), a.GetRequired())
	}
}

func regionLine(p *printer, m *ferryv1.Migration) string {
	var parts []string
	for _, ph := range m.GetPhases() {
		parts = append(parts, ph.GetName()+" "+p.st.state(ph.GetState()))
	}
	return strings.Join(parts, "  ")
}
