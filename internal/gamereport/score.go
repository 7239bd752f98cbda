// Package gamereport turns a GameDay's record (workflows.GameDayRun: the sandbox's traffic
// second by second, the weights Route 53 accepted, the migration's audit trail, people's
// presses) into its report: each experiment's time to detect, mitigate and recover, its
// impact and score, each team's score, a narrative, and a self-contained HTML page with
// server-drawn SVG charts. It is pure: the same run always gives the same report, and the
// formula can change without touching a workflow history.
package gamereport

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ferryhq/ferry/sandbox/gameday"
	"github.com/ferryhq/ferry/workflows"
)

// The scoring formula, shown in the report.
const (
	// DetectWithin and RecoverWithin are where detection and recovery points reach zero.
	DetectWithin  = 5 * time.Minute
	RecoverWithin = 10 * time.Minute
	// Window is the steady-state window: a second is unhealthy when a watched region's
	// client error rate over the Window seconds ending with it exceeds maxErrorRate.
	Window = 5
	// Formula is the scoring rule in words.
	Formula = "experiment score = 40 x max(0, 1 - TTD/5 min) + 40 x max(0, 1 - TTR/10 min) + 20 x (1 - failed requests / requests); " +
		"undetected: no detection points; never recovered: no recovery points; no client impact: full recovery points. " +
		"Team score = mean over experiments of 60 x max(0, 1 - the team's TTD/5 min) + 40 x max(0, 1 - the team's TTM/10 min), where the team's times are its members' first detect and mitigate presses."
)

// Report is a GameDay's report; its JSON is the report's JSON file.
type Report struct {
	ID           string
	Name         string
	Mode         string
	State        string
	StartedBy    string
	Started      time.Time
	Ended        time.Time `json:",omitzero"`
	Regions      []string
	MaxErrorRate float64
	Formula      string
	Experiments  []Experiment
	Teams        []TeamScore
	// MeanScore is the experiments' mean score; MTTD their mean time to detect.
	MeanScore float64
	MTTDSec   *float64 `json:",omitempty"`
	Migration *Outcome `json:",omitempty"`
	Notes     []string `json:",omitempty"`
}

// Mark is a moment in an experiment: its detection, mitigation or recovery.
type Mark struct {
	Time time.Time
	// By is who: a person (with Team), "ferry" (a gate, a rollback, a pause) or "clients"
	// (the steady state back).
	By     string
	Team   string `json:",omitempty"`
	Detail string `json:",omitempty"`
}

// Experiment is one experiment's measures.
type Experiment struct {
	Name  string
	Fault string
	State string
	Start time.Time `json:",omitzero"`
	End   time.Time `json:",omitzero"`
	// Effect is the first failed client request in a watched region after the start.
	Effect    *time.Time `json:",omitempty"`
	Detected  *Mark      `json:",omitempty"`
	Mitigated *Mark      `json:",omitempty"`
	Recovered *Mark      `json:",omitempty"`
	// Seconds from the fault's start; nil when it did not happen.
	TTDSec *float64 `json:",omitempty"`
	TTMSec *float64 `json:",omitempty"`
	TTRSec *float64 `json:",omitempty"`
	// Impact: client requests to the watched regions from the start to the recovery (or
	// the end of the records), and how many failed.
	Requests       int64
	FailedRequests int64
	Score          float64
	Narrative      []string
	Timeline       Timeline
}

// Timeline is what an experiment's chart draws.
type Timeline struct {
	From, To time.Time
	// ErrorRate is the watched regions' client error rate per second (Window-second
	// rolling), as fractions.
	ErrorRate []Point
	// Weights: each set identifier's weight share (0..1) over time, from Route 53's
	// accepted changes.
	Weights map[string][]Point `json:",omitempty"`
}

// Point is one value at one time.
type Point struct {
	Time  time.Time
	Value float64
}

// TeamScore is one team's result.
type TeamScore struct {
	Team      string
	Members   []string
	Detected  int
	Mitigated int
	MTTDSec   *float64 `json:",omitempty"`
	Score     float64
}

// Outcome is how the migration under test ended.
type Outcome struct {
	ID      string
	State   string
	Message string `json:",omitempty"`
	Good    bool
	Why     string
}

