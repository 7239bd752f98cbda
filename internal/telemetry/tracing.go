package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// Tracing is a process's OpenTelemetry tracing: the Connect interceptor for the API, the
// Temporal interceptor for its client (and so its workers), one trace from an API call into
// the workflow and its activities. Off (a no-op provider: nothing recorded, nothing sent)
// unless an OTLP endpoint is configured.
type Tracing struct {
	provider trace.TracerProvider
	// shutdown flushes and stops the exporter (nil when tracing is off or the provider is
	// the caller's).
	shutdown func(context.Context) error
	// Enabled says whether spans are recorded.
	Enabled bool
	// Describe says where spans go, for the start-up log.
	Describe string
}

// propagator carries trace context (W3C traceparent) and baggage between processes: the
// Temporal interceptor writes it into workflow and activity headers, Connect into HTTP.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// NewTracing configures tracing from the standard OpenTelemetry environment variables:
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT turns it on; spans go
// over OTLP/gRPC (a collector's port 4317), so OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL may be
// unset or grpc. (The OTLP/HTTP exporter of the otel version the Temporal SDK pins has
// GO-2026-4985, unbounded response bodies; its fix moves otel, gRPC and genproto for the
// whole module, so HTTP waits for that upgrade.) OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
// _INSECURE and the certificate variables are read by the exporter itself; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the process
// (default service name: service); OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn
// it off. Off, it costs nothing.
func NewTracing(ctx context.Context, service string, log *slog.Logger) (*Tracing, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	endpoint := firstEnv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
	if endpoint == "" || strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "none") {
		return &Tracing{provider: noop.NewTracerProvider(), Describe: "off (set OTEL_EXPORTER_OTLP_ENDPOINT to export traces)"}, nil
	}
	protocol := firstEnv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	var exp sdktrace.SpanExporter
	var err error
	switch protocol {
	case "", "grpc":
		protocol = "grpc"
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL is %q; ferry exports traces over OTLP/gRPC only: unset it or set grpc, and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's gRPC port (4317)", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("trace exporter (%s to %s): %w", protocol, endpoint, err)
	}
	// resource.Default reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the process's
	// role is the name only when neither sets one.
	res := resource.Default()
	if os.Getenv("OTEL_SERVICE_NAME") == "" && !strings.Contains(os.Getenv("OTEL_RESOURCE_ATTRIBUTES"), "service.name=") {
		if merged, err := resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(service))); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	// An export that fails (collector down) must not fail migrations: the SDK reports it
	// here and drops the batch.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "error", err) }))
	return &Tracing{provider: tp, shutdown: tp.Shutdown, Enabled: true, Describe: "OTLP/" + protocol + " to " + endpoint}, nil
}

// NewTracingWith records into the caller's provider (tests: an in-memory recorder).
func NewTracingWith(tp trace.TracerProvider) *Tracing {
	return &Tracing{provider: tp, Enabled: true, Describe: "the caller's provider"}
}

// TemporalInterceptors go into client.Options.Interceptors: the client's calls (a start, a
// signal, an update) and, through the workers built from the client, workflows and
// activities get spans, linked through the headers Temporal carries. Nil when off.
func (t *Tracing) TemporalInterceptors() ([]interceptor.ClientInterceptor, error) {
	if t == nil || !t.Enabled {
		return nil, nil
	}
	i, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
		Tracer:            t.provider.Tracer("github.com/ferryhq/ferry/temporal"),
		TextMapPropagator: propagator,
	})
	if err != nil {
		return nil, fmt.Errorf("temporal tracing interceptor: %w", err)
	}
	return []interceptor.ClientInterceptor{i}, nil
}

// ConnectInterceptor traces each API call (nil when off). Spans from callers are linked,
// not trusted as parents (otelconnect's default): the API is a trust boundary.
func (t *Tracing) ConnectInterceptor() (connect.Interceptor, error) {
	if t == nil || !t.Enabled {
		return nil, nil
	}
	i, err := otelconnect.NewInterceptor(otelconnect.WithTracerProvider(t.provider), otelconnect.WithPropagator(propagator), otelconnect.WithoutMetrics())
	if err != nil {
		return nil, fmt.Errorf("connect tracing interceptor: %w", err)
	}
	return i, nil
}

// Shutdown flushes spans not yet exported; a process calls it on its way out.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	if err := t.shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

func firstEnv(keys ...string) string {
	for _, k := range keys {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}
