// Package apiclient builds MigrationService clients that authenticate with a bearer token,
// for the CLI and the tests alike.
package apiclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"

	"connectrpc.com/connect"

	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
)

// New returns a client for the API at baseURL that sends token on every call, unary and
// streaming. grpc selects the gRPC protocol instead of Connect.
func New(hc *http.Client, baseURL, token string, grpc bool) ferryv1connect.MigrationServiceClient {
	opts := []connect.ClientOption{connect.WithInterceptors(bearer(token))}
	if grpc {
		opts = append(opts, connect.WithGRPC())
	}
	return ferryv1connect.NewMigrationServiceClient(hc, strings.TrimSuffix(baseURL, "/"), opts...)
}

// NewGameDay returns a GameDay service client for the API at baseURL that sends token.
func NewGameDay(hc *http.Client, baseURL, token string) ferryv1connect.GameDayServiceClient {
	return ferryv1connect.NewGameDayServiceClient(hc, strings.TrimSuffix(baseURL, "/"), connect.WithInterceptors(bearer(token)))
}

// TLSConfig builds the client side of TLS to the API: caFile verifies the server (system
// roots when empty), certFile and keyFile present a client certificate (mTLS).
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read API CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("API CA file %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("--api-cert and --api-cert-key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load API client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// bearer adds "Authorization: Bearer <token>"; unary interceptors alone would miss
// WatchMigration's stream.
type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if b != "" {
			req.Header().Set("Authorization", "Bearer "+string(b))
		}
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if b != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+string(b))
		}
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
