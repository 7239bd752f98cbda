// Package apiclient builds MigrationService clients that authenticate with a bearer token,
// for the CLI and the tests alike.
package apiclient

import (
	"context"
	"net/http"
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
