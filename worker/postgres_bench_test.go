package worker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/internal/clustersetup"
	"github.com/ferryhq/ferry/internal/devtemporal"
	"github.com/ferryhq/ferry/internal/pgtemporal"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/workflows"
)

// BenchmarkThroughputPostgres runs -bench.shifts concurrent DNS shifts through one `ferry
// worker` process twice, side by side: on ferry dev's embedded store (SQLite in a durable
// file) and on a Temporal cluster on PostgreSQL (the pinned server's own binaries, what
// production clusters run). It reports activities/s on each and their ratio. There is no
// target: the number says what moving off the embedded store costs or gains on this
// machine, where PostgreSQL shares the two cores with Temporal, the worker and the sandbox.
func BenchmarkThroughputPostgres(b *testing.B) {
	if err := pgtemporal.Reachable(""); err != nil {
		b.Skipf("no PostgreSQL: %v", err)
	}
	m := *benchShifts
	dir := b.TempDir()
	ferryBin := buildBinary(b, dir, "../cmd/ferry")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	sb, inputs := shiftWorkload(ctx, b, m)

	shifts := func(c client.Client, hostPort, prefix string) float64 {
		w := startProcess(b, ferryBin, "worker", "--temporal-address", hostPort, "--aws-endpoint", sb.Addr(), "--log-level", "error", "--allow-unsigned")
		defer func() { _ = w.Process.Kill() }()
		return timeConcurrently(ctx, b, c, m, m*activitiesPerShift, func(i int) (client.WorkflowRun, error) {
			return c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("%s/%d", prefix, i), TaskQueue: workflows.TaskQueue}, workflows.DNSShift, inputs[i])
		})
	}
	var sqlite, pg float64
	for b.Loop() {
		srv, c, stop := testenv.StartTemporal(b, devtemporal.Options{DBFile: filepath.Join(dir, fmt.Sprintf("sqlite-%d.db", b.N))})
		sqlite = shifts(c, srv.HostPort(), "sqlite")
		stop()

		cl, err := pgtemporal.Start(ctx, pgtemporal.Options{Dir: filepath.Join(dir, fmt.Sprintf("pg-%d", b.N))})
		if err != nil {
			b.Fatal(err)
		}
		pc, err := client.Dial(client.Options{HostPort: cl.HostPort, Logger: testenv.QuietLogger()})
		if err != nil {
			cl.Stop()
			b.Fatal(err)
		}
		if _, err := clustersetup.Run(ctx, pc, clustersetup.Options{Namespace: "default"}); err != nil {
			b.Fatalf("setup: %v\n%s", err, cl.LogTail(20))
		}
		pg = shifts(pc, cl.HostPort, "pg")
		pc.Close()
		cl.Stop()
	}
	b.ReportMetric(sqlite, "sqlite-act/s")
	b.ReportMetric(pg, "postgres-act/s")
	testenv.BenchInfo(b, fmt.Sprintf("%d concurrent DNS shifts, one ferry worker: Temporal on PostgreSQL vs embedded SQLite file, activities/s", m),
		fmt.Sprintf("%.0f vs %.0f = %.2f", pg, sqlite, pg/sqlite))
}
