package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/server"
)

// TestReflectionAndHealth checks what `grpcurl -plaintext 127.0.0.1:8080 list` and gRPC
// health checkers rely on, over plaintext HTTP/2 as ferry serves: reflection lists the
// MigrationService without a token, and the health protocol answers SERVING.
func TestReflectionAndHealth(t *testing.T) {
	if testing.Short() {
		t.Skip("boots an embedded Temporal")
	}
	_, c := testenv.Temporal(t)
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	api := httptest.NewUnstartedServer(server.Handler(c, server.Options{Namespace: "default"}))
	api.Config.Protocols = &h2c
	api.Start()
	defer api.Close()
	hc := &http.Client{Transport: &http.Transport{Protocols: &h2c}}
	ctx := context.Background()

	stream := grpcreflect.NewClient(hc, api.URL, connect.WithGRPC()).NewStream(ctx)
	defer stream.Close()
	names, err := stream.ListServices()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, ferryv1connect.MigrationServiceName) {
		t.Fatalf("reflection lists %v; want %s", names, ferryv1connect.MigrationServiceName)
	}

	health := connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](hc, api.URL+"/grpc.health.v1.Health/Check", connect.WithGRPC())
	res, err := health.CallUnary(ctx, connect.NewRequest(&healthpb.HealthCheckRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Msg.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v", res.Msg.GetStatus())
	}
	resp, err := hc.Get(api.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d", resp.StatusCode)
	}
}
