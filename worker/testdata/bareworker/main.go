// Command bareworker is the baseline of BenchmarkThroughput: a Temporal worker process with
// default options that runs workflows of N no-op activities (and a twin of a DNS shift's
// shape), so the benchmark compares ferry's worker process with a bare SDK worker process
// under the same conditions (own process, own runtime and GC, gRPC over loopback). It lives under testdata so `./...` never builds it;
// the benchmark builds it by path.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/workflows"
)

// TaskQueue and the workflow name are what the benchmark starts.
const TaskQueue = "bare-bench"

// BareWorkflow runs n no-op activities in sequence: the SDK's own cost for that many
// activities, without ferry's steering, timers or cloud calls.
func BareWorkflow(ctx workflow.Context, n int) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3}})
	for range n {
		if err := workflow.ExecuteActivity(ctx, BareActivity).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// BareActivity does nothing.
func BareActivity(context.Context) error { return nil }

// TwinInput sizes TwinWorkflow.
type TwinInput struct {
	// Dwell is each step's timer, as a DNS shift's dwell of max(bake, TTL).
	Dwell time.Duration
}

// TwinWorkflow has the Temporal shape of a gate-less two-step DNS shift, with no-op
// activities: preflight, then per step a batch, an INSYNC wait and a dwell timer, and the
// search-attribute upserts ferry's steering makes (state at setup, then the phase at
// preflight, at each step and at the end). Ferry's throughput against this twin is its own
// cost (cloud calls, worker code) beyond what the shape of the migration costs Temporal.
func TwinWorkflow(ctx workflow.Context, in TwinInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3}})
	upsert := func(phase string) error {
		return workflow.UpsertTypedSearchAttributes(ctx, workflows.SAPhase.ValueSet(phase))
	}
	act := func() error { return workflow.ExecuteActivity(ctx, BareActivity).Get(ctx, nil) }
	if err := upsert(""); err != nil {
		return err
	}
	if err := upsert("preflight"); err != nil {
		return err
	}
	if err := act(); err != nil {
		return err
	}
	for _, phase := range []string{"step 1/2", "step 2/2"} {
		if err := upsert(phase); err != nil {
			return err
		}
		if err := act(); err != nil { // the batch
			return err
		}
		if err := act(); err != nil { // the INSYNC wait
			return err
		}
		if err := workflow.Sleep(ctx, in.Dwell); err != nil {
			return err
		}
	}
	return upsert("completed")
}

func main() {
	addr := flag.String("temporal-address", "127.0.0.1:7233", "Temporal frontend host:port")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := client.Dial(client.Options{HostPort: *addr, Logger: tlog.NewStructuredLogger(logger)})
	if err != nil {
		logger.Error("dial temporal", "error", err)
		os.Exit(1)
	}
	defer c.Close()
	w := worker.New(c, TaskQueue, worker.Options{})
	w.RegisterWorkflow(BareWorkflow)
	w.RegisterWorkflow(TwinWorkflow)
	w.RegisterActivity(BareActivity)
	if err := w.Run(worker.InterruptCh()); err != nil {
		logger.Error("worker", "error", err)
		os.Exit(1)
	}
}
