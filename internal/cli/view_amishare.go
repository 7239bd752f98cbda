package cli

import (
	"strings"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// The AMI share's view: one row per (image, region) copy, and a bar over the copies with
// the time left estimated from the pace so far (EC2 promises no copy time).
func init() {
	registerView(ferryv1.MigrationKind_MIGRATION_KIND_AMI_SHARE, kindView{detail: amiDetail, line: amiLine})
}

// amiDone reports whether a copy no longer waits on EC2.
func amiDone(state string) bool {
	return state == "available" || state == "shared" || state == "failed" || state == "rolled-back"
}

func amiDetail(p *printer, m *ferryv1.Migration) {
	copies := m.GetAmiShare().GetCopies()
	if len(copies) == 0 {
		return
	}
	shared := amiShareTargets(m.GetSpec().GetAmiShare())
	p.printf("\ncopies:\n")
	rows := [][]string{{"  IMAGE", "REGION", "COPY", "STATE", "PROGRESS", "SHARED WITH"}}
	if p.wide {
		rows[0] = append(rows[0], "DETAIL")
	}
	done := 0
	for _, c := range copies {
		prog := "-"
		switch c.GetState() {
		case "available", "shared":
			prog = "100%"
			done++
		case "copying":
			prog = "copying"
		case "failed", "rolled-back":
			done++
		}
		with := "-"
		if c.GetState() == "shared" && shared != "" {
			with = shared
		}
		r := []string{"  " + c.GetSourceImageId(), c.GetRegion(), orDash(c.GetImageId()), c.GetState(), prog, with}
		if p.wide {
			r = append(r, c.GetDetail())
		}
		rows = append(rows, r)
	}
	p.table(rows, func(row, col int, cell string) string {
		if row > 0 && col == 3 {
			return p.st.state(cell)
		}
		return cell
	})
	if !p.wide {
		for _, c := range copies {
			if c.GetState() == "failed" && c.GetDetail() != "" {
				p.printf("  %s %s: %s\n", p.st.state("failed"), c.GetSourceImageId()+" -> "+c.GetRegion(), c.GetDetail())
			}
		}
	}
	if done < len(copies) && m.GetCloseTime() == nil {
		start := m.GetStartTime().AsTime()
		if s := runningStep(m); s != nil {
			start = s.GetStartTime().AsTime()
		}
		p.printf("  %s\n", p.st.etaBar(done, len(copies), start, p.now))
	}
}

// amiShareTargets names who the copies are shared with, from the spec.
func amiShareTargets(s *ferryv1.AmiShareSpec) string {
	var all []string
	all = append(all, s.GetShareWithAccounts()...)
	all = append(all, s.GetShareWithOrganizations()...)
	all = append(all, s.GetShareWithOrganizationalUnits()...)
	return strings.Join(all, ",")
}

func amiLine(p *printer, m *ferryv1.Migration) string {
	copies := m.GetAmiShare().GetCopies()
	if len(copies) == 0 {
		return ""
	}
	done := 0
	var states []string
	for _, c := range copies {
		if amiDone(c.GetState()) {
			done++
		}
		states = append(states, c.GetRegion()+" "+p.st.state(c.GetState()))
	}
	return "copies " + p.st.progressBar(float64(done), float64(len(copies))) + "  " + strings.Join(states, ", ")
}
