package apps

import (
	"sync"
	"time"

	"github.com/ferryhq/ferry/sandbox/control"
)

// historySec is how far back the per-second counts reach: CloudWatch's GetMetricData asks
// for periods in the past (a gate reads the last few minutes), so the sliding window's
// buckets are kept in a ring this long rather than dropped at the window's edge.
const historySec = 15 * 60

// stats keeps per-region counters in one-second buckets (a ring of historySec) for the
// sliding window and for metric queries, plus totals.
type stats struct {
	mu      sync.Mutex
	window  time.Duration
	regions map[string]*regionStats
}

type bucket struct {
	sec              int64 // unix second the bucket counts; a stale slot has an older one
	requests, errors int64
}

type regionStats struct {
	ring          [historySec]bucket
	total, errors int64
}

func newStats(window time.Duration) *stats {
	return &stats{window: window, regions: map[string]*regionStats{}}
}

func (s *stats) ensure(region string) *regionStats {
	r := s.regions[region]
	if r == nil {
		r = &regionStats{}
		s.regions[region] = r
	}
	return r
}

func (s *stats) add(region string, at time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.ensure(region)
	sec := at.Unix()
	b := &r.ring[sec%historySec]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	b.requests++
	r.total++
	if !ok {
		b.errors++
		r.errors++
	}
}

// sum adds the buckets of seconds in [from, to); s.mu is held.
func (r *regionStats) sum(from, to int64) (requests, errors int64) {
	from = max(from, to-historySec)
	for sec := from; sec < to; sec++ {
		if b := r.ring[sec%historySec]; b.sec == sec {
			requests += b.requests
			errors += b.errors
		}
	}
	return requests, errors
}

// counts returns a region's requests and errors in [from, to), at one-second resolution;
// ok is false for a region without an app.
func (s *stats) counts(region string, from, to time.Time) (requests, errors int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.regions[region]
	if r == nil {
		return 0, 0, false
	}
	requests, errors = r.sum(from.Unix(), to.Unix())
	return requests, errors, true
}

func (s *stats) snapshot(now time.Time) control.Traffic {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := control.Traffic{WindowSec: s.window.Seconds(), Regions: map[string]control.RegionTraffic{}}
	// The window is the seconds (now-window, now], the current, partial second included.
	to := now.Unix() + 1
	from := now.Add(-s.window).Unix() + 1
	for name, r := range s.regions {
		rt := control.RegionTraffic{Region: name, Total: r.total, Errors: r.errors}
		rt.WindowRequests, rt.WindowErrors = r.sum(from, to)
		rt.RequestsPerSec = float64(rt.WindowRequests) / s.window.Seconds()
		if rt.WindowRequests > 0 {
			rt.ErrorRate = float64(rt.WindowErrors) / float64(rt.WindowRequests)
		}
		out.Regions[name] = rt
	}
	return out
}

// series returns every region's per-second counts for the seconds [from, to), seconds
// older than the ring's reach left out.
func (s *stats) series(from, to int64) control.TrafficSeries {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := control.TrafficSeries{From: from, To: to, Regions: map[string][]control.TrafficPoint{}}
	for name, r := range s.regions {
		pts := []control.TrafficPoint{}
		for sec := max(from, to-historySec); sec < to; sec++ {
			p := control.TrafficPoint{Sec: sec}
			if b := r.ring[sec%historySec]; b.sec == sec {
				p.Requests, p.Errors = b.requests, b.errors
			}
			pts = append(pts, p)
		}
		out.Regions[name] = pts
	}
	return out
}
