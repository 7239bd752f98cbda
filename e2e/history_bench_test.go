package e2e

import (
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/workflows"
)

// BenchmarkHistoryEvents measures what a held DNS shift costs in history events, before and
// after local gate checks, from the server's stored histories: a beat (one gate check
// while the shift dwells or holds) in a history recorded by the code before the change
// (workflows/testdata, recorded on the embedded server) and in one recorded now, and from
// those the events per held hour at the default 30 s hold beat and per DNS shift.
func BenchmarkHistoryEvents(b *testing.B) {
	before := beatEvents(b, readCommitted(b, "dns-shift-pause-resume-completed.json.gz"))
	s := startStack(b)
	ctx := context.Background()
	// The marketplace spec's DNS shift (50% then 100%), dwelling 2 s with gates every
	// 200 ms (10 beats a step), approval after the 50% step held for 20 beats at 100 ms.
	k, in := s.dnsAlone(b, "www bench", 2*time.Second, &workflows.Budgets{HoldBeat: 100 * time.Millisecond})
	in.Spec.GateInterval = 200 * time.Millisecond
	in.Spec.ApproveAfter[0] = true
	id := k.LockID(in)
	wr, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, k.WorkflowName, in)
	require.NoError(b, err)
	testenv.Eventually(b, time.Minute, "awaiting approval", func() bool {
		p, ok := s.progress(ctx, id)
		return ok && p.State == workflows.StateAwaitingApproval
	})
	time.Sleep(2 * time.Second)
	_, err = s.act(ctx, id, workflows.UpdateApprove, "bob")
	require.NoError(b, err)
	require.NoError(b, wr.Get(ctx, nil))
	hist := storedHistory(b, s, id, wr.GetRunID())
	after := beatEvents(b, hist)

	const beatsPerHour = 3600 / 30 // the default hold beat
	testenv.BenchInfo(b, "events per gate beat, before (activity; committed history)", fmt.Sprint(before))
	testenv.BenchInfo(b, "events per gate beat, after (local activity; recorded now)", fmt.Sprint(after))
	testenv.BenchRow(b, "history events per held hour at the 30 s beat, before -> after",
		fmt.Sprintf("%d -> %d", before*beatsPerHour, after*beatsPerHour), "fewer, and bounded by continue-as-new", after < before)
	testenv.BenchInfo(b, "hours held until Temporal's 51,200-event limit, before -> after",
		fmt.Sprintf("%.0f -> unbounded (a run continues as new at the server's 4,096-event suggestion, every %.1f h held)",
			51200/float64(before*beatsPerHour), 4096/float64(after*beatsPerHour)))
	// A whole shift: what it cost now, and what the same beats cost before.
	beats := countBeats(hist)
	total := len(hist.GetEvents())
	testenv.BenchRow(b, fmt.Sprintf("history events per DNS shift (2 steps, %d gate beats), before -> after", beats),
		fmt.Sprintf("%d -> %d (before: the same run with %d events a beat)", total+beats*(before-after), total, before),
		"fewer", after < before)
}

// readCommitted reads a committed history of workflows/testdata.
func readCommitted(b *testing.B, name string) *historypb.History {
	b.Helper()
	f, err := os.Open(filepath.Join("..", "workflows", "testdata", name))
	require.NoError(b, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(b, err)
	hist, err := client.HistoryFromJSON(zr, client.HistoryJSONOptions{})
	require.NoError(b, err)
	return hist
}

// storedHistory reads a run's history from the server.
func storedHistory(b *testing.B, s *stack, id, runID string) *historypb.History {
	b.Helper()
	var h historypb.History
	it := s.c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(b, err)
		h.Events = append(h.Events, e)
	}
	return &h
}

// beatEvents is what one gate beat costs: from its timer's start to the gate result
// recorded (an activity's completion and the workflow task that reads it, or a local
// activity's marker), the fewest over the history's beats.
func beatEvents(b *testing.B, h *historypb.History) int {
	b.Helper()
	best := 0
	events := h.GetEvents()
	for i, e := range events {
		if e.GetEventType() != enumspb.EVENT_TYPE_TIMER_STARTED {
			continue
		}
		if n := beatFrom(events[i:]); n > 0 && (best == 0 || n < best) {
			best = n
		}
	}
	require.NotZero(b, best, "no gate beat in the history")
	return best
}

// beatFrom counts the events of the beat whose timer starts events[0], or 0 when no gate
// result follows before another timer.
func beatFrom(events []*historypb.HistoryEvent) int {
	gateActivity := int64(0)
	for j, e := range events[1:] {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			return 0
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			if e.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity" {
				return j + 2
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "EvaluateGates" {
				gateActivity = e.GetEventId()
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			if gateActivity != 0 && events[j].GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED &&
				j >= 2 && events[j-1].GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED &&
				events[j-2].GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED {
				return j + 2
			}
		}
	}
	return 0
}

// countBeats counts the gate beats of a history.
func countBeats(h *historypb.History) int {
	n := 0
	for i, e := range h.GetEvents() {
		if e.GetEventType() == enumspb.EVENT_TYPE_TIMER_STARTED && beatFrom(h.GetEvents()[i:]) > 0 {
			n++
		}
	}
	return n
}
