package cli

import (
	"fmt"
	"regexp"
	"strings"
	"time"

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
	// GetMigration may answer without the spec: the view then names the sides "from" and
	// "to" and takes the dwell from the step's own description.
	sp := m.GetSpec().GetDnsShift()
	from, to := or(sp.GetFrom(), "from"), or(sp.GetTo(), "to")
	p.printf("\ntraffic:\n")
	p.printf("  %s %d  %s  %d %s\n", from, d.GetFromWeight(), p.st.progressBar(float64(d.GetToWeight()), float64(d.GetFromWeight()+d.GetToWeight())), d.GetToWeight(), to)
	step := fmt.Sprintf("step %d", d.GetStepIndex()+1)
	if n := len(sp.GetSchedule()); n > 0 {
		step += fmt.Sprintf(" of %d (schedule %s)", n, joinUints(sp.GetSchedule()))
	} else if n := len(m.GetSteps()); n > 0 {
		step += fmt.Sprintf(" of %d", n)
	}
	p.printf("  %s\n", step)
	if s := runningStep(m); s != nil && m.GetCloseTime() == nil {
		if dwell, exact := dnsDwell(s, sp); dwell > 0 {
			note := ""
			if !exact {
				note = "  " + p.st.paint(ansiDim, "(at least: a longer TTL lengthens it)")
			}
			p.printf("  dwell %s%s\n", p.st.waitBar(s.GetStartTime().AsTime(), dwell, p.now), note)
		}
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

// stepDwell finds "dwell 1m0s" in a step's description (the plan states the dwell it
// computed, max(bake time, TTL)).
var stepDwell = regexp.MustCompile(`dwell ([0-9][0-9hms.]*)`)

// dnsDwell is the running step's dwell: the plan's figure when the step states it (exact),
// else the spec's bake time (a lower bound: the TTL may be longer).
func dnsDwell(s *ferryv1.Step, sp *ferryv1.DnsShiftSpec) (time.Duration, bool) {
	if mm := stepDwell.FindStringSubmatch(s.GetDetail()); mm != nil {
		if d, err := time.ParseDuration(mm[1]); err == nil {
			return d, true
		}
	}
	return sp.GetBakeTime().AsDuration(), false
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func joinUints(v []uint32) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}
