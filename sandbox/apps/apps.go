// Package apps runs the sandbox's regional apps (real HTTP endpoints under
// /_apps/{region}/) and a simulated client population that resolves the weighted
// Route 53 record like a resolver and calls the app it lands on, so traffic gates see
// real error rates that follow the weights and the GameDay faults.
package apps

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/sandbox/awssim"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/topology"
)

// PathPrefix is where the apps are served on the sandbox port.
const PathPrefix = "/_apps/"

// Resolver answers a name's record sets; *awssim.Server implements it.
type Resolver interface {
	Resolve(name, typ string) []awssim.WeightedAnswer
}

// Options configures the apps and the client population.
type Options struct {
	Topology *topology.Topology
	Faults   *control.Registry // nil: no faults
	Resolver Resolver
	// BaseURL is where clients reach the apps, e.g. http://127.0.0.1:4566.
	BaseURL string
	// Clients and RequestsPerSec default to the topology's traffic section.
	Clients        int
	RequestsPerSec float64
	// Record is the name clients resolve (default: the topology's traffic.record).
	Record string
	// TTLScale multiplies record TTLs for client caches (tests use e.g. 0.001); 0 means 1.
	TTLScale float64
	// Window is the sliding window for rates (default 10 s).
	Window     time.Duration
	Seed       uint64
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Apps is the set of regional apps plus the client population.
type Apps struct {
	opts    Options
	log     *slog.Logger
	regions map[string]topology.App // by region
	byAddr  map[string]string       // record value -> region
	stats   *stats
	metrics *metrics

	mu      sync.Mutex
	rnd     *rand.Rand
	clients []clientCache
}

type clientCache struct {
	region  string
	expires time.Time
}

// New returns the apps of a topology; call Run to start the client population.
func New(opts Options) (*Apps, error) {
	if opts.Topology == nil {
		return nil, fmt.Errorf("apps: no topology")
	}
	t := opts.Topology
	if opts.Clients == 0 {
		opts.Clients = t.Traffic.Clients
	}
	if opts.RequestsPerSec == 0 {
		opts.RequestsPerSec = t.Traffic.RequestsPerSec
	}
	if opts.Record == "" {
		opts.Record = t.Traffic.Record
	}
	if opts.Record == "" {
		for _, r := range t.Records() {
			if len(r.Weighted) > 0 {
				opts.Record = r.Name
				break
			}
		}
	}
	if opts.TTLScale == 0 {
		opts.TTLScale = 1
	}
	if opts.Window == 0 {
		opts.Window = 10 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Apps{
		opts: opts, log: opts.Logger, regions: map[string]topology.App{}, byAddr: map[string]string{},
		stats:   newStats(opts.Window),
		rnd:     rand.New(rand.NewPCG(opts.Seed, opts.Seed+1)),
		clients: make([]clientCache, max(opts.Clients, 1)),
	}
	regions := make([]string, 0, len(t.Apps))
	for _, app := range t.Apps {
		regions = append(regions, app.Region)
	}
	a.metrics = newMetrics(regions)
	for _, app := range t.Apps {
		a.regions[app.Region] = app
		a.byAddr[app.Address] = app.Region
		a.stats.ensure(app.Region)
	}
	return a, nil
}

// Healthy reports whether a region's app passes its health check (no unhealthy fault).
func (a *Apps) Healthy(region string) bool {
	if _, ok := a.regions[region]; !ok {
		return false
	}
	if a.opts.Faults == nil {
		return true
	}
	for _, f := range a.opts.Faults.Active("app:" + region) {
		if f.Kind == control.KindUnhealthy {
			return false
		}
	}
	return true
}

// ServeHTTP serves GET /_apps/{region}/healthz and GET /_apps/{region}/.
func (a *Apps) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, PathPrefix)
	region, path, _ := strings.Cut(rest, "/")
	app, ok := a.regions[region]
	if !ok {
		http.Error(w, fmt.Sprintf("no app in region %q", region), http.StatusNotFound)
		return
	}
	var faults []control.Fault
	if a.opts.Faults != nil {
		faults = a.opts.Faults.Hit("app:" + region)
	}
	// The app's own numbers count what it served its clients; health checks are the
	// probes' business, not traffic.
	start := time.Now()
	code := http.StatusOK
	if path != "healthz" {
		defer func() { a.metrics.served(region, code, time.Since(start)) }()
	}
	for _, f := range faults {
		if f.Kind == control.KindLatency {
			t := time.NewTimer(time.Duration(f.LatencyMs) * time.Millisecond)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				code = 499 // the client gave up first (nginx's "client closed request")
				return
			}
		}
	}
	w.Header().Set("X-Sandbox-Region", region)
	switch path {
	case "healthz":
		if !a.Healthy(region) {
			code = http.StatusServiceUnavailable
			http.Error(w, "unhealthy (sandbox fault)", code)
			return
		}
		fmt.Fprintln(w, "ok")
	default:
		for _, f := range faults {
			if f.Kind == control.KindUnhealthy || f.Kind == control.KindError {
				code = http.StatusInternalServerError
				http.Error(w, "internal error (sandbox fault)", code)
				return
			}
		}
		fmt.Fprintf(w, "%s in %s (%s)\n", app.Name, region, app.Address)
	}
}

