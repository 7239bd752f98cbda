package activities

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func evaluate(t *testing.T, g *Gates, checks ...GateCheck) (EvaluateGatesOutput, error) {
	t.Helper()
	env := activityEnv(g)
	v, err := env.ExecuteActivity(g.EvaluateGates, EvaluateGatesInput{Gates: checks})
	if err != nil {
		return EvaluateGatesOutput{}, err
	}
	var out EvaluateGatesOutput
	require.NoError(t, v.Get(&out))
	require.Len(t, out.Results, len(checks))
	for i, r := range out.Results {
		require.Equal(t, checks[i].Name, r.Name, "results come back in input order")
		require.False(t, r.Time.IsZero())
	}
	return out, nil
}

func TestHTTPProbe(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer app.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // a closed port: connection refused

	g := &Gates{HTTP: app.Client()}
	checks := []GateCheck{
		{Name: "app", HTTP: &HTTPCheck{URL: app.URL + "/healthz", Timeout: time.Second}},
		{Name: "teapot", HTTP: &HTTPCheck{URL: app.URL + "/healthz", ExpectStatus: 418, Timeout: time.Second}},
		{Name: "down", HTTP: &HTTPCheck{URL: down.URL + "/healthz", Timeout: time.Second}},
	}
	out, err := evaluate(t, g, checks...)
	require.NoError(t, err, "a failing check is a result, not an error")
	require.True(t, out.Results[0].Healthy, out.Results[0].Detail)
	require.False(t, out.Results[1].Healthy)
	require.Contains(t, out.Results[1].Detail, "want 418")
	require.False(t, out.Results[2].Healthy)
	require.Contains(t, out.Results[2].Detail, "failed")

	status.Store(http.StatusServiceUnavailable)
	out, err = evaluate(t, g, checks[0])
	require.NoError(t, err)
	require.False(t, out.Results[0].Healthy)
	require.Contains(t, out.Results[0].Detail, "503")
}

func TestGateConfigErrors(t *testing.T) {
	g := &Gates{}
	for _, c := range []GateCheck{
		{Name: "bad url", HTTP: &HTTPCheck{URL: "not a url"}},
		{Name: "no check"},
		{Name: "two checks", HealthCheckID: "x", Alarm: &AlarmCheck{Name: "a", Region: "r"}},
		{Name: "no route53 client", HealthCheckID: "x"},
		{Name: "no cloudwatch", Alarm: &AlarmCheck{Name: "a", Region: "eu-west-2"}},
		{Name: "no cloudwatch for metrics", Metric: &MetricCheck{Region: "eu-west-2"}},
		{Name: "bad prometheus address", Prometheus: &PrometheusCheck{Address: "prometheus:9090", Query: "up"}},
		{Name: "token not set", Prometheus: &PrometheusCheck{Address: "http://127.0.0.1:1", Query: "up", BearerToken: Secret{Env: "FERRY_TEST_UNSET_TOKEN"}}},
	} {
		_, err := evaluate(t, g, c)
		ae := requireAppError(t, err, ErrGateConfig)
		require.True(t, ae.NonRetryable(), c.Name)
		require.Contains(t, err.Error(), c.Name)
	}
}

func TestRoute53HealthCheckGate(t *testing.T) {
	var west2 atomic.Bool
	west2.Store(true)
	s := newSim(t, simOptions{appHealthy: func(region string) bool { return region != "eu-west-2" || west2.Load() }})
	g := &Gates{Route53: s.route53(t)}
	checks := []GateCheck{
		{Name: "eu-west-1", HealthCheckID: "11111111-1111-4111-8111-111111111111"},
		{Name: "eu-west-2", HealthCheckID: "22222222-2222-4222-8222-222222222222"},
	}
	out, err := evaluate(t, g, checks...)
	require.NoError(t, err)
	require.True(t, out.Results[0].Healthy, out.Results[0].Detail)
	require.True(t, out.Results[1].Healthy, out.Results[1].Detail)

	west2.Store(false)
	out, err = evaluate(t, g, checks...)
	require.NoError(t, err)
	require.True(t, out.Results[0].Healthy)
	require.False(t, out.Results[1].Healthy, out.Results[1].Detail)

	_, err = evaluate(t, g, GateCheck{Name: "missing", HealthCheckID: "33333333-3333-4333-8333-333333333333"})
	requireAppError(t, err, ErrGateConfig)
}

func TestCloudWatchAlarmGate(t *testing.T) {
	var rate atomic.Value
	rate.Store(0.01)
	s := newSim(t, simOptions{appErrorRate: func(region string) (float64, bool) {
		if region == "eu-west-2" {
			return rate.Load().(float64), true
		}
		return 0, false
	}})
	g := &Gates{CloudWatch: s.cloudwatch(t)}
	checks := []GateCheck{
		{Name: "west-2 5xx", Alarm: &AlarmCheck{Name: "shop-eu-west-2-5xx", Region: "eu-west-2"}},
		{Name: "west-1 5xx", Alarm: &AlarmCheck{Name: "shop-eu-west-1-5xx", Region: "eu-west-1"}}, // no data
	}
	out, err := evaluate(t, g, checks...)
	require.NoError(t, err)
	require.True(t, out.Results[0].Healthy, out.Results[0].Detail)
	require.True(t, out.Results[1].Healthy, "INSUFFICIENT_DATA passes: %s", out.Results[1].Detail)

	rate.Store(0.5)
	out, err = evaluate(t, g, checks...)
	require.NoError(t, err)
	require.False(t, out.Results[0].Healthy)
	require.Contains(t, out.Results[0].Detail, "ALARM")

	_, err = evaluate(t, g, GateCheck{Name: "nope", Alarm: &AlarmCheck{Name: "nope", Region: "eu-west-2"}})
	requireAppError(t, err, ErrGateConfig)
}
