package testenv

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
)

// SaveHistory writes the stored history of run runID of workflow id to path (a .json.gz
// that workflows' TestReplayHistories replays): the JSON `temporal workflow show --output
// json` writes, with the execution next to the events (a history does not name it, and a
// workflow that builds ids from its own replays only under it), gzipped without name or
// time so the same history gives the same bytes.
func SaveHistory(t testing.TB, c client.Client, id, runID, path string) {
	t.Helper()
	ctx := context.Background()
	var hist historypb.History
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("read history of %s/%s: %v", id, runID, err)
		}
		hist.Events = append(hist.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(&hist)
	if err != nil {
		t.Fatalf("encode history: %v", err)
	}
	head, err := json.Marshal(struct {
		WorkflowID string `json:"workflowId"`
		RunID      string `json:"runId"`
	}{id, runID})
	if err != nil {
		t.Fatalf("encode execution: %v", err)
	}
	b = append(append(head[:len(head)-1], ','), b[1:]...)
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err == nil {
		_, err = zw.Write(b)
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o755)
	}
	if err == nil {
		err = os.WriteFile(path, gz.Bytes(), 0o644)
	}
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	t.Logf("recorded %s: %d events, %d KB of JSON, %d KB gzipped", path, len(hist.Events), len(b)/1024, gz.Len()/1024)
}
