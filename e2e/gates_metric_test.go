package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/spec"
)

// metricShift is a two-step shift of www between from and to, 6 s a step, its one gate
// (YAML) evaluated every second.
func metricShift(t *testing.T, from, to, gate string) *ferryv1.MigrationSpec {
	t.Helper()
	m, err := spec.Parse([]byte(fmt.Sprintf(`
name: metric gate %s -> %s
dnsShift:
  hostedZone: shop.example.
  recordName: www.shop.example.
  from: %s
  to: %s
  schedule: [50, 100]
  bakeTime: 6s
  gateInterval: 1s
  gates:
    - %s
`, from, to, from, to, strings.ReplaceAll(strings.TrimSpace(gate), "\n", "\n      "))), ".yaml")
	require.NoError(t, err)
	return m
}

func promGate(addr, region string) string {
	return fmt.Sprintf(`name: %[2]s 5xx ratio
prometheus:
  address: %[1]s
  query: sum(rate(sandbox_client_requests_total{region="%[2]s",outcome="error"}[3s])) / sum(rate(sandbox_client_requests_total{region="%[2]s"}[3s]))
  condition: "< 0.05"`, addr, region)
}

func cloudWatchGate(region string) string {
	return fmt.Sprintf(`name: %[1]s 5xx ratio
cloudwatchMetric:
  region: %[1]s
  period: 1s
  expression: errors / requests
  metrics:
    - {id: errors, namespace: Sandbox/App, metricName: Errors, dimensions: {Region: %[1]s}, statistic: Sum}
    - {id: requests, namespace: Sandbox/App, metricName: Requests, dimensions: {Region: %[1]s}, statistic: Sum}
  condition: "< 0.05"`, region)
}

type metricStack struct {
	*testenv.Stack
	ctx context.Context
}

