package control

import "time"

// Call is one mutating AWS call as the sandbox saw it.
type Call struct {
	Seq       int64             `json:"seq"`
	Time      time.Time         `json:"time"`
	Region    string            `json:"region"`
	Service   string            `json:"service"` // ec2, route53, cloudwatch
	Operation string            `json:"operation"`
	Params    map[string]string `json:"params,omitempty"`
	// Result is "ok" or the error code answered (e.g. RequestLimitExceeded).
	Result string `json:"result"`
	// IDs are the ids the call returned or acted on (image, snapshot, change ids).
	IDs         []string `json:"ids,omitempty"`
	ClientToken string   `json:"clientToken,omitempty"`
	// Replay is true when a ClientToken matched an earlier call and nothing new started.
	Replay    bool   `json:"replay,omitempty"`
	RequestID string `json:"requestId"`
}

// CallFilter selects calls; empty fields match everything.
type CallFilter struct {
	Service   string
	Operation string
	Since     time.Time
}

// Match reports whether c passes the filter.
func (f CallFilter) Match(c Call) bool {
	return (f.Service == "" || f.Service == c.Service) &&
		(f.Operation == "" || f.Operation == c.Operation) &&
		(f.Since.IsZero() || !c.Time.Before(f.Since))
}

// RegionTraffic is what the simulated clients saw of one region's app.
type RegionTraffic struct {
	Region         string  `json:"region"`
	RequestsPerSec float64 `json:"requestsPerSec"`
	// ErrorRate is errors / requests over the window (0 with no requests).
	ErrorRate      float64 `json:"errorRate"`
	WindowRequests int64   `json:"windowRequests"`
	WindowErrors   int64   `json:"windowErrors"`
	Total          int64   `json:"total"`
	Errors         int64   `json:"errors"`
}

// Traffic is the client population's view of every region.
type Traffic struct {
	WindowSec float64                  `json:"windowSec"`
	Regions   map[string]RegionTraffic `json:"regions"`
}

// TrafficSeries is what the clients saw of each region, second by second: the sandbox's
// own record of a stretch of time (a GameDay's timeline and its impact are computed from
// it). Seconds are Unix seconds; each point counts the requests sent in that second.
type TrafficSeries struct {
	From    int64                     `json:"from"`
	To      int64                     `json:"to"` // exclusive
	Regions map[string][]TrafficPoint `json:"regions"`
}

// TrafficPoint is one second of one region: requests sent and how many failed.
type TrafficPoint struct {
	Sec      int64 `json:"sec"`
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
}

// MaxSeriesSec bounds one series read: the sandbox keeps 15 minutes of seconds.
const MaxSeriesSec = 15 * 60
