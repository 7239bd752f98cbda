package gamereport

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed report.html.tmpl
var pageTemplate string

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"secs":  Secs,
	"pct":   func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"chart": chart,
	"add":   func(a, b int) int { return a + b },
	"join":  strings.Join,
}).Parse(pageTemplate))

// Secs formats an optional number of seconds as the table shows it ("-" for none). The
// report's test reads the table back and compares it with the JSON through this format.
func Secs(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f s", *v)
}

// HTML renders the report as one self-contained page: inline CSS, SVG charts drawn here,
// no script and nothing fetched, so it opens anywhere, offline, and can be mailed.
func HTML(r Report) ([]byte, error) {
	var b bytes.Buffer
	if err := page.Execute(&b, r); err != nil {
		return nil, fmt.Errorf("render report: %w", err)
	}
	return b.Bytes(), nil
}

// JSON is the report's JSON file: every number the page shows.
func JSON(r Report) ([]byte, error) {
	return json.MarshalIndent(r, "", "  ")
}

// Chart geometry.
const (
	chartW, chartH         = 760, 240
	padL, padR, padT, padB = 56, 56, 16, 30
	plotW, plotH           = chartW - padL - padR, chartH - padT - padB
	weightDefault          = "#495057"
)

// weightColors draw the weight lines, one per set identifier in name order.
var weightColors = []string{"#2b8a3e", "#e67700", "#7048e8", "#0b7285"}

// chart draws experiment i's timeline: its fault as a band, the error rate and the
// weights as lines, detection, mitigation and recovery as marks.
func chart(i int, x Experiment, maxRate float64) template.HTML {
	tl := x.Timeline
	if tl.To.Sub(tl.From) <= 0 {
		return template.HTML(`<p class="muted">No records.</p>`)
	}
	span := tl.To.Sub(tl.From).Seconds()
	px := func(t time.Time) float64 {
		return padL + math.Max(0, math.Min(1, t.Sub(tl.From).Seconds()/span))*plotW
	}
	peak := math.Max(2*maxRate, 0.05)
	for _, p := range tl.ErrorRate {
		peak = math.Max(peak, p.Value)
	}
	peak = math.Ceil(peak*20) / 20 // a multiple of 5%
	yRate := func(v float64) float64 { return padT + plotH*(1-v/peak) }
	yShare := func(v float64) float64 { return padT + plotH*(1-v) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" data-experiment="%d" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="timeline of %s">`,
		i, chartW, chartH, chartW, chartH, template.HTMLEscapeString(x.Name))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" class="plot"/>`, padL, padT, plotW, plotH)
	if !x.Start.IsZero() {
		end := x.End
		if end.IsZero() {
			end = tl.To
		}
		fmt.Fprintf(&b, `<rect class="fault-band" data-experiment="%d" x="%.1f" y="%d" width="%.1f" height="%d"><title>%s</title></rect>`,
			i, px(x.Start), padT, math.Max(1, px(end)-px(x.Start)), plotH, template.HTMLEscapeString(x.Fault))
	}
	// Axes: time every tick seconds, the error rate on the left, the weight share right.
	tick := niceTick(span)
	for s := 0.0; s <= span; s += tick {
		xp := padL + s/span*plotW
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/><text class="axis" x="%.1f" y="%d" text-anchor="middle">%+.0fs</text>`,
			xp, xp, padT, padT+plotH, xp, chartH-10, s-x.Start.Sub(tl.From).Seconds())
	}
	for _, f := range []float64{0, 0.5, 1} {
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%s%%</text>`, padL-6, yRate(f*peak)+4, strconv.FormatFloat(math.Round(f*peak*1000)/10, 'f', -1, 64))
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f">%.0f%%</text>`, chartW-padR+6, yShare(f)+4, f*100)
	}
	fmt.Fprintf(&b, `<line class="threshold" x1="%d" x2="%d" y1="%.1f" y2="%.1f"><title>maxErrorRate %.1f%%</title></line>`,
		padL, padL+plotW, yRate(maxRate), yRate(maxRate), maxRate*100)
	// Weights: steps (a weight holds until the next change).
	sets := make([]string, 0, len(tl.Weights))
	for k := range tl.Weights {
		sets = append(sets, k)
	}
	slices.Sort(sets)
	colors := weightColors
	for n, set := range sets {
		var pts []string
		for j, p := range tl.Weights[set] {
			if j > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.Time), yShare(tl.Weights[set][j-1].Value)))
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.Time), yShare(p.Value)))
		}
		color := weightDefault
		if n < len(colors) {
			color = colors[n]
		}
		fmt.Fprintf(&b, `<polyline class="weight" data-set="%s" stroke="%s" points="%s"><title>weight of %s</title></polyline>`,
			template.HTMLEscapeString(set), color, strings.Join(pts, " "), template.HTMLEscapeString(set))
	}
	var pts []string
	for _, p := range tl.ErrorRate {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.Time), yRate(p.Value)))
	}
	fmt.Fprintf(&b, `<polyline class="error-rate" points="%s"><title>client error rate</title></polyline>`, strings.Join(pts, " "))
	// Each mark's label on its own line, so marks at the same moment stay readable.
	for n, m := range []struct {
		class string
		mark  *Mark
	}{{"detect", x.Detected}, {"mitigate", x.Mitigated}, {"recover", x.Recovered}} {
		if m.mark == nil {
			continue
		}
		xp := px(m.mark.Time)
		fmt.Fprintf(&b, `<g class="mark %s"><line x1="%.1f" x2="%.1f" y1="%d" y2="%d"/><text x="%.1f" y="%d">%s</text><title>%s by %s at %s</title></g>`,
			m.class, xp, xp, padT, padT+plotH, xp+3, padT+12+14*n, m.class, m.class, template.HTMLEscapeString(m.mark.By), m.mark.Time.UTC().Format("15:04:05"))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every text in it was escaped above
}

// niceTick picks a time tick giving 4 to 10 ticks.
func niceTick(span float64) float64 {
	for _, t := range []float64{5, 10, 15, 30, 60, 120, 300, 600} {
		if span/t <= 10 {
			return t
		}
	}
	return 1200
}