func (s metricStack) start(t *testing.T, m *ferryv1.MigrationSpec) string {
	t.Helper()
	res, err := s.APIClient(testenv.TokenAlice, false).StartMigration(s.ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
	require.NoError(t, err)
	return res.Msg.GetMigration().GetId()
}

func (s metricStack) get(t *testing.T, id string) *ferryv1.Migration {
	t.Helper()
	r, err := s.APIClient(testenv.TokenAlice, false).GetMigration(s.ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
	require.NoError(t, err)
	return r.Msg.GetMigration()
}

func (s metricStack) waitState(t *testing.T, id string, want ferryv1.MigrationState) *ferryv1.Migration {
	t.Helper()
	var m *ferryv1.Migration
	// A migration reports its end state a moment before its run closes (it still releases
	// its locks); a terminal state counts once the run has closed.
	terminal := want != ferryv1.MigrationState_MIGRATION_STATE_PAUSED
	testenv.Eventually(t, 90*time.Second, id+" in state "+want.String(), func() bool {
		m = s.get(t, id)
		// A pause and the gate verdicts that caused it are two progress updates: a paused
		// shift is read once its gates are published (seen empty in CI, under load).
		published := want != ferryv1.MigrationState_MIGRATION_STATE_PAUSED || len(m.GetDnsShift().GetGates()) > 0
		return m.GetState() == want && (!terminal || m.GetCloseTime() != nil) && published
	})
	return m
}

// weights are www's record-set weights as the sandbox's Route 53 holds them.
func (s metricStack) weights() map[string]int64 {
	w := map[string]int64{}
	for _, a := range s.Sandbox.AWS().Resolve("www.shop.example.", "A") {
		w[a.SetIdentifier] = a.Weight
	}
	return w
}

func audited(m *ferryv1.Migration, action, part string) bool {
	for _, e := range m.GetAudit() {
		if e.GetAction() == action && strings.Contains(e.GetReason(), part) {
			return true
		}
	}
	return false
}

// TestMetricGates runs DNS shifts gated on the clients' 5xx ratio, read from a real
// Prometheus scraping the sandbox and from the sandbox's CloudWatch, and judges them from
// the sandbox's Route 53: a release that fails half of eu-west-2's requests (its health
// check still passing, so DNS keeps sending clients) rolls the shift back to where it
// started under either gate; a query that matches nothing pauses for a person, who resumes;
// Prometheus down pauses too, never passes.
func TestMetricGates(t *testing.T) {
	st := testenv.StartStack(t)
	prom := testenv.StartPrometheus(t, strings.TrimPrefix(st.Sandbox.Addr(), "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := metricStack{st, ctx}
	start := s.weights()
	require.Equal(t, map[string]int64{"eu-west-1": 100, "eu-west-2": 0}, start)

	for _, tc := range []struct{ name, gate string }{
		{"prometheus", promGate(prom.URL, "eu-west-2")},
		{"cloudwatch", cloudWatchGate("eu-west-2")},
	} {
		t.Run(tc.name+" rolls back a failing release", func(t *testing.T) {
			// The gates read the last seconds: let the previous case's errors age out of
			// them, or this shift is rolled back on its predecessor's numbers.
			testenv.Eventually(t, 20*time.Second, "eu-west-2 quiet for 6s", func() bool {
				n, _, _ := st.Sandbox.Apps().Counts("eu-west-2", time.Now().Add(-6*time.Second), time.Now())
				return n == 0
			})
			id := s.start(t, metricShift(t, "eu-west-1", "eu-west-2", tc.gate))
			var seen []*ferryv1.GateResult
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("last gate results: %v", seen)
				}
			})
			testenv.Eventually(t, time.Minute, "the first step's weights and a passing gate", func() bool {
				seen = s.get(t, id).GetDnsShift().GetGates()
				return s.weights()["eu-west-2"] == 50 && len(seen) == 1 && seen[0].GetVerdict() == "pass"
			})
			f, err := st.Sandbox.Faults().Add(control.Fault{Target: "app:eu-west-2", Kind: control.KindError, Rate: 0.5})
			require.NoError(t, err)
			defer func() { _, _ = st.Sandbox.Faults().Delete(f.ID) }()
			m := s.waitState(t, id, ferryv1.MigrationState_MIGRATION_STATE_ROLLED_BACK)
			require.Equal(t, start, s.weights(), "rolled back means the records are as they were")
			require.True(t, audited(m, "gate failed", "eu-west-2 5xx ratio"), "audit: %v", m.GetAudit())
			require.Equal(t, "fail", m.GetDnsShift().GetGates()[0].GetVerdict())
		})
	}

	t.Run("no data pauses for a person", func(t *testing.T) {
		id := s.start(t, metricShift(t, "eu-west-1", "eu-west-2", promGate(prom.URL, "mars")))
		m := s.waitState(t, id, ferryv1.MigrationState_MIGRATION_STATE_PAUSED)
		require.Equal(t, "inconclusive", m.GetDnsShift().GetGates()[0].GetVerdict())
		require.True(t, audited(m, "gate inconclusive", "no series"), "audit: %v", m.GetAudit())
		require.Equal(t, int64(50), s.weights()["eu-west-2"], "paused at its first step, not past it")
		_, err := s.APIClient(testenv.TokenAlice, false).ResumeMigration(ctx, connect.NewRequest(&ferryv1.ResumeMigrationRequest{Id: id, Reason: "mars has no app: fine"}))
		require.NoError(t, err)
		s.waitState(t, id, ferryv1.MigrationState_MIGRATION_STATE_COMPLETED)
		require.Equal(t, map[string]int64{"eu-west-1": 0, "eu-west-2": 100}, s.weights())
	})

	t.Run("prometheus down pauses, never passes", func(t *testing.T) {
		require.NoError(t, prom.Stop())
		id := s.start(t, metricShift(t, "eu-west-2", "eu-west-1", promGate(prom.URL, "eu-west-1")))
		m := s.waitState(t, id, ferryv1.MigrationState_MIGRATION_STATE_PAUSED)
		require.Equal(t, "inconclusive", m.GetDnsShift().GetGates()[0].GetVerdict())
		require.Contains(t, m.GetDnsShift().GetGates()[0].GetDetail(), "could not answer")
		_, err := s.APIClient(testenv.TokenAlice, false).RollbackMigration(ctx, connect.NewRequest(&ferryv1.RollbackMigrationRequest{Id: id, Reason: "no metrics, no shift"}))
		require.NoError(t, err)
		s.waitState(t, id, ferryv1.MigrationState_MIGRATION_STATE_ROLLED_BACK)
		require.Equal(t, map[string]int64{"eu-west-1": 0, "eu-west-2": 100}, s.weights())
	})
}