// Build computes the report of run.
func Build(run workflows.GameDayRun) Report {
	r := Report{
		ID: run.ID, Name: run.Spec.Name, Mode: run.Spec.Mode, State: run.State, StartedBy: run.StartedBy,
		Started: run.Started, Ended: run.Ended, Regions: run.Spec.Regions, MaxErrorRate: run.Spec.MaxErrorRate,
		Formula: Formula, Notes: run.Notes,
	}
	var scores, ttds []float64
	for _, e := range run.Experiments {
		x := experiment(run, e)
		r.Experiments = append(r.Experiments, x)
		if !x.Start.IsZero() {
			scores = append(scores, x.Score)
			if x.TTDSec != nil {
				ttds = append(ttds, *x.TTDSec)
			}
		}
	}
	r.MeanScore = round1(mean(scores))
	if len(ttds) > 0 {
		r.MTTDSec = ptr(round1(mean(ttds)))
	}
	r.Teams = teams(run, r.Experiments)
	r.Migration = outcome(run)
	return r
}

func experiment(run workflows.GameDayRun, e workflows.ExperimentRun) Experiment {
	f := e.Fault
	x := Experiment{Name: e.Name, Fault: faultText(f), State: e.State, Start: e.Start, End: e.End}
	if e.Start.IsZero() {
		x.Narrative = []string{"Not run: " + e.State + "."}
		return x
	}
	rec := e.Records
	if rec == nil {
		rec = &gameday.Records{}
	}
	watch := run.Spec.Regions
	if len(watch) == 0 {
		for r := range rec.Series.Regions {
			watch = append(watch, r)
		}
		sort.Strings(watch)
	}
	s := newSeries(rec, watch)
	x.Timeline = Timeline{From: unix(s.from), To: unix(s.to), ErrorRate: s.rates(), Weights: weights(run, rec, s)}

	startSec := e.Start.Unix()
	effect, lastBad := s.effect(startSec, run.Spec.MaxErrorRate)
	if effect >= 0 {
		// Counted in whole seconds: the fault's own second counts from its start.
		x.Effect = ptr(later(unix(effect), e.Start))
	}
	if lastBad >= 0 && lastBad+1 < s.to {
		x.Recovered = &Mark{Time: unix(lastBad + 1), By: "clients", Detail: fmt.Sprintf("every watched region's error rate at or under %.1f%%", run.Spec.MaxErrorRate*100)}
	}
	end := s.to
	if x.Recovered != nil {
		end = lastBad + 1
	}
	x.Requests, x.FailedRequests = s.impact(startSec, end)

	// Detection and mitigation: ferry's (the migration's trail) or a person's press,
	// whichever came first within the experiment's records.
	until := unix(s.to)
	for _, ev := range rec.Events {
		if ev.Time.Before(e.Start) || !ev.Time.Before(until) {
			continue
		}
		switch {
		case ev.Action == "gate failed":
			x.Detected = earlier(x.Detected, Mark{Time: ev.Time, By: "ferry", Detail: ev.Reason})
		case isMitigation(ev.Action):
			by := ev.Identity
			if by == workflows.SystemIdentity || by == "" {
				by = "ferry"
			}
			x.Mitigated = earlier(x.Mitigated, Mark{Time: ev.Time, By: by, Detail: ev.Action + ": " + ev.Reason})
		}
	}
	for _, p := range run.Presses {
		if p.Time.Before(e.Start) || !p.Time.Before(until) {
			continue
		}
		m := Mark{Time: p.Time, By: p.Identity, Team: p.Team, Detail: p.Note}
		switch p.Action {
		case "detect":
			x.Detected = earlier(x.Detected, m)
		case "mitigate":
			x.Mitigated = earlier(x.Mitigated, m)
		}
	}
	since := func(m *Mark) *float64 {
		if m == nil {
			return nil
		}
		return ptr(round1(m.Time.Sub(e.Start).Seconds()))
	}
	x.TTDSec, x.TTMSec, x.TTRSec = since(x.Detected), since(x.Mitigated), since(x.Recovered)
	x.Score = round1(score(x))
	x.Narrative = narrative(run, e, x)
	return x
}

