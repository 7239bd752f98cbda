package worker_test

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/internal/devtemporal"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/topology"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

var scaleShifts = flag.Int("bench.scaleshifts", 200, "DNS shifts per run in BenchmarkScaleOut")

// scaleRun is what one run of concurrent shifts left in Temporal's histories.
type scaleRun struct {
	wall      time.Duration
	durations []time.Duration // per shift, start to close
	tasks     map[string]int  // tasks (workflow and activity) started, by worker identity
	retried   int             // activities that needed more than one attempt
	timedOut  int             // workflow tasks that timed out (on a dead worker or its sticky queue)
	touched   map[string]bool // shifts with a retried activity or a timed-out workflow task
	byID      map[string]time.Duration
}

// BenchmarkScaleOut runs concurrent DNS shifts with three `ferry worker` processes on one
// durable embedded store, twice: undisturbed, then with one worker SIGKILLed a third of the
// way in (and not replaced). From the histories it reports each worker's share of the tasks,
// and the cost of the kill: wall time against the undisturbed run, and how many shifts were
// delayed at all (the ones with a task in flight or cached on the dead worker, which wait for
// a timeout and a retry elsewhere), against the others' median time.
func BenchmarkScaleOut(b *testing.B) {
	m := *scaleShifts
	dir := b.TempDir()
	bin := buildBinary(b, dir, "../cmd/ferry")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	srv, c, stop := testenv.StartTemporal(b, devtemporal.Options{DBFile: filepath.Join(dir, "temporal.db")})
	defer stop()
	topo := topology.Default()
	name := func(run, i int) string { return fmt.Sprintf("s%d-%d.shop.example.", run, i) }
	for run := range 2 {
		testenv.AddShiftRecords(topo, m, func(i int) string { return name(run, i) })
	}
	sb, err := sandbox.Start(ctx, sandbox.Options{Addr: "127.0.0.1:0", Fast: true, Topology: topo})
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()

	runShifts := func(run int, kill func(workers []*exec.Cmd)) scaleRun {
		workers := make([]*exec.Cmd, 3)
		for i := range workers {
			workers[i] = startProcess(b, bin, "worker", "--temporal-address", srv.HostPort(), "--aws-endpoint", sb.Addr(), "--log-level", "error", "--allow-unsigned")
		}
		defer func() {
			for _, w := range workers {
				_ = w.Process.Kill()
			}
		}()
		ids := make([]string, m)
		began := time.Now()
		for i := range m {
			s, err := spec.Parse([]byte(fmt.Sprintf(`dnsShift: {hostedZone: shop.example., recordName: %s, from: eu-west-1, to: eu-west-2, schedule: [50, 100], bakeTime: 1s}`, name(run, i))), ".yaml")
			if err != nil {
				b.Fatal(err)
			}
			in, err := spec.DNSShiftInput(s, "bench")
			if err != nil {
				b.Fatal(err)
			}
			ids[i] = fmt.Sprintf("scale/%d/%d", run, i)
			if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: ids[i], TaskQueue: workflows.TaskQueue}, workflows.DNSShift, in); err != nil {
				b.Fatal(err)
			}
		}
		if kill != nil {
			kill(workers)
		}
		for _, id := range ids {
			var res workflows.DNSShiftResult
			if err := c.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil || res.State != workflows.StateCompleted {
				b.Fatalf("%s: %v %s", id, err, res.Message)
			}
		}
		r := scaleRun{wall: time.Since(began), tasks: map[string]int{}, touched: map[string]bool{}, byID: map[string]time.Duration{}}
		for _, id := range ids {
			var start, end time.Time
			it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				e, err := it.Next()
				if err != nil {
					b.Fatal(err)
				}
				switch e.GetEventType() {
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
					start = e.GetEventTime().AsTime()
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
					end = e.GetEventTime().AsTime()
				case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
					r.tasks[e.GetWorkflowTaskStartedEventAttributes().GetIdentity()]++
				case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
					a := e.GetActivityTaskStartedEventAttributes()
					r.tasks[a.GetIdentity()]++
					if a.GetAttempt() > 1 {
						r.retried++
						r.touched[id] = true
					}
				case enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
					r.timedOut++
					r.touched[id] = true
				}
			}
			r.durations = append(r.durations, end.Sub(start))
			r.byID[id] = end.Sub(start)
		}
		return r
	}

	var calm, hurt scaleRun
	var killedAfter time.Duration
	for b.Loop() {
		calm = runShifts(0, nil)
		killedAfter = calm.wall / 3
		hurt = runShifts(1, func(workers []*exec.Cmd) {
			time.Sleep(killedAfter) // the moment of the failure, not a synchronisation
			_ = workers[0].Process.Signal(syscall.SIGKILL)
		})
	}

	var shares []string
	total := 0
	for _, n := range calm.tasks {
		total += n
	}
	for _, id := range slices.Sorted(maps.Keys(calm.tasks)) {
		shares = append(shares, fmt.Sprintf("%.0f%%", 100*float64(calm.tasks[id])/float64(total)))
	}
	var untouched, delayed []time.Duration
	for id, d := range hurt.byID {
		if hurt.touched[id] {
			delayed = append(delayed, d)
		} else {
			untouched = append(untouched, d)
		}
	}
	p50 := func(d []time.Duration) time.Duration {
		if len(d) == 0 {
			return 0
		}
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	maxOf := func(d []time.Duration) time.Duration {
		if len(d) == 0 {
			return 0
		}
		return slices.Max(d)
	}
	// The longest a dead worker can hold a shift: its in-flight task's timeout before the
	// retry elsewhere (15 s: the preflight's start-to-close and the batch's heartbeat; the
	// INSYNC wait's heartbeat is 10 s), plus the 5 s after which a workflow task waiting on
	// the dead worker's sticky queue goes to the shared one.
	const retryBound = 20 * time.Second
	slowdown := hurt.wall - calm.wall
	b.ReportMetric(calm.wall.Seconds(), "calm-s")
	b.ReportMetric(hurt.wall.Seconds(), "killed-s")
	testenv.BenchRow(b, fmt.Sprintf("3 workers, %d concurrent shifts: each worker's share of %d tasks", m, total),
		strings.Join(shares, " / "), "each near 33%", len(shares) == 3 && minShare(calm.tasks, total) >= 0.2)
	testenv.BenchRow(b, fmt.Sprintf("one of 3 workers SIGKILLed at %s: wall time vs undisturbed", killedAfter.Round(time.Second)),
		fmt.Sprintf("%s vs %s (+%s)", hurt.wall.Round(100*time.Millisecond), calm.wall.Round(100*time.Millisecond), slowdown.Round(100*time.Millisecond)),
		fmt.Sprintf("+ <= %s (in-flight timeout + sticky fallback)", retryBound), slowdown <= retryBound)
	testenv.BenchRow(b, "after the kill: shifts not waiting on the dead worker, p50 vs undisturbed p50",
		fmt.Sprintf("%d shifts, %s vs %s", len(untouched), p50(untouched).Round(10*time.Millisecond), p50(calm.durations).Round(10*time.Millisecond)),
		"<= 1.2x", float64(p50(untouched)) <= 1.2*float64(p50(calm.durations)))
	testenv.BenchInfo(b, "after the kill: shifts that waited on the dead worker (retried activities, timed-out workflow tasks)",
		fmt.Sprintf("%d shifts (%d retries, %d task timeouts), p50 %s, max %s", len(delayed), hurt.retried, hurt.timedOut,
			p50(delayed).Round(10*time.Millisecond), maxOf(delayed).Round(10*time.Millisecond)))
}

func minShare(tasks map[string]int, total int) float64 {
	lo := 1.0
	for _, n := range tasks {
		lo = min(lo, float64(n)/float64(total))
	}
	return lo
}
