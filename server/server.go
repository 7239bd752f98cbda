// Package server serves ferry's Connect API: it turns RPCs into Temporal client calls, and
// adds authentication, validation and the audit identity. It holds no state of its own.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"go.temporal.io/sdk/client"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/internal/telemetry"
)

// Options configures the API.
type Options struct {
	// Namespace the workflows live in (for UI links and /readyz; empty: "default").
	Namespace string
	// Metrics, when set, is served at /metrics (telemetry.Metrics.HTTP).
	Metrics http.Handler
	// TraceInterceptor traces each API call (nil: no tracing); it goes outermost, so a span
	// covers refusals too, and the Temporal calls a handler makes are its children.
	TraceInterceptor connect.Interceptor
	// UIURL is the Temporal Web UI's base address, for links in Migration.ui_url.
	UIURL string
	// Tokens authenticates callers. Nil refuses every call but health and reflection.
	Tokens *Tokens
	Logger *slog.Logger
	// LockWait bounds how long StartMigration waits for the new run to take its resource
	// locks (it reads the cloud first to name them), so a migration of a resource another
	// one holds is refused at once. Zero means 20 seconds; negative, do not wait (the
	// refusal then shows in the migration's state a moment later).
	LockWait time.Duration
	// MaxRequestBytes caps a request's message, compressed and decompressed alike, before
	// any handler or authentication runs. Zero means DefaultMaxRequestBytes.
	MaxRequestBytes int64
	// CallTimeout bounds a unary call's wait on Temporal and on a worker (updates,
	// queries), and each read of WatchMigration. Zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// PlanTimeout bounds a plan workflow. Zero means DefaultPlanTimeout.
	PlanTimeout time.Duration
	// PlanHosts lets callers who are not operators plan kinds that make a worker connect
	// to hosts the spec names (a MongoDB primary move, a region move with a MongoDB
	// phase) when every host is listed here. Operators may plan any host.
	PlanHosts []string
	// SigningKey signs each start the server checked and each action with the identity it
	// authenticated (sign.go); workers that trust its public key accept nothing unsigned.
	// Nil signs nothing (tests whose workers trust no key).
	SigningKey ed25519.PrivateKey
	// Policy is the approval policy every start is checked against (policy.go); nil
	// checks none (tests). `ferry server` and `ferry dev` always set one.
	Policy *Policy
}

// interceptors are the API's, outermost first: the trace (when on), then the log, so the
// log sees refusals by the others; the deadline covers the handler, not the role check.
func (o Options) interceptors() []connect.Interceptor {
	in := []connect.Interceptor{logInterceptor{}, newAuthInterceptor(o.Tokens), deadlineInterceptor{opts: o}}
	if o.TraceInterceptor != nil {
		in = append([]connect.Interceptor{o.TraceInterceptor}, in...)
	}
	return in
}

// compressMinBytes is the smallest response the API compresses.
const compressMinBytes = 1024

// Handler returns the API's HTTP handler: the MigrationService over Connect, gRPC and
// gRPC-Web, plus /healthz, the gRPC health protocol and gRPC reflection.
func Handler(c client.Client, o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	svc := &migrationService{temporal: c, opts: o, signer: signer{key: o.SigningKey}}
	limits := limitOptions(o.maxRequestBytes())
	path, h := ferryv1connect.NewMigrationServiceHandler(svc, append(limits,
		connect.WithInterceptors(o.interceptors()...),
		// gzip costs more than it saves on a message of a few hundred bytes (a start's
		// answer); lists and migrations with long audit trails are still compressed.
		connect.WithCompressMinBytes(compressMinBytes),
	)...)
	mux.Handle(path, h)
	path, h = ferryv1connect.NewGameDayServiceHandler(&gameDayService{m: svc}, append(limits,
		connect.WithInterceptors(o.interceptors()...),
		connect.WithCompressMinBytes(compressMinBytes),
	)...)
	mux.Handle(path, h)

	reflector := grpcreflect.NewStaticReflector(ferryv1connect.MigrationServiceName, ferryv1connect.GameDayServiceName, healthpb.Health_ServiceDesc.ServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, limits...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, limits...))

	mux.Handle(healthPath, connect.NewUnaryHandler(healthPath, func(ctx context.Context, r *connect.Request[healthpb.HealthCheckRequest]) (*connect.Response[healthpb.HealthCheckResponse], error) {
		return connect.NewResponse(&healthpb.HealthCheckResponse{Status: healthStatus(ctx, c, r.Msg.GetService())}), nil
	}, limits...))
	// Liveness never asks Temporal (a Temporal outage must not restart every API pod);
	// readiness does, and checks ferry's namespace and search attributes too.
	mux.HandleFunc("GET /healthz", telemetry.Liveness)
	mux.Handle("GET /readyz", telemetry.Readiness(c, o.Namespace))
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	// Outermost the log, so a request refused by the body cap is logged too.
	return withRequestLog(o.Logger, limitBody(o.maxRequestBytes()+requestOverheadBytes, withClientCert(mux)))
}

const healthPath = "/grpc.health.v1.Health/Check"

// healthStatus reports SERVING when Temporal answers: without it no RPC can work.
func healthStatus(ctx context.Context, c client.Client, service string) healthpb.HealthCheckResponse_ServingStatus {
	if service != "" && service != ferryv1connect.MigrationServiceName {
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	return healthpb.HealthCheckResponse_SERVING
}

// TLSFiles are the server's certificate and, for mTLS, the CA that client certificates
// must chain to. Empty CertFile serves plaintext.
type TLSFiles struct {
	CertFile, KeyFile string
	ClientCAFile      string
}

// tlsConfig loads the files. Client certificates are verified when given but not
// required, so bearer tokens keep working next to mTLS.
func (f TLSFiles) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load API certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f.ClientCAFile != "" {
		pem, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA file %s holds no PEM certificate", f.ClientCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// Serve serves h on ln until ctx ends, then shuts down gracefully. Without TLS, HTTP/2 is
// served in the clear (h2c) so gRPC clients such as grpcurl -plaintext work; with TLS,
// HTTP/2 is negotiated by ALPN.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	return ServeTLS(ctx, ln, h, TLSFiles{}, logger)
}

// ServeTLS is Serve with optional TLS and mTLS.
func ServeTLS(ctx context.Context, ln net.Listener, h http.Handler, files TLSFiles, logger *slog.Logger) error {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	var tlsCfg *tls.Config
	if files.CertFile != "" {
		var err error
		if tlsCfg, err = files.tlsConfig(); err != nil {
			return err
		}
		protocols.SetHTTP2(true)
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		// Headers carry a token at most; net/http's default is 1 MiB.
		MaxHeaderBytes: 64 << 10,
		IdleTimeout:    2 * time.Minute,
		// No WriteTimeout: WatchMigration streams for as long as a migration runs.
	}
	errc := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("api server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("api server shutdown: %w", err)
	}
	if logger != nil {
		logger.Info("api server stopped")
	}
	return nil
}
