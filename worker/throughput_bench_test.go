package worker_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/internal/devtemporal"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/topology"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

var benchShifts = flag.Int("bench.shifts", 1000, "concurrent DNS shifts in BenchmarkThroughput")

// activitiesPerShift is what a gate-less two-step shift runs: preflight, then per step one
// batch and one INSYNC wait.
const activitiesPerShift = 5

// bareWorkflow runs n no-op activities in sequence: the SDK's own cost for the same number
// of activities, without ferry's steering, timers or cloud calls.
func bareWorkflow(ctx workflow.Context, n int) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3}})
	for range n {
		if err := workflow.ExecuteActivity(ctx, bareActivity).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

func bareActivity(context.Context) error { return nil }

// runBare runs m bare workflows of k activities concurrently and returns activities/s.
func runBare(ctx context.Context, b *testing.B, c client.Client, m, k int) float64 {
	const queue = "bare-bench"
	w := sdkworker.New(c, queue, sdkworker.Options{})
	w.RegisterWorkflow(bareWorkflow)
	w.RegisterActivity(bareActivity)
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	return timeConcurrently(ctx, b, c, m, m*k, func(i int) (client.WorkflowRun, error) {
		return c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bare-%d-%d", time.Now().UnixNano(), i), TaskQueue: queue}, bareWorkflow, k)
	})
}

// timeConcurrently starts m workflows, waits for all and returns activities per second.
func timeConcurrently(ctx context.Context, b *testing.B, c client.Client, m, activities int, start func(int) (client.WorkflowRun, error)) float64 {
	began := time.Now()
	runs := make([]client.WorkflowRun, m)
	for i := range m {
		run, err := start(i)
		if err != nil {
			b.Fatal(err)
		}
		runs[i] = run
	}
	var wg sync.WaitGroup
	errs := make(chan error, m)
	for _, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run.Get(ctx, nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return float64(activities) / time.Since(began).Seconds()
}

// peakRSS reads a process's high-water resident set size in MiB.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// BenchmarkThroughput runs -bench.shifts concurrent DNS shifts (short sandbox waits) through
// one `ferry worker` process on a durable embedded store, and on a fresh durable store a bare
// SDK workload with the same number of activities. It reports ferry's activities/s against the
// bare ones (target >= 0.8), the worker's peak RSS (target <= 300 MiB), and the bare
// workload's throughput on the durable file against in-memory (target >= 0.7).
func BenchmarkThroughput(b *testing.B) {
	m := *benchShifts
	dir := b.TempDir()
	bin := filepath.Join(dir, "ferry")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ferry").CombinedOutput(); err != nil {
		b.Fatalf("build ferry: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	durable, err := devtemporal.Start(devtemporal.Options{UIPort: -1, DBFile: filepath.Join(dir, "temporal.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer durable.Stop()
	c, err := client.Dial(client.Options{HostPort: durable.HostPort(), Logger: testenv.QuietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()

	topo := topology.Default()
	testenv.AddShiftRecords(topo, m, func(i int) string { return fmt.Sprintf("t%d.shop.example.", i) })
	sb, err := sandbox.Start(ctx, sandbox.Options{Addr: "127.0.0.1:0", Fast: true, Topology: topo})
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	worker := exec.Command(bin, "worker", "--temporal-address", durable.HostPort(), "--aws-endpoint", sb.Addr(), "--log-level", "error")
	if err := worker.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = worker.Process.Kill(); _ = worker.Wait() }()

	inputs := make([]workflows.DNSShiftInput, m)
	for i := range m {
		s, err := spec.Parse([]byte(fmt.Sprintf(`dnsShift: {hostedZone: shop.example., recordName: t%d.shop.example., from: eu-west-1, to: eu-west-2, schedule: [50, 100], bakeTime: 1s}`, i)), ".yaml")
		if err != nil {
			b.Fatal(err)
		}
		if inputs[i], err = spec.DNSShiftInput(s, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	// Each workload gets a fresh store: a store already holding the other workload's
	// thousands of histories is slower, and that would bias whichever runs second.
	bareOn := func(o devtemporal.Options) float64 {
		o.UIPort = -1
		srv, err := devtemporal.Start(o)
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Stop()
		bc, err := client.Dial(client.Options{HostPort: srv.HostPort(), Logger: testenv.QuietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		defer bc.Close()
		return runBare(ctx, b, bc, m, activitiesPerShift)
	}
	var ferryRate, bareRate, memRate float64
	for b.Loop() {
		ferryRate = timeConcurrently(ctx, b, c, m, m*activitiesPerShift, func(i int) (client.WorkflowRun, error) {
			return c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bench/%d/%d", b.N, i), TaskQueue: workflows.TaskQueue}, workflows.DNSShift, inputs[i])
		})
		bareRate = bareOn(devtemporal.Options{DBFile: filepath.Join(dir, fmt.Sprintf("bare-%d.db", b.N))})
		memRate = bareOn(devtemporal.Options{})
	}
	batches := sb.AWS().Calls(control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets"})
	if len(batches) < 2*m {
		b.Fatalf("sandbox saw %d batches; %d shifts need %d", len(batches), m, 2*m)
	}
	rss := peakRSS(worker.Process.Pid)
	b.ReportMetric(ferryRate, "ferry-act/s")
	b.ReportMetric(bareRate, "bare-act/s")
	b.ReportMetric(ferryRate/bareRate, "ferry/bare")
	b.ReportMetric(rss, "worker-peak-MiB")
	b.ReportMetric(bareRate/memRate, "file/memory")
	b.Logf("%d concurrent DNS shifts: ferry %.0f activities/s vs bare SDK %.0f (ratio %.2f, target >= 0.8); worker peak RSS %.0f MiB (target <= 300); durable file %.0f vs in-memory %.0f activities/s (ratio %.2f, target >= 0.7)",
		m, ferryRate, bareRate, ferryRate/bareRate, rss, bareRate, memRate, bareRate/memRate)
}
