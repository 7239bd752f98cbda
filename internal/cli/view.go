package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// kindView is one kind's part of the text output. Each kind registers its view from its own
// file (view_<kind>.go) with registerView, so a new kind adds a file and edits none: the
// common parts (header, steps, approvals, audit) live in output.go and know no kind.
type kindView struct {
	// detail writes the kind's section of `ferry get`, below the common header.
	detail func(p *printer, m *ferryv1.Migration)
	// line is the kind's part of one `ferry watch` line (no newline).
	line func(p *printer, m *ferryv1.Migration) string
}

var kindViews = map[ferryv1.MigrationKind]kindView{}

// registerView is called from the init function of a kind's view file.
func registerView(k ferryv1.MigrationKind, v kindView) {
	if _, dup := kindViews[k]; dup {
		panic("cli: two views for " + k.String())
	}
	kindViews[k] = v
}

// printer carries what every view needs to write the same way: where, in colour or not,
// the clock (fixed in golden tests), the time zone and how wide.
type printer struct {
	w    io.Writer
	st   style
	now  time.Time
	loc  *time.Location
	wide bool
	// child returns a region move phase's own migration to show inline under the phase,
	// or nil (not fetched, not started, or no permission).
	child func(id string) *ferryv1.Migration
	// depth indents a child's view inside its parent's tree.
	depth int
}

func newPrinter(w io.Writer, wide bool) *printer {
	return &printer{w: w, st: styleFor(w), now: time.Now(), loc: time.Local, wide: wide}
}

// printf writes one line at the printer's indentation.
func (p *printer) printf(format string, args ...any) {
	fmt.Fprint(p.w, strings.Repeat("  ", p.depth))
	fmt.Fprintf(p.w, format, args...)
}

// table writes rows (cells separated by tabs) aligned, at the printer's indentation. It
// aligns before colouring, so escape codes never skew the columns: cells are painted by
// paint after the padding is known.
func (p *printer) table(rows [][]string, paint func(row, col int, cell string) string) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
	for i, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		if paint != nil {
			line = paintCells(line, rows[i], func(col int, cell string) string { return paint(i, col, cell) })
		}
		p.printf("%s\n", strings.TrimRight(line, " "))
	}
}

// paintCells replaces each cell of an aligned line with its painted form, left to right.
func paintCells(line string, cells []string, paint func(col int, cell string) string) string {
	var out strings.Builder
	rest := line
	for col, cell := range cells {
		i := strings.Index(rest, cell)
		if cell == "" || i < 0 {
			continue
		}
		out.WriteString(rest[:i])
		out.WriteString(paint(col, cell))
		rest = rest[i+len(cell):]
	}
	out.WriteString(rest)
	return out.String()
}

func (p *printer) when(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().In(p.loc).Format(time.DateTime)
}

func (p *printer) clock(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().In(p.loc).Format(time.TimeOnly)
}

// runningStep is the step under way, if any: long waits are timed from its start.
func runningStep(m *ferryv1.Migration) *ferryv1.Step {
	for _, s := range m.GetSteps() {
		if s.GetStatus() == ferryv1.StepStatus_STEP_STATUS_RUNNING {
			return s
		}
	}
	return nil
}

// orDash keeps empty table cells visible.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