// pick chooses a region for one client, as a resolver would: answers are cached for the
// record's TTL, weighted sets are chosen in proportion to weight (all zero: evenly), and
// sets whose health check fails are left out unless all fail.
func (a *Apps) pick(i int, now time.Time) (string, bool) {
	a.mu.Lock()
	c := a.clients[i]
	a.mu.Unlock()
	if c.region != "" && now.Before(c.expires) {
		return c.region, true
	}
	answers := a.opts.Resolver.Resolve(a.opts.Record, "A")
	if len(answers) == 0 {
		return "", false
	}
	healthy := answers[:0:0]
	for _, ans := range answers {
		if ans.Healthy {
			healthy = append(healthy, ans)
		}
	}
	if len(healthy) > 0 {
		answers = healthy
	}
	var total int64
	for _, ans := range answers {
		total += max(ans.Weight, 0)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var chosen awssim.WeightedAnswer
	if total == 0 {
		chosen = answers[a.rnd.IntN(len(answers))]
	} else {
		n := a.rnd.Int64N(total)
		for _, ans := range answers {
			if n < max(ans.Weight, 0) {
				chosen = ans
				break
			}
			n -= max(ans.Weight, 0)
		}
	}
	region := ""
	if len(chosen.Values) > 0 {
		region = a.byAddr[chosen.Values[0]]
	}
	if region == "" {
		return "", false
	}
	ttl := time.Duration(float64(chosen.TTL) * a.opts.TTLScale * float64(time.Second))
	a.clients[i] = clientCache{region: region, expires: now.Add(ttl)}
	return region, true
}

// Run drives the client population until ctx ends: RequestsPerSec requests in total,
// spread over the clients in turn.
func (a *Apps) Run(ctx context.Context) {
	if a.opts.RequestsPerSec <= 0 || a.opts.Resolver == nil || a.opts.BaseURL == "" {
		return
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / a.opts.RequestsPerSec))
	defer tick.Stop()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	i := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			client := i % len(a.clients)
			i++
			region, ok := a.pick(client, now)
			if !ok {
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				// Too many requests in flight (a latency fault): count it as a failure,
				// as a real client's timeout would.
				a.stats.add(region, now, false)
				a.metrics.called(region, false, -1)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				start := time.Now()
				ok := a.call(ctx, region)
				a.stats.add(region, time.Now(), ok)
				a.metrics.called(region, ok, time.Since(start))
			}()
		}
	}
}

func (a *Apps) call(ctx context.Context, region string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(a.opts.BaseURL, "/")+PathPrefix+region+"/", nil)
	if err != nil {
		return false
	}
	resp, err := a.opts.HTTPClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode < 500
}

// Traffic returns the per-region view of the client population.
func (a *Apps) Traffic() control.Traffic { return a.stats.snapshot(time.Now()) }

// Series returns the clients' per-second counts of every region for the seconds
// [from, to) (the last 15 minutes at most).
func (a *Apps) Series(from, to time.Time) control.TrafficSeries {
	return a.stats.series(from.Unix(), to.Unix())
}

// ErrorRate returns a region's error rate over the window; ok is false without requests.
func (a *Apps) ErrorRate(region string) (float64, bool) {
	rt, ok := a.stats.snapshot(time.Now()).Regions[region]
	if !ok || rt.WindowRequests == 0 {
		return 0, false
	}
	return rt.ErrorRate, true
}
