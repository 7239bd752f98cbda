package activities_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/ferryhq/ferry/activities"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/control"
)

func evalOne(t *testing.T, g *activities.Gates, c activities.GateCheck) (activities.GateResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(g)
	v, err := env.ExecuteActivity(g.EvaluateGates, activities.EvaluateGatesInput{Gates: []activities.GateCheck{c}})
	if err != nil {
		return activities.GateResult{}, err
	}
	var out activities.EvaluateGatesOutput
	require.NoError(t, v.Get(&out))
	return out.Results[0], nil
}

func ratio(region string) string {
	return `sum(rate(sandbox_client_requests_total{region="` + region + `",outcome="error"}[5s]))
	  / sum(rate(sandbox_client_requests_total{region="` + region + `"}[5s]))`
}

// The Prometheus gate against a real Prometheus scraping the sandbox's /metrics: healthy
// traffic passes, an unhealthy app fails, no data (a NaN ratio, a query matching nothing)
// and Prometheus down are inconclusive, never pass, and a query Prometheus refuses is a
// configuration error.
func TestPrometheusGate(t *testing.T) {
	sb, err := sandbox.Start(context.Background(), sandbox.Options{Addr: "127.0.0.1:0", Fast: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	prom := testenv.StartPrometheus(t, strings.TrimPrefix(sb.Addr(), "http://"))
	g := &activities.Gates{}
	check := func(q string) activities.GateCheck {
		return activities.GateCheck{Name: "5xx", Prometheus: &activities.PrometheusCheck{
			Address: prom.URL, Query: q, Condition: activities.Condition{Op: "<", Value: 0.05}}}
	}
	testenv.Eventually(t, 30*time.Second, "a rate of eu-west-1's client requests", func() bool {
		return testenv.PromQuery(t, prom.URL, `sum(rate(sandbox_client_requests_total{region="eu-west-1"}[5s]))`) > 0
	})

	r, err := evalOne(t, g, check(ratio("eu-west-1")))
	require.NoError(t, err)
	require.Equal(t, activities.VerdictPass, r.Verdict, r.Detail)

	// eu-west-2 has weight 0: no requests, 0/0 is NaN. No data is not a healthy region.
	r, err = evalOne(t, g, check(ratio("eu-west-2")))
	require.NoError(t, err)
	require.Equal(t, activities.VerdictInconclusive, r.Verdict, r.Detail)
	require.Contains(t, r.Detail, "NaN")

	r, err = evalOne(t, g, check(`sandbox_client_requests_total{region="mars"}`))
	require.NoError(t, err)
	require.Equal(t, activities.VerdictInconclusive, r.Verdict, r.Detail)
	require.Contains(t, r.Detail, "no series")

	// Several series: every one must meet the condition unless reduced first.
	r, err = evalOne(t, g, activities.GateCheck{Name: "per region", Prometheus: &activities.PrometheusCheck{
		Address: prom.URL, Query: `sum by (region) (sandbox_client_requests_total)`, Condition: activities.Condition{Op: ">", Value: 0}}})
	require.NoError(t, err)
	require.Equal(t, activities.VerdictFail, r.Verdict, "eu-west-2's count is 0: %s", r.Detail)
	r, err = evalOne(t, g, activities.GateCheck{Name: "total", Prometheus: &activities.PrometheusCheck{
		Address: prom.URL, Query: `sum by (region) (sandbox_client_requests_total)`, Condition: activities.Condition{Op: ">", Value: 0}, Series: "sum"}})
	require.NoError(t, err)
	require.Equal(t, activities.VerdictPass, r.Verdict, r.Detail)

	// The app answers 500 to half its requests (its health check still passes, so DNS keeps
	// sending clients): the gate fails once Prometheus has scraped the errors.
	_, err = sb.Faults().Add(control.Fault{Target: "app:eu-west-1", Kind: control.KindError, Rate: 0.5})
	require.NoError(t, err)
	testenv.Eventually(t, 20*time.Second, "the gate failing on eu-west-1's errors", func() bool {
		r, err = evalOne(t, g, check(ratio("eu-west-1")))
		return err == nil && r.Verdict == activities.VerdictFail
	})
	require.Contains(t, r.Detail, "not < 0.05")

	_, err = evalOne(t, g, check(`sum(rate(`))
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, activities.ErrGateConfig, ae.Type())
	require.True(t, ae.NonRetryable())
	require.Contains(t, err.Error(), "refused the query")

	// Prometheus down: inconclusive, not pass (and not a config error to give up on).
	require.NoError(t, prom.Stop())
	r, err = evalOne(t, g, check(ratio("eu-west-1")))
	require.NoError(t, err)
	require.Equal(t, activities.VerdictInconclusive, r.Verdict, r.Detail)
	require.Contains(t, r.Detail, "could not answer")
}

// The bearer token is read on the worker from its reference and sent on every query.
func TestPrometheusGateBearerToken(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.001"]}]}}`))
	}))
	defer srv.Close()
	t.Setenv("FERRY_TEST_PROM_TOKEN", "s3cret")
	r, err := evalOne(t, &activities.Gates{}, activities.GateCheck{Name: "auth", Prometheus: &activities.PrometheusCheck{
		Address: srv.URL, Query: "x", Condition: activities.Condition{Op: "<", Value: 0.01}, BearerToken: activities.Secret{Env: "FERRY_TEST_PROM_TOKEN"}}})
	require.NoError(t, err)
	require.Equal(t, activities.VerdictPass, r.Verdict, r.Detail)
	require.Equal(t, "Bearer s3cret", got)
}
