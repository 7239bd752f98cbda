package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/spec"
)

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// A scrape of the API's /metrics after a DNS shift shows the shift in ferry's own counters
// (emitted by the workflow through the SDK, so replays do not count twice) and in the
// SDK's; /readyz fails and /healthz passes while Temporal is down.
func TestMetricsAndProbes(t *testing.T) {
	st := testenv.StartStack(t)
	runToEnd(t, st, `
dnsShift: {hostedZone: shop.example., recordName: www.shop.example., from: eu-west-1, to: eu-west-2,
  schedule: [50, 100], bakeTime: 2s, gateInterval: 1s,
  gates: [{name: app, http: {url: "`+st.Sandbox.Addr()+`/_apps/eu-west-2/healthz"}}]}`)

	hc := st.API.Client()
	wants := []string{
		`ferry_migrations_started\{[^}]*kind="dns-shift"[^}]*\} 1\n`,
		`ferry_migrations_ended\{[^}]*kind="dns-shift"[^}]*state="completed"[^}]*\} 1\n`,
		`ferry_gate_evaluations\{[^}]*kind="dns-shift"[^}]*verdict="pass"[^}]*\} [1-9]`,
		`ferry_steps_ended\{[^}]*kind="dns-shift"[^}]*status="done"[^}]*\} [1-9]`,
		`ferry_step_duration_seconds_count\{[^}]*kind="dns-shift"[^}]*status="done"[^}]*\} [1-9]`,
		// The SDK may count a completion again when a workflow task is retried; ferry's own
		// counters above are exact.
		`temporal_workflow_completed\{[^}]*workflow_type="DNSShift"[^}]*\} [1-9]`,
		`temporal_activity_execution_latency_seconds_bucket\{[^}]*activity_type="ChangeWeights"[^}]*le="0.25"`,
	}
	// The SDK records a workflow's completion as its last task answers, a moment after the
	// API can see the run closed: scrape until everything is there.
	var body, missing string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var code int
		code, body = get(t, hc, st.API.URL+"/metrics")
		missing = ""
		for _, want := range wants {
			if !regexp.MustCompile(want).MatchString(body) {
				missing = want
			}
		}
		if code == http.StatusOK && missing == "" {
			break
		}
		if time.Now().After(deadline) {
			var ferry []string
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(l, "ferry_") || strings.HasPrefix(l, "temporal_workflow_completed") {
					ferry = append(ferry, l)
				}
			}
			t.Fatalf("scrape lacks %s; ferry's and completion lines:\n%s", missing, strings.Join(ferry, "\n"))
		}
	}

	code, _ := get(t, hc, st.API.URL+"/readyz")
	require.Equal(t, http.StatusOK, code)
	st.Temporal.Stop()
	code, body = get(t, hc, st.API.URL+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "temporal unreachable")
	code, _ = get(t, hc, st.API.URL+"/healthz")
	require.Equal(t, http.StatusOK, code, "liveness must not fail with Temporal: a restart fixes nothing")
}

// runToEnd starts the migration spec describes through the API, as alice, and waits until
// it has closed.
func runToEnd(t *testing.T, st *testenv.Stack, specYAML string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := spec.Parse([]byte(specYAML), ".yaml")
	require.NoError(t, err)
	api := st.APIClient(testenv.TokenAlice, false)
	res, err := api.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
	require.NoError(t, err)
	id := res.Msg.GetMigration().GetId()
	testenv.Eventually(t, time.Minute, id+" to end", func() bool {
		r, err := api.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
		return err == nil && r.Msg.GetMigration().GetCloseTime() != nil
	})
}
