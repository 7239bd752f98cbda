// Command bareworker is the baseline of BenchmarkThroughput: a Temporal worker process with
// default options that runs workflows of N no-op activities, so the benchmark compares ferry's
// worker process with a bare SDK worker process under the same conditions (own process, own
// runtime and GC, gRPC over loopback). It lives under testdata so `./...` never builds it;
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
	w.RegisterActivity(BareActivity)
	if err := w.Run(worker.InterruptCh()); err != nil {
		logger.Error("worker", "error", err)
		os.Exit(1)
	}
}
