package cli

import (
	"fmt"
	"time"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// The broker move's view: each application and the broker it uses now, the drain (messages
// left, ack rate, estimate, what still blocks "drained"), and the shovels ferry runs.
func init() {
	registerView(ferryv1.MigrationKind_MIGRATION_KIND_BROKER_MOVE, kindView{detail: brokerDetail, line: brokerLine})
}

func brokerDetail(p *printer, m *ferryv1.Migration) {
	b := m.GetBrokerMove()
	if b == nil {
		return
	}
	p.printf("\nbrokers: old %s -> new %s (%s)\n", orDash(b.GetOldBroker()), orDash(b.GetNewBroker()), orDash(b.GetOrder()))
	rows := [][]string{{"  APPLICATION", "ROLE", "BROKER"}}
	for _, a := range b.GetApplications() {
		rows = append(rows, []string{"  " + a.GetConnectionName(), a.GetRole(), a.GetBroker()})
	}
	p.table(rows, func(row, col int, cell string) string {
		if row > 0 && col == 2 && cell == "new" {
			return p.st.paint(ansiBold, cell)
		}
		return cell
	})
	if d := b.GetDrain(); d != nil {
		state := "draining"
		if d.GetDrained() {
			state = "drained"
		}
		p.printf("  drain              %s queues %s: %d message(s) left, %.1f acks/s", d.GetBroker(), state, d.GetMessagesLeft(), d.GetAckRate())
		if e := d.GetEstimate().AsDuration(); e > 0 && !d.GetDrained() {
			p.printf(", about %s more", e.Round(time.Second))
		}
		if s := d.GetStarted(); s != nil && s.IsValid() {
			p.printf(" (since %s)", s.AsTime().In(p.loc).Format("15:04:05"))
		}
		p.printf("\n")
		if bl := d.GetBlocking(); bl != "" && !d.GetDrained() {
			p.printf("  waiting on         %s\n", bl)
		}
	}
	for _, s := range b.GetShovels() {
		p.printf("  shovel             %s (on-confirm)\n", s)
	}
}

func brokerLine(p *printer, m *ferryv1.Migration) string {
	b := m.GetBrokerMove()
	if b == nil {
		return ""
	}
	onNew := 0
	for _, a := range b.GetApplications() {
		if a.GetBroker() == "new" {
			onNew++
		}
	}
	line := fmt.Sprintf("%d/%d apps on the new broker", onNew, len(b.GetApplications()))
	if d := b.GetDrain(); d != nil && !d.GetDrained() {
		line += fmt.Sprintf("  %d left to drain", d.GetMessagesLeft())
	}
	return line
}
