// Package devtemporal runs an embedded Temporal server and its Web UI in this process, for
// `ferry dev`, rehearsals and integration tests. Production deployments point workers and the
// API server at any Temporal cluster instead.
package devtemporal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/temporalio/cli/temporalcli/devserver"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/ferryhq/ferry/internal/clustersetup"
	"github.com/ferryhq/ferry/workflows"
)

// Options configures the embedded server.
type Options struct {
	// IP to bind the frontend and UI to. Default 127.0.0.1.
	IP string
	// Port of the gRPC frontend. Default 7233; 0 picks a free port (tests).
	Port int
	// UIPort of the Web UI. Default 8233; -1 disables the UI; 0 picks a free port.
	UIPort int
	// Namespace to create. Default "default".
	Namespace string
	// DBFile is the SQLite file that keeps history across restarts. Empty keeps everything in
	// memory (tests and benchmarks that compare against the durable file).
	DBFile string
	// Logger receives the server's logs at LogLevel and above.
	Logger   *slog.Logger
	LogLevel slog.Level
	// DynamicConfig adds to or overrides the server's dynamic config (e.g. a low
	// "limit.historyCount.suggestContinueAsNew" to prove histories stay bounded).
	DynamicConfig map[string]any
	// SetupProgress receives clustersetup's lines (nil: quiet).
	SetupProgress func(string)
}

// Server is a running embedded Temporal.
type Server struct {
	srv       *devserver.Server
	hostPort  string
	uiURL     string
	namespace string
	stopOnce  sync.Once
	// setupChanges is what clustersetup changed at start.
	setupChanges []string
}

// SQLitePragmas are the store settings that keep a durable file at about 70% of the
// in-memory speed (NOTES-ENV.md measured 24 vs 34 workflows/s; the default journal mode
// gives 30%). WAL with synchronous=normal can lose the last transactions on power loss but
// never corrupts the file, which is the right trade for a development store.
var SQLitePragmas = map[string]string{
	"journal_mode": "wal",
	"synchronous":  "normal",
}

// Start starts the server and returns once its frontend accepts connections.
func Start(o Options) (*Server, error) {
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Port == 0 {
		o.Port = devserver.MustGetFreePort(o.IP)
	}
	if err := devserver.CheckPortFree(o.IP, o.Port); err != nil {
		return nil, fmt.Errorf("temporal frontend port %d is taken (another `ferry dev` or `temporal server start-dev`?); pick another with --temporal-port: %w", o.Port, err)
	}
	opts := devserver.StartOptions{
		FrontendIP:             o.IP,
		FrontendPort:           o.Port,
		Namespaces:             []string{o.Namespace},
		ClusterID:              uuid.NewString(),
		MasterClusterName:      "active",
		CurrentClusterName:     "active",
		InitialFailoverVersion: 1,
		Logger:                 o.Logger,
		LogLevel:               o.LogLevel,
		SqlitePragmas:          SQLitePragmas,
		SearchAttributes:       searchAttributes(),
		DynamicConfigValues: map[string]any{
			// ferry's search attributes are written into the store with the namespace, before
			// any service reads them, so the servers' caches load them at first use. The
			// forced cache refresh `temporal server start-dev` turns on (so attributes added
			// later show at once) would cost a store read on every upsert and list; without
			// it, an attribute added by hand appears within the cache's 60 s.
			// The timer queue reads this far ahead; a timer due sooner than that after it is
			// created waits for the next read, so every sub-second timer took about a second
			// (a 500ms timer fired after 955ms). A dwell's last timer is often shorter than a
			// second, and a rehearsal's waits are meant to take what they say.
			"history.timerProcessorMaxTimeShift": 100 * time.Millisecond,
			"frontend.persistenceMaxQPS":         10000,
			"history.persistenceMaxQPS":          45000,
			// Updates and current details are used by the API and the UI.
			"frontend.enableUpdateWorkflowExecution":              true,
			"frontend.enableUpdateWorkflowExecutionAsyncAccepted": true,
		},
	}
	for k, v := range o.DynamicConfig {
		opts.DynamicConfigValues[k] = v
	}
	if o.DBFile != "" {
		abs, err := filepath.Abs(o.DBFile)
		if err != nil {
			return nil, fmt.Errorf("temporal database file %q: %w", o.DBFile, err)
		}
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			return nil, fmt.Errorf("create data directory for %s: %w", abs, err)
		}
		opts.DatabaseFile = abs
	}
	var uiURL string
	if o.UIPort >= 0 {
		if o.UIPort == 0 {
			o.UIPort = devserver.MustGetFreePort(o.IP)
		}
		if err := devserver.CheckPortFree(o.IP, o.UIPort); err != nil {
			return nil, fmt.Errorf("temporal UI port %d is taken; pick another with --ui-port: %w", o.UIPort, err)
		}
		opts.UIIP, opts.UIPort = o.IP, o.UIPort
		uiURL = "http://" + net.JoinHostPort(o.IP, strconv.Itoa(o.UIPort))
	}
	srv, err := devserver.Start(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded temporal: %w", err)
	}
	s := &Server{srv: srv, hostPort: net.JoinHostPort(o.IP, strconv.Itoa(o.Port)), uiURL: uiURL, namespace: o.Namespace}
	if err := waitListening(s.hostPort, 30*time.Second); err != nil {
		srv.Stop()
		return nil, err
	}
	if err := s.setup(o); err != nil {
		srv.Stop()
		return nil, err
	}
	return s, nil
}

// setup runs `ferry setup`'s code against the embedded server. A new store already has every
// search attribute (written with the namespace, above), so this only checks; a data
// directory from an older ferry gains the attributes added since (FerryTargetRegions), which
// the embedded frontend lists once its namespace cache refreshes (under a minute, once).
func (s *Server) setup(o Options) error {
	c, err := client.Dial(client.Options{HostPort: s.hostPort, Namespace: o.Namespace, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		return fmt.Errorf("connect to embedded temporal for setup: %w", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := clustersetup.Run(ctx, c, clustersetup.Options{Namespace: o.Namespace, Wait: 90 * time.Second, Progress: o.SetupProgress})
	if err != nil {
		return fmt.Errorf("set up embedded temporal: %w", err)
	}
	s.setupChanges = res.Changes
	return nil
}

// SetupChanges is what the start's setup changed: nothing on a new store, the attributes
// added since on an older data directory.
func (s *Server) SetupChanges() []string { return s.setupChanges }

// HostPort is the frontend's gRPC address.
func (s *Server) HostPort() string { return s.hostPort }

// UIURL is the Web UI's address, or "" when the UI is off.
func (s *Server) UIURL() string { return s.uiURL }

// Namespace is the namespace created at start.
func (s *Server) Namespace() string { return s.namespace }

// Stop stops the server and the UI.
// Stop stops the server; later calls do nothing (a test may stop Temporal to watch ferry
// without it, and its cleanup stops it again).
func (s *Server) Stop() { s.stopOnce.Do(func() { s.srv.Stop() }) }

func searchAttributes() map[string]enumspb.IndexedValueType {
	m := make(map[string]enumspb.IndexedValueType, len(workflows.SearchAttributeKeys))
	for _, k := range workflows.SearchAttributeKeys {
		m[k.GetName()] = k.GetValueType()
	}
	return m
}

func waitListening(hostPort string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", hostPort, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("embedded temporal did not listen on %s within %s", hostPort, limit), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
