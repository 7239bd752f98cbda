package apps

import (
	"sync"
	"time"

	"github.com/ferryhq/ferry/sandbox/control"
)

// stats keeps per-region counters in one-second buckets for a sliding window, plus totals.
type stats struct {
	mu      sync.Mutex
	window  time.Duration
	regions map[string]*regionStats
}

type regionStats struct {
	buckets       map[int64][2]int64 // unix second -> requests, errors
	total, errors int64
}

func newStats(window time.Duration) *stats {
	return &stats{window: window, regions: map[string]*regionStats{}}
}

func (s *stats) ensure(region string) *regionStats {
	r := s.regions[region]
	if r == nil {
		r = &regionStats{buckets: map[int64][2]int64{}}
		s.regions[region] = r
	}
	return r
}

func (s *stats) add(region string, at time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.ensure(region)
	sec := at.Unix()
	b := r.buckets[sec]
	b[0]++
	r.total++
	if !ok {
		b[1]++
		r.errors++
	}
	r.buckets[sec] = b
	cut := at.Add(-2 * s.window).Unix()
	for k := range r.buckets {
		if k < cut {
			delete(r.buckets, k)
		}
	}
}

func (s *stats) snapshot(now time.Time) control.Traffic {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := control.Traffic{WindowSec: s.window.Seconds(), Regions: map[string]control.RegionTraffic{}}
	from := now.Add(-s.window).Unix()
	for name, r := range s.regions {
		rt := control.RegionTraffic{Region: name, Total: r.total, Errors: r.errors}
		for sec, b := range r.buckets {
			if sec > from {
				rt.WindowRequests += b[0]
				rt.WindowErrors += b[1]
			}
		}
		rt.RequestsPerSec = float64(rt.WindowRequests) / s.window.Seconds()
		if rt.WindowRequests > 0 {
			rt.ErrorRate = float64(rt.WindowErrors) / float64(rt.WindowRequests)
		}
		out.Regions[name] = rt
	}
	return out
}
