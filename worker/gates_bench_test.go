package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/spec"
)

// BenchmarkGateReaction measures, side by side on one stack, how fast each kind of gate
// turns a failing release into restored weights: eu-west-2's app starts answering 500 to
// every request during a step's dwell, and the reaction is the time from the fault to the
// batch that restores the weights, from the sandbox's own call record, in gate intervals
// (1 s). The HTTP probe GETs the app; the Prometheus gate reads the clients' 5xx ratio from
// a real Prometheus scraping the sandbox every second (so it sees errors one scrape later);
// the CloudWatch metric gate reads the sandbox's GetMetricData with a 1 s period (its
// latest complete period is up to one period old).
func BenchmarkGateReaction(b *testing.B) {
	st := testenv.StartStack(b)
	prom := testenv.StartPrometheus(b, strings.TrimPrefix(st.Sandbox.Addr(), "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const interval = time.Second
	// Targets: one gate interval (the fault starts anywhere in one), plus for the metric
	// gates one scrape or period (the errors reach the source that much later), plus 0.2
	// for the batch itself.
	gates := []struct {
		name, yaml string
		target     float64
	}{
		{"HTTP probe", fmt.Sprintf(`{name: app, http: {url: "%s/_apps/eu-west-2/", timeout: 1s}}`, st.Sandbox.Addr()), 1.2},
		{"Prometheus (scrape 1s)", fmt.Sprintf(`{name: 5xx, prometheus: {address: "%s", condition: "< 0.05", query: 'sum(rate(sandbox_client_requests_total{region="eu-west-2",outcome="error"}[3s])) / sum(rate(sandbox_client_requests_total{region="eu-west-2"}[3s]))'}}`, prom.URL), 2.2},
		{"CloudWatch metric (period 1s)", `{name: 5xx, cloudwatchMetric: {region: eu-west-2, period: 1s, metric: {namespace: Sandbox/App, metricName: 5XXErrorRate, dimensions: {Region: eu-west-2}}, condition: "< 0.05"}}`, 2.2},
	}
	reaction := make([]float64, len(gates))
	for b.Loop() {
		for i, g := range gates {
			// Let the previous round's errors age out of the metric windows.
			testenv.Eventually(b, 30*time.Second, "eu-west-2 quiet", func() bool {
				n, _, _ := st.Sandbox.Apps().Counts("eu-west-2", time.Now().Add(-6*time.Second), time.Now())
				return n == 0
			})
			m, err := spec.Parse([]byte(fmt.Sprintf(`
dnsShift: {hostedZone: shop.example., recordName: www.shop.example., from: eu-west-1, to: eu-west-2,
  schedule: [50, 100], bakeTime: 30s, gateInterval: %s, gates: [%s]}`, interval, g.yaml)), ".yaml")
			if err != nil {
				b.Fatal(err)
			}
			api := st.APIClient(testenv.TokenAlice, false)
			res, err := api.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
			if err != nil {
				b.Fatal(err)
			}
			id := res.Msg.GetMigration().GetId()
			testenv.Eventually(b, time.Minute, g.name+": the first step, gate passing", func() bool {
				r, err := api.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
				gs := r.Msg.GetMigration().GetDnsShift().GetGates()
				return err == nil && r.Msg.GetMigration().GetDnsShift().GetStepIndex() == 0 && len(gs) == 1 && gs[0].GetVerdict() == "pass"
			})
			red := time.Now()
			f, err := st.Sandbox.Faults().Add(control.Fault{Target: "app:eu-west-2", Kind: control.KindError, Rate: 1})
			if err != nil {
				b.Fatal(err)
			}
			end := waitEnd(ctx, b, st, id)
			_, _ = st.Sandbox.Faults().Delete(f.ID)
			if end.GetState() != ferryv1.MigrationState_MIGRATION_STATE_ROLLED_BACK {
				b.Fatalf("%s: shift ended %v, want rolled back: %s", g.name, end.GetState(), end.GetMessage())
			}
			calls := st.Sandbox.AWS().Calls(control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets", Since: red})
			if len(calls) == 0 {
				b.Fatalf("%s: no restoring batch in the sandbox's record", g.name)
			}
			reaction[i] = float64(calls[0].Time.Sub(red)) / float64(interval)
		}
	}
	for i, g := range gates {
		b.ReportMetric(reaction[i], strings.Fields(g.name)[0]+"-reaction-intervals")
		testenv.BenchRow(b, "DNS rollback reaction, "+g.name+" gate: release fails -> weights restored, in 1s gate intervals",
			fmt.Sprintf("%.2f", reaction[i]), fmt.Sprintf("<= %.1f", g.target), reaction[i] <= g.target)
	}
}
