package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// printMigration prints a migration readably, or as protojson with -o json.
func printMigration(w io.Writer, output string, m *ferryv1.Migration) error {
	if output == "json" {
		return printJSON(w, m)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\n", m.GetId())
	fmt.Fprintf(tw, "kind\t%s\n", kindText(m.GetKind()))
	fmt.Fprintf(tw, "state\t%s\n", stateText(m.GetState()))
	if m.GetPhase() != "" {
		fmt.Fprintf(tw, "phase\t%s\n", m.GetPhase())
	}
	if m.GetMessage() != "" {
		fmt.Fprintf(tw, "message\t%s\n", m.GetMessage())
	}
	fmt.Fprintf(tw, "initiator\t%s\n", m.GetInitiator())
	if m.GetStartTime() != nil {
		fmt.Fprintf(tw, "started\t%s\n", m.GetStartTime().AsTime().Local().Format(time.DateTime))
	}
	if m.GetCloseTime() != nil {
		fmt.Fprintf(tw, "ended\t%s\n", m.GetCloseTime().AsTime().Local().Format(time.DateTime))
	}
	if d := m.GetDnsShift(); d != nil {
		fmt.Fprintf(tw, "weights\tfrom=%d to=%d (step %d)\n", d.GetFromWeight(), d.GetToWeight(), d.GetStepIndex()+1)
		for _, gr := range d.GetGates() {
			fmt.Fprintf(tw, "gate\t%s %s: %s\n", healthMark(gr.GetHealthy()), gr.GetName(), gr.GetDetail())
		}
	}
	if m.GetPlanHash() != "" {
		fmt.Fprintf(tw, "plan hash\t%s\n", m.GetPlanHash())
	}
	if m.GetUiUrl() != "" {
		fmt.Fprintf(tw, "temporal ui\t%s\n", m.GetUiUrl())
	}
	_ = tw.Flush()
	if len(m.GetSteps()) > 0 {
		fmt.Fprintln(w, "\nsteps:")
		for _, s := range m.GetSteps() {
			fmt.Fprintf(w, "  %-12s %s%s\n", "["+stepText(s.GetStatus())+"]", s.GetName(), suffix(s.GetDetail()))
		}
	}
	for _, a := range m.GetPendingApprovals() {
		fmt.Fprintf(w, "\nawaiting approval: %s (%d of %d", a.GetStep(), len(a.GetApprovedBy()), a.GetRequired())
		if len(a.GetApprovedBy()) > 0 {
			fmt.Fprintf(w, ": %s", strings.Join(a.GetApprovedBy(), ", "))
		}
		fmt.Fprintf(w, ")\n  approve with: ferry approve %s --as approver\n", m.GetId())
	}
	if len(m.GetAudit()) > 0 {
		fmt.Fprintln(w, "\naudit:")
		for _, e := range m.GetAudit() {
			fmt.Fprintf(w, "  %s  %-10s %-14s %s%s\n", e.GetTime().AsTime().Local().Format(time.TimeOnly), e.GetIdentity(), e.GetAction(), e.GetStep(), suffix(e.GetReason()))
		}
	}
	return nil
}

// printWatchLine prints one line per change: what moved since the last update.
func printWatchLine(w io.Writer, m, last *ferryv1.Migration) {
	line := fmt.Sprintf("%s  %-17s %s", time.Now().Format(time.TimeOnly), stateText(m.GetState()), m.GetPhase())
	if d := m.GetDnsShift(); d != nil {
		line += fmt.Sprintf("  weights from=%d to=%d %s", d.GetFromWeight(), d.GetToWeight(), bar(int(d.GetToWeight()), int(d.GetFromWeight()+d.GetToWeight())))
		for _, g := range d.GetGates() {
			line += fmt.Sprintf("  %s%s", healthMark(g.GetHealthy()), g.GetName())
		}
	}
	if len(m.GetPendingApprovals()) > 0 && len(last.GetPendingApprovals()) == 0 {
		line += "  (approve with: ferry approve " + m.GetId() + " --as approver)"
	}
	if m.GetMessage() != "" && m.GetMessage() != last.GetMessage() {
		line += "  " + m.GetMessage()
	}
	fmt.Fprintln(w, line)
}

// bar draws progress as [#####.....] 50%.
func bar(n, total int) string {
	if total <= 0 {
		return ""
	}
	const width = 20
	filled := n * width / total
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + fmt.Sprintf("] %d%%", n*100/total)
}

func healthMark(ok bool) string {
	if ok {
		return "ok "
	}
	return "FAIL "
}

func stepText(s ferryv1.StepStatus) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(s.String(), "STEP_STATUS_"), "_", "-"))
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return "  " + s
}
