package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/user"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/internal/devtemporal"
	"github.com/ferryhq/ferry/internal/telemetry"
	"github.com/ferryhq/ferry/internal/temporalconn"
	"github.com/ferryhq/ferry/server"
	"github.com/ferryhq/ferry/worker"
	"github.com/ferryhq/ferry/workflows"
)

type devOptions struct {
	dataDir      string
	temporalPort int
	uiPort       int
	apiListen    string
	sandboxAddr  string
	topology     string
	noSandbox    bool
	// prometheusAddr is where the optional Prometheus listens; "off" disables it.
	prometheusAddr string
}

func newDevCmd(g *globals) *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything on this machine: embedded Temporal + Web UI, sandbox cloud, worker and API",
		Long: `Starts, in one process, an embedded Temporal server (history kept in a SQLite file in the
data directory, so it survives restarts) with its Web UI, ferry's search attributes, the
sandbox (simulated AWS and MongoDB over their real protocols), a worker and the API, then
prints where each one listens. No AWS account is needed. Ctrl-C stops everything.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", envOr("FERRY_DATA_DIR", ".ferry"), "state directory: Temporal's SQLite file and API tokens (FERRY_DATA_DIR)")
	f.IntVar(&o.temporalPort, "temporal-port", envInt("FERRY_TEMPORAL_PORT", 7233), "Temporal frontend port (FERRY_TEMPORAL_PORT)")
	f.IntVar(&o.uiPort, "ui-port", envInt("FERRY_UI_PORT", 8233), "Temporal Web UI port, -1 to disable (FERRY_UI_PORT)")
	f.StringVar(&o.apiListen, "listen", envOr("FERRY_LISTEN", "127.0.0.1:8080"), "ferry API address (FERRY_LISTEN)")
	f.StringVar(&o.sandboxAddr, "sandbox-addr", envOr("FERRY_SANDBOX_ADDR", "127.0.0.1:4566"), "sandbox AWS + control endpoint address (FERRY_SANDBOX_ADDR)")
	f.StringVar(&o.topology, "topology", envOr("FERRY_TOPOLOGY", ""), "sandbox topology file; default: the built-in marketplace (examples/sandbox-topology.yaml) (FERRY_TOPOLOGY)")
	f.BoolVar(&o.noSandbox, "no-sandbox", envBool("FERRY_NO_SANDBOX", false), "do not start the sandbox (FERRY_NO_SANDBOX)")
	f.StringVar(&o.prometheusAddr, "prometheus-addr", envOr("FERRY_PROMETHEUS_ADDR", "127.0.0.1:9090"), "Prometheus scraping the sandbox, started when the prometheus binary is installed; off to disable (FERRY_PROMETHEUS_ADDR)")
	return cmd
}

// devStack is everything `ferry dev` runs, started in dependency order and stopped in
// reverse.
type devStack struct {
	temporal *devtemporal.Server
	apiURL   string
	sandbox  *devSandbox
	prom     *devPrometheus
	rabbit   *devRabbit
	stops    []func()
}

func (s *devStack) stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
}

func runDev(ctx context.Context, g *globals, o devOptions) error {
	log := g.logger()
	began := time.Now()
	stack, err := startDev(ctx, log, o)
	if err != nil {
		return err
	}
	defer stack.stop()
	recordDevContext(g, stack.apiURL, o.dataDir)
	printDevTable(g, stack, o, time.Since(began))
	<-ctx.Done()
	fmt.Fprintln(g.stderr, "\nstopping ferry dev ...")
	return nil
}

func startDev(ctx context.Context, log *slog.Logger, o devOptions) (_ *devStack, err error) {
	stack := &devStack{}
	defer func() {
		if err != nil {
			stack.stop()
		}
	}()
	// Bind the API port first: failing on a taken port before Temporal starts keeps the
	// error quick and the SQLite file untouched.
	apiLn, err := net.Listen("tcp", o.apiListen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (another ferry dev? use --listen): %w", o.apiListen, err)
	}
	stack.stops = append(stack.stops, func() { _ = apiLn.Close() })

	// The embedded server warns about routine things (dial retries while its services start
	// and stop); errors are what a ferry user needs to see.
	temporalLevel := slog.LevelError
	ts, err := devtemporal.Start(devtemporal.Options{
		Port:     o.temporalPort,
		UIPort:   o.uiPort,
		DBFile:   filepath.Join(o.dataDir, "temporal.db"),
		Logger:   log.With("component", "temporal"),
		LogLevel: temporalLevel,
	})
	if err != nil {
		return nil, err
	}
	stack.temporal = ts
	stack.stops = append(stack.stops, ts.Stop)
	// A data directory from an older ferry gains the search attributes added since.
	for _, ch := range ts.SetupChanges() {
		log.Info("temporal setup (as `ferry setup` does on other clusters)", "change", ch)
	}

	if !o.noSandbox {
		sb, err := startDevSandbox(ctx, log, o.sandboxAddr, o.topology, false)
		if err != nil {
			return nil, err
		}
		if sb != nil {
			stack.sandbox = sb
			stack.stops = append(stack.stops, sb.stop)
			stack.prom = startDevPrometheus(ctx, log, o.prometheusAddr, o.dataDir, sb.url)
			stack.stops = append(stack.stops, stack.prom.stop)
			stack.stops = append(stack.stops, startDevMariaDB(ctx, log, o.dataDir, sb))
			stack.rabbit = startDevRabbit(ctx, log, sb)
			stack.stops = append(stack.stops, stack.rabbit.stop)
		}
	}

	metrics, err := telemetry.NewMetrics(log)
	if err != nil {
		return nil, err
	}
	stack.stops = append(stack.stops, metrics.Close)
	conn := temporalconn.Options{Address: ts.HostPort(), Namespace: ts.Namespace(), Identity: defaultIdentity("dev"), MetricsHandler: metrics.Handler}
	tracing, stopTracing, err := startTracing(ctx, "ferry-dev", log, &conn)
	if err != nil {
		return nil, err
	}
	stack.stops = append(stack.stops, stopTracing)
	traceAPI, err := tracing.ConnectInterceptor()
	if err != nil {
		return nil, err
	}
	c, err := temporalconn.Dial(conn, log.With("component", "temporal-client"))
	if err != nil {
		return nil, err
	}
	stack.stops = append(stack.stops, c.Close)

	cloud := worker.CloudOptions{}
	if stack.sandbox != nil {
		cloud.AWSEndpoint = stack.sandbox.url
	}
	// The API signs starts and actions with a key kept in the data directory, and the
	// worker trusts only it: an approval sent around the API (the Temporal UI, `temporal
	// workflow signal`) is refused.
	signingKey, err := server.EnsureSigningKey(o.dataDir)
	if err != nil {
		return nil, err
	}
	w, err := worker.New(ctx, c, worker.Options{Identity: conn.Identity, Cloud: cloud, Logger: log, TrustedKeys: server.PublicKeys(signingKey)})
	if err != nil {
		return nil, err
	}
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	stack.stops = append(stack.stops, w.Stop)

	who := "local"
	if u, err := user.Current(); err == nil && u.Username != "" {
		who = u.Username
	}
	tokens, err := server.EnsureDevTokens(o.dataDir, who)
	if err != nil {
		return nil, err
	}
	policy := server.DefaultPolicy()
	h := server.Handler(c, server.Options{Namespace: ts.Namespace(), UIURL: ts.UIURL(), Tokens: tokens, Logger: log,
		SigningKey: signingKey, Policy: &policy, Metrics: metrics.HTTP(), TraceInterceptor: traceAPI})
	srvCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- server.Serve(srvCtx, apiLn, h, log) }()
	stack.stops = append(stack.stops, func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			log.Warn("api server", "error", err)
		}
	})
	stack.apiURL = "http://" + apiLn.Addr().String()
	return stack, nil
}

