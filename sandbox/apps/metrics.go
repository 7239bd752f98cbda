package apps

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsPath is where the sandbox serves its Prometheus metrics.
const MetricsPath = "/metrics"

// metrics are the apps' and the client population's numbers in Prometheus form, so a real
// Prometheus can scrape the sandbox like any service and ferry's Prometheus gate reads
// them the way it reads production's. Each sandbox has its own registry: tests run many
// sandboxes in one process, and the default registry is global.
type metrics struct {
	reg *prometheus.Registry
	// What the apps served, by region and HTTP status code.
	appRequests *prometheus.CounterVec
	appLatency  *prometheus.HistogramVec
	// What the clients saw, by region and outcome ("ok", "error": a 5xx, a transport
	// error, or a request the client gave up on).
	clientRequests *prometheus.CounterVec
	clientLatency  *prometheus.HistogramVec
}

// latencyBuckets span the apps' healthy answers (sub-millisecond) to a latency fault's
// seconds.
var latencyBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

func newMetrics(regions []string) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		appRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandbox_app_requests_total", Help: "Requests the sandbox's regional apps answered, by region and status code.",
		}, []string{"region", "code"}),
		appLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sandbox_app_request_duration_seconds", Help: "Time the regional apps took to answer, by region.", Buckets: latencyBuckets,
		}, []string{"region"}),
		clientRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandbox_client_requests_total", Help: "Requests of the simulated client population, by the region it resolved and outcome (ok or error).",
		}, []string{"region", "outcome"}),
		clientLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sandbox_client_request_duration_seconds", Help: "Request time as the clients saw it, by region.", Buckets: latencyBuckets,
		}, []string{"region"}),
	}
	m.reg.MustRegister(m.appRequests, m.appLatency, m.clientRequests, m.clientLatency)
	// Every series exists from the start at zero, so rate() over a region's errors reads 0
	// rather than nothing before its first error.
	for _, r := range regions {
		m.clientRequests.WithLabelValues(r, "ok")
		m.clientRequests.WithLabelValues(r, "error")
		m.appRequests.WithLabelValues(r, "200")
		m.appRequests.WithLabelValues(r, "500")
	}
	return m
}

func (m *metrics) served(region string, code int, took time.Duration) {
	m.appRequests.WithLabelValues(region, strconv.Itoa(code)).Inc()
	m.appLatency.WithLabelValues(region).Observe(took.Seconds())
}

func (m *metrics) called(region string, ok bool, took time.Duration) {
	outcome := "ok"
	if !ok {
		outcome = "error"
	}
	m.clientRequests.WithLabelValues(region, outcome).Inc()
	if took >= 0 {
		m.clientLatency.WithLabelValues(region).Observe(took.Seconds())
	}
}

// MetricsHandler serves the apps' and clients' metrics in the Prometheus text format.
func (a *Apps) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{})
}

// Counts returns the requests and errors the clients sent to a region's app in [from, to),
// at one-second resolution, for the sandbox's CloudWatch; ok is false for a region without
// an app.
func (a *Apps) Counts(region string, from, to time.Time) (requests, errors int64, ok bool) {
	return a.stats.counts(region, from, to)
}
