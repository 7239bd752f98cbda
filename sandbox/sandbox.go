// Package sandbox runs the simulated cloud on one port: AWS (EC2, Route 53, CloudWatch)
// over the real wire protocols, the regional apps under /_apps/, the control API under
// /_sandbox/, and the simulated client population.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/sandbox/apps"
	"github.com/ferryhq/ferry/sandbox/awssim"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/topology"
)

// DefaultAddr is where `ferry dev` serves the sandbox's AWS endpoint.
const DefaultAddr = "127.0.0.1:4566"

// Options configures Start.
type Options struct {
	Addr     string             // default 127.0.0.1:4566; port 0 picks a free port
	Topology *topology.Topology // default topology.Default()
	// Fast shortens every delay (copies, INSYNC, instance start, record TTLs) for tests.
	Fast bool
	// PriorRequestNotComplete makes Route 53 refuse a change to a zone while the zone's
	// previous change is PENDING. Off by default even with topology limits on, because
	// it slows every weighted shift; turn it on to rehearse it.
	PriorRequestNotComplete bool
	Logger                  *slog.Logger
	Mongo                   MongoFaulter // optional; may be nil
	// ClientTTLScale, when set, replaces the scale Fast puts on the clients' DNS caches
	// (0.001): 1 makes the clients keep an answer for the record's whole TTL, as resolvers
	// do, with the rest of Fast's short delays.
	ClientTTLScale float64
}

// MongoFaulter is implemented by the MongoDB simulator (wired by the caller); faults whose
// target starts with "mongo:" are forwarded to it.
type MongoFaulter interface {
	ApplyFault(f control.Fault) error
	ClearFault(id string) error
	Events() any // returned as JSON at GET /_sandbox/mongo/events
}

// faultFiredNotifier is implemented by a MongoFaulter (MongoSets) whose request-shaped
// faults (command-error) fire on their own: it reports each firing so the registry counts
// it and drops a used-up Count fault.
type faultFiredNotifier interface {
	OnFaultFired(fn func(id string))
}

// Sandbox is a running simulated cloud.
type Sandbox struct {
	aws    *awssim.Server
	apps   *apps.Apps
	faults *control.Registry
	topo   *topology.Topology
	ln     net.Listener
	srv    *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Start listens, seeds the topology and starts the client population. It returns once
// the sandbox answers requests.
func Start(ctx context.Context, opts Options) (*Sandbox, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.Topology == nil {
		opts.Topology = topology.Default()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	t := opts.Topology
	log := opts.Logger.With("component", "sandbox")
	timing := t.Timing
	ttlScale := 1.0
	if opts.Fast {
		timing = topology.Timing{
			CopyTimePerGiB:     topology.Duration(10 * time.Millisecond),
			Route53InsyncDelay: topology.Duration(50 * time.Millisecond),
			InstanceStartTime:  topology.Duration(20 * time.Millisecond),
		}
		ttlScale = 0.001
	}
	if opts.ClientTTLScale > 0 {
		ttlScale = opts.ClientTTLScale
	}

	faults := control.NewRegistry(t.Regions, uint64(time.Now().UnixNano()))
	if opts.Mongo != nil {
		faults.Handle("mongo:", control.Hooks{Add: opts.Mongo.ApplyFault, Remove: opts.Mongo.ClearFault})
		if n, ok := opts.Mongo.(faultFiredNotifier); ok {
			// Fired and Count of command-error faults are kept where the commands are.
			n.OnFaultFired(faults.Fire)
		}
	} else {
		faults.Handle("mongo:", control.Hooks{Add: func(control.Fault) error {
			return errors.New("no MongoDB simulator is running in this sandbox")
		}})
	}

	s := &Sandbox{faults: faults, topo: t}
	var appsRef *apps.Apps
	s.aws = awssim.New(awssim.Options{
		Account: t.Account, Regions: t.Regions,
		CopyTimePerGiB: timing.CopyTimePerGiB.D(), Route53InsyncDelay: timing.Route53InsyncDelay.D(),
		InstanceStartTime: timing.InstanceStartTime.D(),
		Limits:            t.Limits, PriorRequestNotComplete: opts.PriorRequestNotComplete,
		Faults:       faults,
		AppHealthy:   func(region string) bool { return appsRef.Healthy(region) },
		AppErrorRate: func(region string) (float64, bool) { return appsRef.ErrorRate(region) },
		AppCounts: func(region string, from, to time.Time) (int64, int64, bool) {
			return appsRef.Counts(region, from, to)
		},
		Logger: opts.Logger.With("component", "awssim"),
	})
	if err := s.aws.Seed(t); err != nil {
		return nil, fmt.Errorf("seed sandbox: %w", err)
	}

	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox listen: %w", err)
	}
	s.ln = ln
	a, err := apps.New(apps.Options{
		Topology: t, Faults: faults, Resolver: s.aws, BaseURL: s.Addr(), TTLScale: ttlScale,
		Logger: opts.Logger.With("component", "apps"),
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("sandbox apps: %w", err)
	}
	appsRef, s.apps = a, a

	src := control.Sources{
		Faults: faults, Calls: s.aws.Calls, Traffic: a.Traffic, Series: a.Series,
		Topology: func() any { return t }, Logger: log,
	}
	if opts.Mongo != nil {
		src.MongoEvents = opts.Mongo.Events
	}
	mux := http.NewServeMux()
	mux.Handle(control.Prefix, control.NewHandler(src))
	mux.Handle(apps.PathPrefix, a)
	mux.Handle(apps.MetricsPath, a.MetricsHandler())
	mux.Handle("/", s.aws)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("sandbox server stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		a.Run(runCtx)
	}()
	log.Info("sandbox started", "addr", s.Addr(), "regions", strings.Join(t.Regions, ","), "limits", t.Limits, "fast", opts.Fast)
	return s, nil
}

// Addr returns the base URL, e.g. http://127.0.0.1:4566.
func (s *Sandbox) Addr() string { return "http://" + s.ln.Addr().String() }

// AWS returns the simulated AWS, e.g. to read the call record in tests.
func (s *Sandbox) AWS() *awssim.Server { return s.aws }

// Apps returns the regional apps and client population.
func (s *Sandbox) Apps() *apps.Apps { return s.apps }

// Faults returns the fault registry.
func (s *Sandbox) Faults() *control.Registry { return s.faults }

// Topology returns the topology the sandbox was seeded with.
func (s *Sandbox) Topology() *topology.Topology { return s.topo }

// Close stops the client population and the server.
func (s *Sandbox) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// Shutdown waits for connections a client opened but never sent a request on (up
		// to 5 s for such a new connection, e.g. one dialled as the client population was
		// stopped); nothing is lost by closing those, so past the grace period they are.
		if err = s.srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
			err = s.srv.Close()
		}
		s.wg.Wait()
	})
	return err
}