func printDevTable(g *globals, s *devStack, o devOptions, took time.Duration) {
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ferry dev is up (%s)\n\n", took.Round(10*time.Millisecond))
	fmt.Fprintf(tw, "ferry API\t%s\t(Connect, gRPC, gRPC-Web; /healthz, /readyz, /metrics)\n", s.apiURL)
	fmt.Fprintf(tw, "Temporal frontend\t%s\tnamespace %s, task queue %s\n", s.temporal.HostPort(), s.temporal.Namespace(), workflows.TaskQueue)
	if s.temporal.UIURL() != "" {
		fmt.Fprintf(tw, "Temporal Web UI\t%s\t\n", s.temporal.UIURL())
	}
	if s.sandbox != nil {
		s.sandbox.describe(tw)
	}
	if s.prom != nil {
		s.prom.describe(tw)
	}
	if s.rabbit != nil {
		s.rabbit.describe(tw)
	}
	abs, _ := filepath.Abs(o.dataDir)
	fmt.Fprintf(tw, "state\t%s\tSQLite history + API tokens (tokens.json)\n", abs)
	_ = tw.Flush()
	fmt.Fprintf(g.stdout, "\nTry:  ferry start -f examples/dns-shift.yaml --watch\nCtrl-C stops everything.\n")
}
