package worker_test

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/worker"
	"github.com/ferryhq/ferry/workflows"
)

// TestWorkerRunsWorkflowOnEmbeddedTemporal boots the embedded Temporal in-process and runs
// a real workflow to completion through a ferry worker.
func TestWorkerRunsWorkflowOnEmbeddedTemporal(t *testing.T) {
	if testing.Short() {
		t.Skip("boots an embedded Temporal")
	}
	_, c := testenv.Temporal(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	w, err := worker.New(ctx, c, worker.Options{Identity: "test-worker"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "ping-test", TaskQueue: workflows.TaskQueue}, workflows.Ping, workflows.PingInput{Message: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.PingResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.Message != "hello" || res.Worker != "test-worker" {
		t.Fatalf("ping = %+v, want message hello from test-worker", res)
	}
}
