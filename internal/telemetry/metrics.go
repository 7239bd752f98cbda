// Package telemetry gives ferry's processes their Prometheus metrics and probes: the
// Temporal SDK's metrics (and ferry's own, which workflows emit through the SDK) exported
// through OpenTelemetry into a Prometheus registry, served at /metrics next to /healthz
// (liveness: the process serves) and /readyz (readiness: Temporal reachable, ferry's
// namespace and search attributes in place).
package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
)

// latencyBuckets span a workflow task's milliseconds to an approval's hours, in seconds.
var latencyBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600}

// Metrics is one process's registry and the SDK metrics handler that feeds it.
type Metrics struct {
	// Registry holds the SDK's and ferry's metrics and the Go runtime's.
	Registry *prometheus.Registry
	// Handler goes into the Temporal client's options (client.Options.MetricsHandler).
	Handler  client.MetricsHandler
	provider *sdkmetric.MeterProvider
}

// NewMetrics builds a registry for a process (each its own: tests run several in one
// binary, and the default registry is global). log receives metric errors, which must not
// crash a worker (the SDK's default is to panic).
func NewMetrics(log *slog.Logger) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	// OpenTelemetry's default buckets are for milliseconds; the SDK records seconds, and
	// ferry's waits (approvals, rollbacks) run to hours.
	seconds := sdkmetric.NewView(sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: latencyBuckets}})
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithView(seconds))
	h := temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter: mp.Meter("ferry"),
		OnError: func(err error) {
			if log != nil {
				log.Warn("metric not recorded", "error", err)
			}
		},
	})
	return &Metrics{Registry: reg, Handler: h, provider: mp}, nil
}

// HTTP serves the registry in the Prometheus text format.
func (m *Metrics) HTTP() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Close flushes and stops the meter provider.
func (m *Metrics) Close() { _ = m.provider.Shutdown(context.Background()) }
