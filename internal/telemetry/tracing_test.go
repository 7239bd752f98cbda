package telemetry_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/ferryhq/ferry/internal/telemetry"
	"github.com/ferryhq/ferry/internal/testenv"
)

// One trace follows an API call into the workflow and its activities: the Connect span of
// StartMigration is the root, the workflow's start and run are below it, and an activity's
// run (a Route 53 weight change) is below those, all with one trace id.
func TestTraceFollowsAPICallIntoActivities(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	st := testenv.StartStackWith(t, testenv.StackOptions{Tracing: telemetry.NewTracingWith(tp)})
	runToEnd(t, st, `
dnsShift: {hostedZone: shop.example., recordName: www.shop.example., from: eu-west-1, to: eu-west-2,
  schedule: [100], bakeTime: 1s}`)

	// Spans end as their work ends; the activity's is recorded when its task completes.
	var chain []sdktrace.ReadOnlySpan
	testenv.Eventually(t, 10*time.Second, "the weight change's span", func() bool {
		chain = nil
		byID := map[string]sdktrace.ReadOnlySpan{}
		var activity sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			byID[s.SpanContext().SpanID().String()] = s
			if s.Name() == "RunActivity:ChangeWeights" {
				activity = s
			}
		}
		for s := activity; s != nil; s = byID[s.Parent().SpanID().String()] {
			chain = append(chain, s)
			if !s.Parent().IsValid() {
				return true
			}
		}
		return false
	})
	var names []string
	for _, s := range chain {
		names = append(names, s.Name())
		require.Equal(t, chain[0].SpanContext().TraceID(), s.SpanContext().TraceID(), "one trace id from the API call to the activity")
	}
	t.Logf("activity to root: %s", strings.Join(names, " <- "))
	require.Equal(t, "ferry.v1.MigrationService/StartMigration", names[len(names)-1], "the API call is the root")
	require.Contains(t, names, "RunWorkflow:DNSShift")
	require.Contains(t, names, "StartActivity:ChangeWeights")
}

// With no OTLP endpoint configured, tracing is off: no interceptors, nothing recorded.
func TestTracingOffByDefault(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	tr, err := telemetry.NewTracing(context.Background(), "ferry-test", nil)
	require.NoError(t, err)
	require.False(t, tr.Enabled)
	ti, err := tr.TemporalInterceptors()
	require.NoError(t, err)
	require.Empty(t, ti)
	ci, err := tr.ConnectInterceptor()
	require.NoError(t, err)
	require.Nil(t, ci)
	require.NoError(t, tr.Shutdown(context.Background()))

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	_, err = telemetry.NewTracing(context.Background(), "ferry-test", nil)
	require.ErrorContains(t, err, "OTEL_EXPORTER_OTLP_PROTOCOL")
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, spans reach an OTLP/gRPC receiver (the collector's
// TraceService), with the process's service name, once the provider is shut down (flushed).
func TestTracingExportsOverOTLP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	rcv := &receiver{}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, rcv)
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	t.Setenv("OTEL_SERVICE_NAME", "")
	prev := otel.GetTracerProvider()
	defer otel.SetTracerProvider(prev)
	tr, err := telemetry.NewTracing(context.Background(), "ferry-test-worker", nil)
	require.NoError(t, err)
	require.True(t, tr.Enabled)
	require.Contains(t, tr.Describe, "OTLP/grpc to http://"+ln.Addr().String())
	_, span := otel.Tracer("test").Start(context.Background(), "migration-step")
	span.End()
	require.NoError(t, tr.Shutdown(context.Background()))

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	require.Len(t, rcv.got, 1, "one export on shutdown")
	rs := rcv.got[0].GetResourceSpans()
	require.Len(t, rs, 1)
	var service string
	for _, a := range rs[0].GetResource().GetAttributes() {
		if a.GetKey() == "service.name" {
			service = a.GetValue().GetStringValue()
		}
	}
	require.Equal(t, "ferry-test-worker", service)
	require.Equal(t, "migration-step", rs[0].GetScopeSpans()[0].GetSpans()[0].GetName())
}

// receiver is an OTLP collector's trace service that keeps what it is sent.
type receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu  sync.Mutex
	got []*collectortrace.ExportTraceServiceRequest
}

func (r *receiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}
