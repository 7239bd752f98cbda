package gamereport

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ferryhq/ferry/sandbox/gameday"
	"github.com/ferryhq/ferry/workflows"
)

// series is the watched regions' per-second counts of one experiment's records.
type series struct {
	from, to int64 // seconds [from, to)
	// req and errs per watched region, indexed by second - from.
	req, errs map[string][]int64
}

func newSeries(rec *gameday.Records, watch []string) series {
	s := series{from: rec.Series.From, to: rec.Series.To, req: map[string][]int64{}, errs: map[string][]int64{}}
	if s.to < s.from {
		s.to = s.from
	}
	n := int(s.to - s.from)
	for _, r := range watch {
		s.req[r], s.errs[r] = make([]int64, n), make([]int64, n)
		for _, p := range rec.Series.Regions[r] {
			if i := int(p.Sec - s.from); i >= 0 && i < n {
				s.req[r][i], s.errs[r][i] = p.Requests, p.Errors
			}
		}
	}
	return s
}

// window returns a region's requests and errors over the Window seconds ending with i.
func (s series) window(r string, i int) (req, errs int64) {
	for j := max(0, i-Window+1); j <= i; j++ {
		req += s.req[r][j]
		errs += s.errs[r][j]
	}
	return req, errs
}

// unhealthy reports whether second i breaks the steady state in some watched region.
func (s series) unhealthy(i int, maxRate float64) bool {
	for r := range s.req {
		if req, errs := s.window(r, i); req > 0 && float64(errs)/float64(req) > maxRate {
			return true
		}
	}
	return false
}

// effect returns the first second from start with a failed request in a watched region,
// and the last unhealthy second from start (-1 for none).
func (s series) effect(start int64, maxRate float64) (effect, lastBad int64) {
	effect, lastBad = -1, -1
	for sec := max(start, s.from); sec < s.to; sec++ {
		i := int(sec - s.from)
		for r := range s.errs {
			if effect < 0 && s.errs[r][i] > 0 {
				effect = sec
			}
		}
		if s.unhealthy(i, maxRate) {
			lastBad = sec
		}
	}
	return effect, lastBad
}

// impact sums the watched regions' requests and failures in [from, to).
func (s series) impact(from, to int64) (req, errs int64) {
	for sec := max(from, s.from); sec < min(to, s.to); sec++ {
		for r := range s.req {
			req += s.req[r][sec-s.from]
			errs += s.errs[r][sec-s.from]
		}
	}
	return req, errs
}

// rates is the watched regions' pooled error rate per second (rolling Window).
func (s series) rates() []Point {
	var out []Point
	for sec := s.from; sec < s.to; sec++ {
		var req, errs int64
		for r := range s.req {
			q, e := s.window(r, int(sec-s.from))
			req += q
			errs += e
		}
		v := 0.0
		if req > 0 {
			v = float64(errs) / float64(req)
		}
		out = append(out, Point{Time: unix(sec), Value: v})
	}
	return out
}

// weights is each set's share of the record's total weight over the records' stretch:
// from the weights at the game's start, each change Route 53 accepted applied in order.
func weights(run workflows.GameDayRun, rec *gameday.Records, s series) map[string][]Point {
	if run.Spec.Record == nil {
		return nil
	}
	cur := map[string]int64{}
	for k, v := range run.StartWeights {
		cur[k] = v
	}
	changes := slices.Clone(rec.Weights)
	slices.SortStableFunc(changes, func(a, b gameday.WeightChange) int { return a.Time.Compare(b.Time) })
	from, to := unix(s.from), unix(s.to)
	// Changes before the chart's start set the starting point.
	i := 0
	for ; i < len(changes) && changes[i].Time.Before(from); i++ {
		cur[changes[i].SetIdentifier] = changes[i].Weight
	}
	out := map[string][]Point{}
	emit := func(t time.Time) {
		var total int64
		for _, v := range cur {
			total += v
		}
		for k, v := range cur {
			share := 0.0
			if total > 0 {
				share = float64(v) / float64(total)
			}
			out[k] = append(out[k], Point{Time: t, Value: share})
		}
	}
	emit(from)
	for ; i < len(changes) && changes[i].Time.Before(to); i++ {
		cur[changes[i].SetIdentifier] = changes[i].Weight
		// One change batch sets every weight at once: draw it once.
		if i+1 == len(changes) || !changes[i+1].Time.Equal(changes[i].Time) {
			emit(changes[i].Time)
		}
	}
	emit(to)
	if len(cur) == 0 {
		return nil
	}
	return out
}

// narrative tells an experiment in sentences: what broke, who noticed, what ferry did.
func narrative(run workflows.GameDayRun, e workflows.ExperimentRun, x Experiment) []string {
	at := func(t time.Time) string { return fmt.Sprintf("+%.1f s", t.Sub(e.Start).Seconds()) }
	out := []string{fmt.Sprintf("At %s the fault %s started, for %s.", e.Start.UTC().Format("15:04:05"), x.Fault, e.End.Sub(e.Start).Round(time.Second))}
	if x.Effect != nil {
		out = append(out, fmt.Sprintf("Clients saw the first failed request at %s.", at(*x.Effect)))
	} else {
		out = append(out, "No client request to a watched region failed.")
	}
	switch {
	case x.Detected == nil:
		out = append(out, "Nobody detected it: no gate failed and no one pressed detect.")
	case x.Detected.By == "ferry":
		out = append(out, fmt.Sprintf("ferry detected it at %s (%s).", at(x.Detected.Time), x.Detected.Detail))
	default:
		out = append(out, fmt.Sprintf("%s (%s) detected it at %s%s.", x.Detected.By, x.Detected.Team, at(x.Detected.Time), quoted(x.Detected.Detail)))
	}
	// The other detect presses in the experiment's stretch; mitigate presses come after
	// the mitigation sentence.
	others := func(action string, first *Mark) {
		for _, p := range run.Presses {
			if p.Action == action && (first == nil || !p.Time.Equal(first.Time)) && !p.Time.Before(e.Start) && p.Time.Before(x.Timeline.To) {
				out = append(out, fmt.Sprintf("%s (%s) pressed %s at %s%s.", p.Identity, p.Team, action, at(p.Time), quoted(p.Note)))
			}
		}
	}
	others("detect", x.Detected)
	if x.Mitigated != nil {
		out = append(out, fmt.Sprintf("%s mitigated at %s (%s).", x.Mitigated.By, at(x.Mitigated.Time), x.Mitigated.Detail))
	} else {
		out = append(out, "Nothing was done to mitigate it.")
	}
	others("mitigate", x.Mitigated)
	switch {
	case x.Recovered != nil:
		out = append(out, fmt.Sprintf("The steady state was back at %s; %d of %d requests failed.", at(x.Recovered.Time), x.FailedRequests, x.Requests))
	case x.Effect != nil:
		out = append(out, fmt.Sprintf("The steady state had not come back when the records end; %d of %d requests failed.", x.FailedRequests, x.Requests))
	}
	return out
}

func quoted(note string) string {
	if strings.TrimSpace(note) == "" {
		return ""
	}
	return fmt.Sprintf(": %q", note)
}
