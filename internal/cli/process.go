package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/internal/telemetry"
	"github.com/ferryhq/ferry/internal/temporalconn"
	"github.com/ferryhq/ferry/proof"
	"github.com/ferryhq/ferry/server"
	"github.com/ferryhq/ferry/worker"
	"github.com/ferryhq/ferry/workflows"
)

// addTemporalFlags binds the connection flags shared by `ferry worker` and `ferry server`.
func addTemporalFlags(cmd *cobra.Command, o *temporalconn.Options) {
	f := cmd.Flags()
	f.StringVar(&o.Address, "temporal-address", envOr("FERRY_TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port (FERRY_TEMPORAL_ADDRESS)")
	f.StringVar(&o.Namespace, "temporal-namespace", envOr("FERRY_TEMPORAL_NAMESPACE", "default"), "Temporal namespace (FERRY_TEMPORAL_NAMESPACE)")
	f.BoolVar(&o.TLS, "temporal-tls", envBool("FERRY_TEMPORAL_TLS", false), "use TLS with the system roots (FERRY_TEMPORAL_TLS)")
	f.StringVar(&o.CAFile, "temporal-tls-ca", envOr("FERRY_TEMPORAL_TLS_CA", ""), "CA bundle to verify the server (FERRY_TEMPORAL_TLS_CA)")
	f.StringVar(&o.CertFile, "temporal-tls-cert", envOr("FERRY_TEMPORAL_TLS_CERT", ""), "client certificate for mTLS (FERRY_TEMPORAL_TLS_CERT)")
	f.StringVar(&o.KeyFile, "temporal-tls-key", envOr("FERRY_TEMPORAL_TLS_KEY", ""), "client key for mTLS (FERRY_TEMPORAL_TLS_KEY)")
	f.StringVar(&o.ServerName, "temporal-tls-server-name", envOr("FERRY_TEMPORAL_TLS_SERVER_NAME", ""), "TLS server name override (FERRY_TEMPORAL_TLS_SERVER_NAME)")
	f.StringVar(&o.APIKey, "temporal-api-key", envOr("FERRY_TEMPORAL_API_KEY", ""), "API key, e.g. for Temporal Cloud (FERRY_TEMPORAL_API_KEY)")
}

func addCloudFlags(cmd *cobra.Command, o *worker.CloudOptions) {
	f := cmd.Flags()
	f.StringVar(&o.AWSEndpoint, "aws-endpoint", envOr("FERRY_AWS_ENDPOINT", ""), "override every AWS endpoint, e.g. the sandbox http://127.0.0.1:4566; empty = real AWS (FERRY_AWS_ENDPOINT)")
	f.StringVar(&o.AWSRegion, "aws-region", envOr("FERRY_AWS_REGION", "us-east-1"), "default AWS region (FERRY_AWS_REGION)")
}

func defaultIdentity(role string) string {
	host, _ := os.Hostname()
	return "ferry-" + role + "@" + host + ":" + strconv.Itoa(os.Getpid())
}

func newWorkerCmd(g *globals) *cobra.Command {
	var (
		conn      temporalconn.Options
		cloud     worker.CloudOptions
		taskQueue string
		acts, wft int
		trustKeys []string
		unsigned  bool
		httpAddr  string
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker against any Temporal cluster (run several to scale out)",
		Long: `Runs ferry's workflows and activities. Workers hold no state: start as many as you like
on one task queue and they share the work. Every flag is also a FERRY_* variable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := g.logger()
			keys, err := workerTrust(trustKeys, unsigned)
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				log.Warn("worker runs with --allow-unsigned: approvals, resumes and starts are accepted from anyone who can reach the namespace")
			}
			conn.Identity = defaultIdentity("worker")
			metrics, err := telemetry.NewMetrics(log)
			if err != nil {
				return err
			}
			defer metrics.Close()
			conn.MetricsHandler = metrics.Handler
			_, stopTracing, err := startTracing(cmd.Context(), "ferry-worker", log, &conn)
			if err != nil {
				return err
			}
			defer stopTracing()
			c, err := temporalconn.Dial(conn, log)
			if err != nil {
				return err
			}
			defer c.Close()
			if httpAddr != "" {
				stop, err := serveProbes(cmd.Context(), httpAddr, telemetry.Mux(metrics, c, conn.Namespace), log)
				if err != nil {
					return err
				}
				defer stop()
			}
			w, err := worker.New(cmd.Context(), c, worker.Options{
				TaskQueue: taskQueue, Identity: conn.Identity, Cloud: cloud, Logger: log,
				MaxConcurrentActivities: acts, MaxConcurrentWorkflowTasks: wft, TrustedKeys: keys,
			})
			if err != nil {
				return err
			}
			log.Info("worker started", "identity", conn.Identity, "temporal", conn.Address, "namespace", conn.Namespace, "taskQueue", taskQueue)
			return w.Run(interruptOn(cmd))
		},
	}
	addTemporalFlags(cmd, &conn)
	addCloudFlags(cmd, &cloud)
	cmd.Flags().StringVar(&taskQueue, "task-queue", envOr("FERRY_TASK_QUEUE", workflows.TaskQueue), "task queue to poll (FERRY_TASK_QUEUE)")
	cmd.Flags().IntVar(&acts, "max-concurrent-activities", envInt("FERRY_MAX_CONCURRENT_ACTIVITIES", 0), "activities run at once, 0 = SDK default (FERRY_MAX_CONCURRENT_ACTIVITIES)")
	cmd.Flags().IntVar(&wft, "max-concurrent-workflow-tasks", envInt("FERRY_MAX_CONCURRENT_WORKFLOW_TASKS", 0), "workflow tasks run at once, 0 = SDK default (FERRY_MAX_CONCURRENT_WORKFLOW_TASKS)")
	cmd.Flags().StringSliceVar(&trustKeys, "trust-keys", envList("FERRY_TRUST_KEYS"), "public keys of the API's signing keys (ed25519:..., `ferry keys public`); approvals, resumes and starts need their signature; list old and new while rotating (FERRY_TRUST_KEYS)")
	cmd.Flags().BoolVar(&unsigned, "allow-unsigned", envBool("FERRY_ALLOW_UNSIGNED", false), "trust no key: accept approvals and starts nobody signed, e.g. tests that drive Temporal directly (FERRY_ALLOW_UNSIGNED)")
	cmd.Flags().StringVar(&httpAddr, "http-listen", envOr("FERRY_WORKER_HTTP", ""), "serve /metrics, /healthz (liveness) and /readyz (Temporal, namespace and search attributes ready) on this address, e.g. :9464; empty: off (FERRY_WORKER_HTTP)")
	return cmd
}

// startTracing turns tracing on when the OTEL_* variables ask for it (off otherwise) and
// puts its Temporal interceptor into conn. stop flushes what is not yet exported.
func startTracing(ctx context.Context, service string, log *slog.Logger, conn *temporalconn.Options) (*telemetry.Tracing, func(), error) {
	tr, err := telemetry.NewTracing(ctx, service, log)
	if err != nil {
		return nil, nil, err
	}
	if conn.Interceptors, err = tr.TemporalInterceptors(); err != nil {
		return nil, nil, err
	}
	log.Info("tracing", "export", tr.Describe)
	return tr, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("tracing", "error", err)
		}
	}, nil
}

// serveProbes serves a worker's metrics and probes until stop is called.
func serveProbes(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http-listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("metrics and probes listening", "addr", "http://"+ln.Addr().String(), "paths", "/metrics /healthz /readyz")
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// interruptOn returns a channel closed when the command's context ends (SIGINT/SIGTERM), in
// the form worker.Run wants.
func interruptOn(cmd *cobra.Command) <-chan any {
	ch := make(chan any)
	go func() { <-cmd.Context().Done(); close(ch) }()
	return ch
}

func newServerCmd(g *globals) *cobra.Command {
	var (
		conn      temporalconn.Options
		listen    string
		tokenFile string
		uiURL     string
		tlsFiles  server.TLSFiles
		insecure  bool
		limits    server.Options
		keyFile   string
		policy    string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the ferry API (Connect, gRPC, gRPC-Web) against any Temporal cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := g.logger()
			if (tlsFiles.CertFile == "") != (tlsFiles.KeyFile == "") {
				return fmt.Errorf("--tls-cert and --tls-key go together")
			}
			if tlsFiles.ClientCAFile != "" && tlsFiles.CertFile == "" {
				return fmt.Errorf("--client-ca (mTLS) needs --tls-cert and --tls-key")
			}
			// Before anything is dialled: a refused address should not wait on Temporal.
			if err := server.CheckPlaintext(listen, tlsFiles, insecure); err != nil {
				return err
			}
			if tokenFile == "" {
				return fmt.Errorf("--token-file is required: a JSON file {\"tokens\":[{\"token\":\"...\",\"identity\":\"alice\",\"roles\":[\"operator\"]}]}")
			}
			tokens, err := server.LoadTokens(tokenFile)
			if err != nil {
				return err
			}
			if keyFile == "" {
				return fmt.Errorf("--signing-key is required: the API signs every start and action with it, and workers trust only its public key; create one with `ferry keys generate --out signing.key` and give workers `--trust-keys $(ferry keys public --key signing.key)`")
			}
			key, err := server.LoadSigningKey(keyFile)
			if err != nil {
				return err
			}
			pol := server.DefaultPolicy()
			if policy != "" {
				if pol, err = server.LoadPolicy(policy); err != nil {
					return err
				}
			}
			conn.Identity = defaultIdentity("server")
			metrics, err := telemetry.NewMetrics(log)
			if err != nil {
				return err
			}
			defer metrics.Close()
			conn.MetricsHandler = metrics.Handler
			tracing, stopTracing, err := startTracing(cmd.Context(), "ferry-server", log, &conn)
			if err != nil {
				return err
			}
			defer stopTracing()
			c, err := temporalconn.Dial(conn, log)
			if err != nil {
				return err
			}
			defer c.Close()
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s (is another ferry running?): %w", listen, err)
			}
			scheme := "http://"
			if tlsFiles.CertFile != "" {
				scheme = "https://"
			}
			log.Info("api listening", "addr", scheme+ln.Addr().String(), "mtls", tlsFiles.ClientCAFile != "")
			o := limits
			o.Namespace, o.UIURL, o.Tokens, o.Logger = conn.Namespace, uiURL, tokens, log
			o.SigningKey, o.Policy, o.Metrics = key, &pol, metrics.HTTP()
			if o.TraceInterceptor, err = tracing.ConnectInterceptor(); err != nil {
				return err
			}
			h := server.Handler(c, o)
			return server.ServeTLS(cmd.Context(), ln, h, tlsFiles, log)
		},
	}
	addTemporalFlags(cmd, &conn)
	cmd.Flags().StringVar(&listen, "listen", envOr("FERRY_LISTEN", "127.0.0.1:8080"), "address to serve the API on (FERRY_LISTEN)")
	cmd.Flags().StringVar(&tokenFile, "token-file", envOr("FERRY_TOKEN_FILE", ""), "bearer tokens and roles, JSON (FERRY_TOKEN_FILE)")
	cmd.Flags().StringVar(&tlsFiles.CertFile, "tls-cert", envOr("FERRY_TLS_CERT", ""), "serve TLS with this certificate (FERRY_TLS_CERT)")
	cmd.Flags().StringVar(&tlsFiles.KeyFile, "tls-key", envOr("FERRY_TLS_KEY", ""), "key of --tls-cert (FERRY_TLS_KEY)")
	cmd.Flags().StringVar(&tlsFiles.ClientCAFile, "client-ca", envOr("FERRY_CLIENT_CA", ""), "verify client certificates against this CA (mTLS; entries with certCommonName in the token file) (FERRY_CLIENT_CA)")
	cmd.Flags().BoolVar(&insecure, "insecure", envBool("FERRY_INSECURE", false), "serve plaintext on a non-loopback --listen without --tls-cert (FERRY_INSECURE); tokens then cross the network in the clear")
	cmd.Flags().Int64Var(&limits.MaxRequestBytes, "max-request-bytes", int64(envInt("FERRY_MAX_REQUEST_BYTES", server.DefaultMaxRequestBytes)), "largest request message, compressed or not, read before authentication (FERRY_MAX_REQUEST_BYTES)")
	cmd.Flags().DurationVar(&limits.CallTimeout, "call-timeout", envDuration("FERRY_CALL_TIMEOUT", server.DefaultCallTimeout), "deadline of a call that waits on Temporal or a worker (FERRY_CALL_TIMEOUT)")
	cmd.Flags().DurationVar(&limits.PlanTimeout, "plan-timeout", envDuration("FERRY_PLAN_TIMEOUT", server.DefaultPlanTimeout), "deadline of a plan (FERRY_PLAN_TIMEOUT)")
	cmd.Flags().StringSliceVar(&limits.PlanHosts, "plan-hosts", envList("FERRY_PLAN_HOSTS"), "hosts (names, IPs, CIDRs) a viewer's plan may make a worker connect to; operators may plan any (FERRY_PLAN_HOSTS, comma-separated)")
	cmd.Flags().StringVar(&keyFile, "signing-key", envOr("FERRY_SIGNING_KEY", ""), "file of the key the API signs starts and actions with (`ferry keys generate`) (FERRY_SIGNING_KEY)")
	cmd.Flags().StringVar(&policy, "approval-policy", envOr("FERRY_APPROVAL_POLICY", ""), "approval policy file, JSON (docs/security.md); default: four-eyes, approval by 50% of DNS traffic, before a primary move and before sharing images (FERRY_APPROVAL_POLICY)")
	cmd.Flags().StringVar(&uiURL, "temporal-ui-url", envOr("FERRY_TEMPORAL_UI_URL", ""), "Temporal Web UI base URL for links (FERRY_TEMPORAL_UI_URL)")
	return cmd
}

// workerTrust is the key ring a worker trusts: --trust-keys, or none with --allow-unsigned
// said out loud (never by default: a worker that trusts no key accepts forged approvals).
func workerTrust(texts []string, unsigned bool) (proof.Keys, error) {
	keys, err := proof.ParseKeys(texts...)
	switch {
	case err != nil:
		return nil, fmt.Errorf("--trust-keys: %w", err)
	case len(keys) > 0 && unsigned:
		return nil, fmt.Errorf("--trust-keys and --allow-unsigned contradict each other; give one")
	case len(keys) == 0 && !unsigned:
		return nil, fmt.Errorf("ferry worker needs the public key of the API's signing key: --trust-keys $(ferry keys public --key signing.key); or --allow-unsigned to accept approvals nobody signed (tests that drive Temporal directly)")
	}
	return keys, nil
}
