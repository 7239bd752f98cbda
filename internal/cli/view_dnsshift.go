package cli

import (
	"fmt"
	"strings"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// The DNS shift's view: the two weights as a bar, the step in the schedule, the dwell of
// the step under way with its time left, and the gates' latest verdicts.
func init() {
	registerView(ferryv1.MigrationKind_MIGRATION_KIND_DNS_SHIFT, kindView{detail: dnsDetail, line: dnsLine})
}

func dnsDetail(p *printer, m *ferryv1.Migration) {
	d := m.GetDnsShift()
	if d == nil {
		return
	}
	sp := m.GetSpec().GetDnsShift()
	from, to := orDash(sp.GetFrom()), orDash(sp.GetTo())
	p.printf("\ntraffic:\n")
	p.printf("  %s %d  %s  %d %s\n", from, d.GetFromWeight(), p.st.progressBar(float64(d.GetToWeight()), float64(d.GetFromWeight()+d.GetToWeight())), d.GetToWeight(), to)
	step := fmt.Sprintf("step %d", d.GetStepIndex()+1)
	if n := len(sp.GetSchedule()); n > 0 {
		step += fmt.Sprintf(" of %d (schedule %s)", n, joinUints(sp.GetSchedule()))
	}
	p.printf("  %s\n", step)
	// The dwell is max(bake time, record TTL); the view knows only the bake time, so the
	// time left is a lower bound when the TTL is longer.
	if s := runningStep(m); s != nil && sp.GetBakeTime() != nil && m.GetCloseTime() == nil {
		p.printf("  dwell %s  %s\n", p.st.waitBar(s.GetStartTime().AsTime(), sp.GetBakeTime().AsDuration(), p.now), p.st.paint(ansiDim, "(at least: a longer TTL lengthens it)"))
	}
	if len(d.GetGates()) == 0 {
		return
	}
	p.printf("\ngates:\n")
	rows := [][]string{}
	for _, g := range d.GetGates() {
		r := []string{"  " + gateVerdict(g), g.GetName(), g.GetDetail()}
		if p.wide {
			r = append(r, p.clock(g.GetTime()))
		}
		rows = append(rows, r)
	}
	p.table(rows, func(_, col int, cell string) string {
		if col == 0 {
			return "  " + p.st.state(strings.TrimSpace(cell))
		}
		return cell
	})
}

// gateVerdict is pass, fail or inconclusive; results from before verdicts existed carry
// only healthy.
func gateVerdict(g *ferryv1.GateResult) string {
	if v := g.GetVerdict(); v != "" {
		return v
	}
	if g.GetHealthy() {
		return "pass"
	}
	return "fail"
}

func dnsLine(p *printer, m *ferryv1.Migration) string {
	d := m.GetDnsShift()
	if d == nil {
		return ""
	}
	line := fmt.Sprintf("weights from=%d to=%d %s", d.GetFromWeight(), d.GetToWeight(), p.st.progressBar(float64(d.GetToWeight()), float64(d.GetFromWeight()+d.GetToWeight())))
	for _, g := range d.GetGates() {
		line += "  " + p.st.state(gateVerdict(g)) + " " + g.GetName()
	}
	return line
}

func joinUints(v []uint32) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}
