package workflows_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/workflows"
)

// TestReplayHistories replays every recorded history in testdata/ (the JSON `temporal
// workflow show --output json` writes, as it is or gzipped; TestRecordKindHistories and
// TestRecordDNSShiftHistories record them) against the current code. A migration may run
// for days and outlive the worker that started it, so a change that would make a running
// history take another path (an activity, timer or child added, removed or reordered, a
// plan hash computed differently) fails here; it needs workflow.GetVersion for the old path.
//
// Workflows are registered as ferry's worker registers them, under the names in their
// descriptors (a history names a workflow type, not a Go function), with the lock child.
// Every kind's workflow, its plan and the lock must have a history here, so a kind added to
// workflows.Kinds() without recorded histories fails too.
func TestReplayHistories(t *testing.T) {
	entries, err := os.ReadDir("testdata")
	require.NoError(t, err)
	r := worker.NewWorkflowReplayer()
	want := []string{workflows.LockWorkflowName}
	for _, k := range workflows.Kinds() {
		r.RegisterWorkflowWithOptions(k.Workflow, workflow.RegisterOptions{Name: k.WorkflowName})
		r.RegisterWorkflowWithOptions(k.Plan, workflow.RegisterOptions{Name: k.PlanName})
		want = append(want, k.WorkflowName, k.PlanName)
	}
	workflows.RegisterLock(r)
	r.RegisterWorkflowWithOptions(workflows.GameDay, workflow.RegisterOptions{Name: workflows.GameDayWorkflowName})
	want = append(want, workflows.GameDayWorkflowName)

	have := map[string]int{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		path := filepath.Join("testdata", e.Name())
		hist, exec := readHistory(t, path)
		typ := hist.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
		have[typ]++
		t.Run(e.Name(), func(t *testing.T) {
			require.NoError(t, r.ReplayWorkflowHistoryWithOptions(testenv.QuietLogger(), hist,
				worker.ReplayWorkflowHistoryOptions{OriginalExecution: exec}),
				"%s (workflow type %s) no longer replays: nondeterminism. Today's code issues other commands than this recorded run "+
					"(an activity, timer or child added, removed or reordered); runs in flight would fail their workflow tasks for good. "+
					"Put the change behind workflow.GetVersion and keep the old path (docs/design.md, Versioning)", path, typ)
		})
	}
	for _, name := range want {
		require.NotZero(t, have[name], "no history of workflow type %s in testdata/: record one (FERRY_RECORD_HISTORY=1)", name)
	}
}

// readHistory reads one history file, JSON or gzipped JSON: every file in testdata/ must
// be one, so nothing there goes unreplayed by accident. A history does not name its own
// workflow execution, and workflows that build ids from their own (the region move's plan
// children) replay differently under the replayer's default; so the recorder writes the
// id and run id next to the events ("workflowId", "runId", which other readers of the
// file ignore) and the replay runs under them. Files without them replay under the default.
func readHistory(t *testing.T, path string) (*historypb.History, workflow.Execution) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var in io.Reader = f
	switch {
	case strings.HasSuffix(path, ".json.gz"):
		zr, err := gzip.NewReader(f)
		require.NoError(t, err, path)
		defer zr.Close()
		in = zr
	case !strings.HasSuffix(path, ".json"):
		t.Fatalf("%s: testdata/ holds workflow histories only (.json or .json.gz)", path)
	}
	b, err := io.ReadAll(in)
	require.NoError(t, err, path)
	hist, err := client.HistoryFromJSON(bytes.NewReader(b), client.HistoryJSONOptions{})
	require.NoError(t, err, "%s is not a workflow history", path)
	require.NotEmpty(t, hist.GetEvents(), "%s has no events", path)
	require.NotNil(t, hist.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes(), "%s does not begin with the workflow's start", path)
	var exec struct {
		WorkflowID string `json:"workflowId"`
		RunID      string `json:"runId"`
	}
	require.NoError(t, json.Unmarshal(b, &exec), path)
	return hist, workflow.Execution{ID: exec.WorkflowID, RunID: exec.RunID}
}