// score applies Formula.
func score(x Experiment) float64 {
	var d, r float64
	if x.TTDSec != nil {
		d = 40 * math.Max(0, 1-*x.TTDSec/DetectWithin.Seconds())
	}
	switch {
	case x.Effect == nil:
		r = 40
	case x.TTRSec != nil:
		r = 40 * math.Max(0, 1-*x.TTRSec/RecoverWithin.Seconds())
	}
	i := 20.0
	if x.Requests > 0 {
		i = 20 * (1 - float64(x.FailedRequests)/float64(x.Requests))
	}
	return d + r + i
}

func isMitigation(action string) bool {
	return action == "rollback" || action == "pause" || action == "rollback immediate" || action == "rollback forwarded" || action == "pause forwarded"
}

func earlier(m *Mark, n Mark) *Mark {
	if m == nil || n.Time.Before(m.Time) {
		return &n
	}
	return m
}

func teams(run workflows.GameDayRun, xs []Experiment) []TeamScore {
	var out []TeamScore
	for _, t := range run.Spec.Teams {
		ts := TeamScore{Team: t.Name, Members: t.Members}
		var pts, ttds []float64
		for _, x := range xs {
			if x.Start.IsZero() {
				continue
			}
			var det, mit *float64
			for _, p := range run.Presses {
				if p.Team != t.Name || p.Time.Before(x.Start) || !p.Time.Before(x.Timeline.To) {
					continue
				}
				s := p.Time.Sub(x.Start).Seconds()
				if p.Action == "detect" && (det == nil || s < *det) {
					det = ptr(s)
				}
				if p.Action == "mitigate" && (mit == nil || s < *mit) {
					mit = ptr(s)
				}
			}
			var p float64
			if det != nil {
				ts.Detected++
				ttds = append(ttds, *det)
				p += 60 * math.Max(0, 1-*det/DetectWithin.Seconds())
			}
			if mit != nil {
				ts.Mitigated++
				p += 40 * math.Max(0, 1-*mit/RecoverWithin.Seconds())
			}
			pts = append(pts, p)
		}
		ts.Score = round1(mean(pts))
		if len(ttds) > 0 {
			ts.MTTDSec = ptr(round1(mean(ttds)))
		}
		out = append(out, ts)
	}
	return out
}

// outcome says whether the migration ended in a good state: completed, or rolled back
// with the record's weights where they were when the game began (Route 53's answers).
func outcome(run workflows.GameDayRun) *Outcome {
	if run.MigrationID == "" {
		return nil
	}
	o := &Outcome{ID: run.MigrationID}
	if run.Migration == nil {
		o.Why = "its end could not be read"
		return o
	}
	o.State, o.Message = run.Migration.State, run.Migration.Message
	switch {
	case !run.Migration.Ended:
		o.Why = "it had not ended when the game did (state " + o.State + ")"
	case o.State == workflows.StateCompleted:
		o.Good, o.Why = true, "it completed"
	case o.State == workflows.StateRolledBack && run.StartWeights != nil && !equalWeights(run.StartWeights, run.EndWeights):
		o.Why = fmt.Sprintf("it reports rolled back, but the weights are %s, not %s as at the start", weightText(run.EndWeights), weightText(run.StartWeights))
	case o.State == workflows.StateRolledBack && run.StartWeights != nil:
		o.Good, o.Why = true, "it rolled back, and Route 53's weights are back where they started ("+weightText(run.StartWeights)+")"
	case o.State == workflows.StateRolledBack:
		o.Good, o.Why = true, "it rolled back"
	default:
		o.Why = "it ended " + o.State
	}
	return o
}

func equalWeights(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func weightText(w map[string]int64) string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, w[k]))
	}
	return strings.Join(parts, " ")
}

func faultText(f workflows.GameDayFault) string {
	s := f.Target + " " + f.Kind
	if f.Rate > 0 && f.Rate != 1 {
		s += fmt.Sprintf(" at %g%%", f.Rate*100)
	}
	if f.LatencyMs > 0 {
		s += fmt.Sprintf(" +%d ms", f.LatencyMs)
	}
	if f.Command != "" {
		s += " on " + f.Command
	}
	return s
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

func ptr[T any](v T) *T { return &v }

func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
