package cli

import (
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// outputFormats are the values of -o: text and wide for people (wide adds step timings,
// gate times and every link), json and yaml for programs (the API's messages as protojson).
var outputFormats = []string{"text", "wide", "json", "yaml"}

func checkOutput(o string) error {
	for _, f := range outputFormats {
		if o == f {
			return nil
		}
	}
	return fmt.Errorf("-o %q: use %s", o, strings.Join(outputFormats, ", "))
}

// isMachine reports whether o is a format for programs.
func isMachine(o string) bool { return o == "json" || o == "yaml" }

// printMessage writes a message as json or yaml.
func printMessage(w io.Writer, output string, m proto.Message) error {
	if output == "yaml" {
		return printYAML(w, m)
	}
	return printJSON(w, m)
}

// printMigration prints a migration for `ferry get` and the steering commands.
func printMigration(w io.Writer, output string, m *ferryv1.Migration) error {
	if isMachine(output) {
		return printMessage(w, output, m)
	}
	p := newPrinter(w, output == "wide")
	p.migration(m)
	return nil
}

// migration writes the common header, the kind's view, then steps, approvals and audit.
func (p *printer) migration(m *ferryv1.Migration) {
	st := p.st
	rows := [][]string{{"id", m.GetId()}, {"kind", kindText(m.GetKind())}, {"state", stateText(m.GetState())}}
	add := func(k, v string) {
		if v != "" {
			rows = append(rows, []string{k, v})
		}
	}
	add("phase", m.GetPhase())
	add("message", m.GetMessage())
	add("initiator", m.GetInitiator())
	if m.GetStartTime() != nil {
		add("started", p.when(m.GetStartTime()))
	}
	if m.GetCloseTime() != nil {
		add("ended", p.when(m.GetCloseTime()))
	}
	add("plan hash", m.GetPlanHash())
	if p.depth == 0 || p.wide {
		add("temporal ui", m.GetUiUrl())
	}
	p.table(rows, func(_, col int, cell string) string {
		if col == 1 && cell == stateText(m.GetState()) {
			return st.state(cell)
		}
		if col == 0 {
			return st.paint(ansiBold, cell)
		}
		return cell
	})
	if v, ok := kindViews[m.GetKind()]; ok && v.detail != nil {
		v.detail(p, m)
	}
	p.steps(m)
	for _, a := range m.GetPendingApprovals() {
		p.printf("\n%s %s (%d of %d", st.paint(ansiYellow, "awaiting approval:"), a.GetStep(), len(a.GetApprovedBy()), a.GetRequired())
		if len(a.GetApprovedBy()) > 0 {
			fmt.Fprintf(p.w, ": %s", strings.Join(a.GetApprovedBy(), ", "))
		}
		fmt.Fprintln(p.w, ")")
		p.printf("  approve with: ferry approve %s --as approver\n", m.GetId())
	}
	// A child shown inline keeps to its state and details; its audit is a `get` away.
	if len(m.GetAudit()) > 0 && p.depth == 0 {
		p.printf("\naudit:\n")
		rows := [][]string{}
		for _, e := range m.GetAudit() {
			rows = append(rows, []string{"  " + p.clock(e.GetTime()), e.GetIdentity(), e.GetAction(), e.GetStep(), e.GetReason()})
		}
		p.table(rows, nil)
	}
}

// steps lists the steps; wide adds when each started and ended.
func (p *printer) steps(m *ferryv1.Migration) {
	if len(m.GetSteps()) == 0 {
		return
	}
	p.printf("\nsteps:\n")
	rows := [][]string{}
	for _, s := range m.GetSteps() {
		r := []string{"  [" + stepText(s.GetStatus()) + "]", s.GetName(), s.GetDetail()}
		if p.wide {
			r = append(r, p.clock(s.GetStartTime()), p.clock(s.GetEndTime()))
		}
		rows = append(rows, r)
	}
	p.table(rows, func(_, col int, cell string) string {
		if col == 0 {
			w := strings.Trim(cell, " []")
			return strings.Replace(cell, w, p.st.state(w), 1)
		}
		return cell
	})
}

// printWatchLine prints one line per change: the state, the phase and the kind's own line.
func printWatchLine(p *printer, m, last *ferryv1.Migration) {
	line := fmt.Sprintf("%s  %-17s %s", p.now.In(p.loc).Format("15:04:05"), stateText(m.GetState()), m.GetPhase())
	line = strings.Replace(line, stateText(m.GetState()), p.st.state(stateText(m.GetState())), 1)
	if v, ok := kindViews[m.GetKind()]; ok && v.line != nil {
		if s := v.line(p, m); s != "" {
			line += "  " + s
		}
	}
	if len(m.GetPendingApprovals()) > 0 && len(last.GetPendingApprovals()) == 0 {
		line += "  (approve with: ferry approve " + m.GetId() + " --as approver)"
	}
	if m.GetMessage() != "" && m.GetMessage() != last.GetMessage() {
		line += "  " + m.GetMessage()
	}
	fmt.Fprintln(p.w, line)
}

func stepText(s ferryv1.StepStatus) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(s.String(), "STEP_STATUS_"), "_", "-"))
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// printYAML writes the protojson form as YAML, so both formats name fields the same way.
func printYAML(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(b)
	if err != nil {
		return err
	}
	_, err = w.Write(y)
	return err
}
