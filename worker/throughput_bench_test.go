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

// bareQueue, bareWorkflow and twinWorkflow name testdata/bareworker's task queue and
// workflow types.
const (
	bareQueue    = "bare-bench"
	bareWorkflow = "BareWorkflow"
	twinWorkflow = "TwinWorkflow"
)

// buildBinary builds the main package at pkg into dir and returns the binary's path.
func buildBinary(b *testing.B, dir, pkg string) string {
	b.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// startProcess starts a worker process; it is killed when the benchmark ends at the latest.
func startProcess(b *testing.B, bin string, args ...string) *exec.Cmd {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// shiftWorkload starts a fast sandbox with m weighted records (t<i>.shop.example.) and
// returns it with m gate-less two-step shift inputs, one per record. The sandbox is closed
// when the benchmark ends.
func shiftWorkload(ctx context.Context, b *testing.B, m int) (*sandbox.Sandbox, []workflows.DNSShiftInput) {
	b.Helper()
	topo := topology.Default()
	testenv.AddShiftRecords(topo, m, func(i int) string { return fmt.Sprintf("t%d.shop.example.", i) })
	sb, err := sandbox.Start(ctx, sandbox.Options{Addr: "127.0.0.1:0", Fast: true, Topology: topo})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sb.Close() })
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
	return sb, inputs
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

// cpuSeconds reads a process's user+system CPU time (Linux clock ticks are 1/100 s).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the 14th and 15th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
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
// one `ferry worker` process on a fresh durable embedded store, and on another fresh durable
// store a bare SDK worker process (testdata/bareworker) running as many workflows of as many
// activities. It reports ferry's activities/s against the bare ones (target >= 0.8), the
// ferry worker's peak RSS (target <= 300 MiB), and the bare workload's throughput on the
// durable file against in-memory (target >= 0.7).
func BenchmarkThroughput(b *testing.B) {
	m := *benchShifts
	dir := b.TempDir()
	ferryBin := buildBinary(b, dir, "../cmd/ferry")
	bareBin := buildBinary(b, dir, "./testdata/bareworker")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	sb, inputs := shiftWorkload(ctx, b, m)

	// Each workload gets a fresh store and its own worker process: a store already holding
	// the other workload's thousands of histories is slower, and that would bias whichever
	// runs second. CPU is read per process, so the table says where the time went: the worker,
	// or this process (Temporal's server and, for ferry, the sandbox answering AWS calls).
	type result struct{ rate, workerCPU, serverCPU, rss float64 }
	run := func(o devtemporal.Options, bin string, args []string, start func(c client.Client, i int) (client.WorkflowRun, error)) result {
		srv, c, stop := testenv.StartTemporal(b, o)
		defer stop()
		w := startProcess(b, bin, append([]string{"--temporal-address", srv.HostPort()}, args...)...)
		defer func() { _ = w.Process.Kill() }()
		self := cpuSeconds(os.Getpid())
		rate := timeConcurrently(ctx, b, c, m, m*activitiesPerShift, func(i int) (client.WorkflowRun, error) { return start(c, i) })
		return result{rate: rate, workerCPU: cpuSeconds(w.Process.Pid), serverCPU: cpuSeconds(os.Getpid()) - self, rss: peakRSS(w.Process.Pid)}
	}
	ferryArgs := []string{"--aws-endpoint", sb.Addr(), "--log-level", "error", "--allow-unsigned"}
	startFerry := func(c client.Client, i int) (client.WorkflowRun, error) {
		return c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bench/%d", i), TaskQueue: workflows.TaskQueue}, workflows.DNSShift, inputs[i])
	}
	startBare := func(c client.Client, i int) (client.WorkflowRun, error) {
		return c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("bare-%d", i), TaskQueue: bareQueue}, bareWorkflow, activitiesPerShift)
	}
	// The twin has the shift's Temporal shape (its timers and upserts) with no-op activities.
	startTwin := func(c client.Client, i int) (client.WorkflowRun, error) {
		return c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("twin-%d", i), TaskQueue: bareQueue}, twinWorkflow,
			map[string]any{"Dwell": time.Second}) // max(bake 1s, TTL 1s), as the shifts dwell
	}
	var fr, br, mr, tr result
	for b.Loop() {
		fr = run(devtemporal.Options{DBFile: filepath.Join(dir, fmt.Sprintf("ferry-%d.db", b.N))}, ferryBin, append([]string{"worker"}, ferryArgs...), startFerry)
		br = run(devtemporal.Options{DBFile: filepath.Join(dir, fmt.Sprintf("bare-%d.db", b.N))}, bareBin, nil, startBare)
		mr = run(devtemporal.Options{}, bareBin, nil, startBare)
		tr = run(devtemporal.Options{DBFile: filepath.Join(dir, fmt.Sprintf("twin-%d.db", b.N))}, bareBin, nil, startTwin)
	}
	ferryRate, bareRate, memRate, rss := fr.rate, br.rate, mr.rate, fr.rss
	batches := sb.AWS().Calls(control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets"})
	if len(batches) < 2*m {
		b.Fatalf("sandbox saw %d batches; %d shifts need %d", len(batches), m, 2*m)
	}
	b.ReportMetric(ferryRate, "ferry-act/s")
	b.ReportMetric(bareRate, "bare-act/s")
	b.ReportMetric(ferryRate/bareRate, "ferry/bare")
	b.ReportMetric(rss, "worker-peak-MiB")
	b.ReportMetric(bareRate/memRate, "file/memory")
	testenv.BenchRow(b, fmt.Sprintf("%d concurrent DNS shifts (all complete): ferry vs bare SDK worker process, activities/s", m),
		fmt.Sprintf("%.0f vs %.0f = %.2f", ferryRate, bareRate, ferryRate/bareRate), ">= 0.8", ferryRate/bareRate >= 0.8)
	testenv.BenchRow(b, "ferry worker peak RSS over those shifts", fmt.Sprintf("%.0f MiB", rss), "<= 300 MiB", rss <= 300)
	testenv.BenchRow(b, "embedded store: durable file vs in-memory, bare activities/s",
		fmt.Sprintf("%.0f vs %.0f = %.2f", bareRate, memRate, bareRate/memRate), ">= 0.7", bareRate/memRate >= 0.7)
	perRun := func(r result) string {
		return fmt.Sprintf("worker %.1f ms, server %.1f ms", 1000*r.workerCPU/float64(m), 1000*r.serverCPU/float64(m))
	}
	testenv.BenchInfo(b, "the shift's Temporal shape alone (2 dwell timers, 5 upserts, no-op activities) vs bare, activities/s",
		fmt.Sprintf("%.0f vs %.0f = %.2f", tr.rate, bareRate, tr.rate/bareRate))
	testenv.BenchInfo(b, "ferry vs that shape (ferry's own cost: cloud calls, worker code), activities/s",
		fmt.Sprintf("%.0f vs %.0f = %.2f", ferryRate, tr.rate, ferryRate/tr.rate))
	testenv.BenchInfo(b, "CPU per workflow: ferry shift (server includes the sandbox)", perRun(fr))
	testenv.BenchInfo(b, "CPU per workflow: the shift's shape", perRun(tr))
	testenv.BenchInfo(b, "CPU per workflow: bare", perRun(br))
}
