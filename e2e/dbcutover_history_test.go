package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// TestRecordDBCutoverHistories records the database cutover's histories into
// workflows/testdata (replayed there by TestReplayHistories on every run): a plan, a
// completed cutover and one whose catch-up timed out and was undone. They need real
// MariaDB servers, so they are recorded here rather than in package workflows. Rerun
// (FERRY_RECORD_HISTORY=1) only when a change is meant to break replay.
func TestRecordDBCutoverHistories(t *testing.T) {
	if os.Getenv("FERRY_RECORD_HISTORY") == "" {
		t.Skip("set FERRY_RECORD_HISTORY=1 to record workflows/testdata histories")
	}
	dir := filepath.Join("..", "workflows", "testdata")
	save := func(w *dbWorld, id, name string) {
		d, err := w.Client.DescribeWorkflowExecution(w.ctx, id, "")
		require.NoError(t, err)
		testenv.SaveHistory(t, w.Client, id, d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), filepath.Join(dir, name))
	}
	t.Run("plan and completed", func(t *testing.T) {
		w := startDBWorld(t)
		w.startWriter(t)
		k, in, err := spec.Input(w.parse(t, w.specYAML()), "alice", "")
		require.NoError(t, err)
		run, err := w.Client.ExecuteWorkflow(w.ctx, client.StartWorkflowOptions{ID: "plan/" + k.LockID(in), TaskQueue: workflows.TaskQueue}, k.PlanName, k.PlanInput(in))
		require.NoError(t, err)
		var plan workflows.Plan
		require.NoError(t, run.Get(w.ctx, &plan))
		save(w, run.GetID(), "plan-database-cutover.json.gz")
		id := w.start(t, w.specYAML())
		_, err = w.wait(t, id)
		require.NoError(t, err)
		save(w, id, "database-cutover-completed.json.gz")
	})
	t.Run("catch-up timeout undone", func(t *testing.T) {
		w := startDBWorld(t)
		w.startWriter(t)
		w.delayTarget(t, 20e9)
		id := w.start(t, w.specYAML("maxLag: 1h", "catchUpTimeout: 500ms"))
		_, err := w.wait(t, id)
		require.NoError(t, err)
		save(w, id, "database-cutover-failed-undone.json.gz")
	})
}
