package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/spec"
)

// Sandbox timings the benchmark relies on (testenv's stack: a fast sandbox, TTL 1s).
const (
	benchInsync = 50 * time.Millisecond // sandbox.Options.Fast's Route 53 INSYNC delay
	benchTTL    = time.Second
)

func shiftYAML(schedule string, bake, interval time.Duration, gateURL string) []byte {
	return []byte(fmt.Sprintf(`
dnsShift:
  hostedZone: shop.example.
  recordName: www.shop.example.
  from: eu-west-1
  to: eu-west-2
  schedule: %s
  bakeTime: %s
  gateInterval: %s
  gates: [{name: eu-west-2 health, http: {url: "%s/_apps/eu-west-2/healthz", timeout: 1s}}]
`, schedule, bake, interval, gateURL))
}

func startShift(ctx context.Context, b *testing.B, st *testenv.Stack, y []byte) (string, time.Time) {
	m, err := spec.Parse(y, ".yaml")
	if err != nil {
		b.Fatal(err)
	}
	began := time.Now()
	res, err := st.APIClient(testenv.TokenAlice, false).StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
	if err != nil {
		b.Fatal(err)
	}
	return res.Msg.GetMigration().GetId(), began
}

func waitEnd(ctx context.Context, b *testing.B, st *testenv.Stack, id string) *ferryv1.Migration {
	stream, err := st.APIClient(testenv.TokenAlice, false).WatchMigration(ctx, connect.NewRequest(&ferryv1.WatchMigrationRequest{Id: id}))
	if err != nil {
		b.Fatal(err)
	}
	var last *ferryv1.Migration
	for stream.Receive() {
		last = stream.Msg().GetMigration()
	}
	if err := stream.Err(); err != nil || last.GetCloseTime() == nil {
		b.Fatalf("watch %s: %v", id, err)
	}
	return last
}

// BenchmarkDNSShift measures the orchestration's own cost on a real shift (embedded
// Temporal, worker, sandbox Route 53):
//   - overhead: wall time of a 4-step shift / the sum of its mandated waits (INSYNC +
//     dwell per step), target at most 1.02;
//   - reaction: time from a gate turning red to the batch restoring the weights, in gate
//     intervals, target at most 1. Times come from the sandbox's own call record.
func BenchmarkDNSShift(b *testing.B) {
	st := testenv.StartStack(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const (
		bake     = 3 * time.Second
		interval = time.Second
		steps    = 4
	)
	var overhead, reaction float64
	for b.Loop() {
		// Overhead: eu-west-1 -> eu-west-2 in four steps, no approvals.
		id, began := startShift(ctx, b, st, shiftYAML("[25, 50, 75, 100]", bake, interval, st.Sandbox.Addr()))
		end := waitEnd(ctx, b, st, id)
		if end.GetState() != ferryv1.MigrationState_MIGRATION_STATE_COMPLETED {
			b.Fatalf("shift ended %v: %s", end.GetState(), end.GetMessage())
		}
		wall := end.GetCloseTime().AsTime().Sub(began)
		mandated := steps * (benchInsync + max(bake, benchTTL))
		overhead = float64(wall) / float64(mandated)

		// Reaction: shift back, turn the gate red during the first dwell, time the restore.
		back := shiftYAML("[50, 100]", 30*time.Second, interval, st.Sandbox.Addr())
		m, _ := spec.Parse(back, ".yaml")
		m.GetDnsShift().From, m.GetDnsShift().To = "eu-west-2", "eu-west-1"
		m.GetDnsShift().GetGates()[0].GetHttp().Url = st.Sandbox.Addr() + "/_apps/eu-west-1/healthz"
		res, err := st.APIClient(testenv.TokenAlice, false).StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
		if err != nil {
			b.Fatal(err)
		}
		id = res.Msg.GetMigration().GetId()
		batches := func() []control.Call {
			return st.Sandbox.AWS().Calls(control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets", Since: began})
		}
		testenv.Eventually(b, time.Minute, "the first step of the shift back", func() bool {
			r, err := st.APIClient(testenv.TokenAlice, false).GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
			return err == nil && r.Msg.GetMigration().GetDnsShift().GetStepIndex() == 0 && len(r.Msg.GetMigration().GetDnsShift().GetGates()) > 0
		})
		n := len(batches())
		red := time.Now()
		if _, err := st.Sandbox.Faults().Add(control.Fault{Target: "app:eu-west-1", Kind: control.KindUnhealthy, Rate: 1}); err != nil {
			b.Fatal(err)
		}
		end = waitEnd(ctx, b, st, id)
		_ = st.Sandbox.Faults().Clear()
		if end.GetState() != ferryv1.MigrationState_MIGRATION_STATE_ROLLED_BACK {
			b.Fatalf("shift back ended %v, want rolled back: %s", end.GetState(), end.GetMessage())
		}
		all := batches()
		if len(all) <= n {
			b.Fatal("no restoring batch in the sandbox's record")
		}
		reaction = float64(all[n].Time.Sub(red)) / float64(interval)
	}
	b.ReportMetric(overhead, "overhead-ratio")
	b.ReportMetric(reaction, "reaction-intervals")
	testenv.BenchRow(b, fmt.Sprintf("DNS shift overhead: wall time / mandated waits (%d steps, INSYNC + dwell each)", steps),
		fmt.Sprintf("%.3f", overhead), "<= 1.02", overhead <= 1.02)
	testenv.BenchRow(b, "DNS rollback reaction: gate red -> weights restored, in gate intervals", fmt.Sprintf("%.2f", reaction), "<= 1", reaction <= 1)
}
