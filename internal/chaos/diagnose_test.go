//go:build chaos

package chaos

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/mongosim"
	"github.com/ferryhq/ferry/workflows"
)

// diagnose prints what a rehearsal that went wrong did: its result, the audit trails of the
// move and its children, their pending work, and what the sandbox recorded for its set and
// record.
func diagnose(t *testing.T, c client.Client, r *rehearsal, sb *sandbox.Sandbox, cl *mongosim.Cluster, logDir string) {
	t.Helper()
	ctx := context.Background() // the run's own deadline may have passed
	defer func() {
		// The workers' warnings and errors about this move and its children.
		var lines []string
		logs, _ := filepath.Glob(filepath.Join(logDir, "worker-*.log"))
		for _, f := range logs {
			data, _ := os.ReadFile(f)
			for _, l := range strings.Split(string(data), "\n") {
				if strings.Contains(l, r.name+"/") || strings.Contains(l, "/"+r.set+" ") || strings.Contains(l, "/"+r.set+"\"") ||
					strings.Contains(l, "app="+r.app+" ") || strings.Contains(l, "app="+r.app+"\"") || strings.Contains(l, r.record) {
					lines = append(lines, filepath.Base(f)+": "+l)
				}
			}
		}
		if len(lines) > 60 {
			lines = append(lines[:30], append([]string{"..."}, lines[len(lines)-30:]...)...)
		}
		if len(lines) > 0 {
			t.Logf("--- worker logs about %s:\n%s", r.id, strings.Join(lines, "\n"))
		}
	}()
	var b strings.Builder
	fmt.Fprintf(&b, "=== %s (%s): %s %s\n", r.id, r.plan(), r.res.State, r.res.Message)
	if r.err != nil {
		fmt.Fprintf(&b, "error: %v\n", r.err)
	}
	ids := []string{r.id, r.id + "/plan/" + workflows.PhaseAMIShare, r.id + "/plan/" + workflows.PhaseMongoPrimaryMove, r.id + "/plan/" + workflows.PhaseDNSShift,
		workflows.AMIShareWorkflowID(source, "tags:app="+r.app), r.mongoID(), workflows.DNSShiftWorkflowID(zone, r.record, "A")}
	for _, id := range ids {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if d, err := c.DescribeWorkflowExecution(qctx, id, ""); err == nil {
			info := d.GetWorkflowExecutionInfo()
			fmt.Fprintf(&b, "--- %s run %s: %s, %d history events\n", id, info.GetExecution().GetRunId(), info.GetStatus(), info.GetHistoryLength())
			for _, pa := range d.GetPendingActivities() {
				fmt.Fprintf(&b, "  pending activity %s attempt %d state %s last failure %q\n", pa.GetActivityType().GetName(), pa.GetAttempt(), pa.GetState(), pa.GetLastFailure().GetMessage())
			}
			for _, pc := range d.GetPendingChildren() {
				fmt.Fprintf(&b, "  pending child %s (%s)\n", pc.GetWorkflowId(), pc.GetWorkflowTypeName())
			}
			if st := info.GetStatus(); *flagTrace || (st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED && st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING) {
				printHistory(ctx, &b, c, id, info.GetExecution().GetRunId(), 0)
			}
		} else {
			fmt.Fprintf(&b, "--- %s: %v\n", id, err)
		}
		if v, err := c.QueryWorkflow(qctx, id, "", workflows.QueryProgress); err == nil {
			var p workflows.Progress
			if v.Get(&p) == nil {
				fmt.Fprintf(&b, "  state %s phase %q: %s\n", p.State, p.Phase, p.Message)
				for _, ph := range p.Phases {
					fmt.Fprintf(&b, "  phase %s %s (%s) %s\n", ph.Name, ph.State, ph.MigrationID, ph.Detail)
				}
				for _, a := range p.Audit {
					fmt.Fprintf(&b, "  %s %s %s [%s] %s\n", a.Time.Format("15:04:05.000"), a.Identity, a.Action, a.Step, a.Reason)
				}
			}
		}
		cancel()
	}
	fmt.Fprintf(&b, "--- sandbox: %s members\n", r.set)
	for _, m := range cl.Members() {
		fmt.Fprintf(&b, "  %s %s up=%v inConfig=%v %s votes %d priority %g v%d\n", m.Host, m.Region, m.Up, m.InConfig, m.State, m.Votes, m.Priority, m.ConfigVersion)
	}
	for _, e := range cl.Events() {
		switch {
		case e.Reconfig != nil:
			fmt.Fprintf(&b, "  %s reconfig v%d->v%d by %s added %v removed %v changed %+v\n", e.Time.Format("15:04:05.000"), e.Reconfig.OldVersion, e.Reconfig.NewVersion, e.Reconfig.By, e.Reconfig.Added, e.Reconfig.Removed, e.Reconfig.Changed)
		case e.Election != nil:
			fmt.Fprintf(&b, "  %s election %s won by %q (%s)\n", e.Time.Format("15:04:05.000"), e.Election.Reason, e.Election.Winner, e.Message)
		default:
			fmt.Fprintf(&b, "  %s %s %s %s\n", e.Time.Format("15:04:05.000"), e.Kind, e.Member, e.Message)
		}
	}
	fmt.Fprintf(&b, "--- sandbox: batches on %s\n", r.record)
	for _, call := range sb.AWS().Calls(control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets"}) {
		if call.Params["Change.1.Name"] == r.record {
			fmt.Fprintf(&b, "  %s %s %s=%s %s=%s\n", call.Time.Format("15:04:05.000"), call.Result,
				call.Params["Change.1.SetIdentifier"], call.Params["Change.1.Weight"], call.Params["Change.2.SetIdentifier"], call.Params["Change.2.Weight"])
		}
	}
	t.Log(b.String())
}

// historyStats is what the kills and the restart cost, read from every workflow's history.
type historyStats struct {
	workflows, events int
	// retriedAfterTimeout counts activities whose last attempt followed a timeout.
	retriedAfterTimeout int
	wftTimedOut         int
	// wait is, by activity type, the time from scheduling to the start of the attempt that
	// finished (retry backoff after throttling, and timeouts after a kill).
	wait map[string]time.Duration
}

func readHistories(t *testing.T, c client.Client, rs []*rehearsal) historyStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hs := historyStats{wait: map[string]time.Duration{}}
	var execs []*workflowservice.ListWorkflowExecutionsResponse
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1000, NextPageToken: token})
		if err != nil {
			t.Errorf("list workflows: %v", err)
			return hs
		}
		execs = append(execs, resp)
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	for _, page := range execs {
		for _, ex := range page.GetExecutions() {
			hs.workflows++
			wid := ex.GetExecution().GetWorkflowId()
			var owner *rehearsal
			for _, r := range rs {
				if r.owns(wid) {
					owner = r
					if r.wait == nil {
						r.wait = map[string]time.Duration{}
					}
				}
			}
			if owner != nil && wid == owner.id && ex.GetCloseTime() != nil {
				owner.took = ex.GetCloseTime().AsTime().Sub(ex.GetStartTime().AsTime())
			}
			scheduled := map[int64]struct {
				name string
				at   time.Time
			}{}
			it := c.GetWorkflowHistory(ctx, ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				e, err := it.Next()
				if err != nil {
					t.Errorf("history of %s: %v", ex.GetExecution().GetWorkflowId(), err)
					break
				}
				hs.events++
				switch e.GetEventType() {
				case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
					scheduled[e.GetEventId()] = struct {
						name string
						at   time.Time
					}{e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName(), e.GetEventTime().AsTime()}
				case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
					a := e.GetActivityTaskStartedEventAttributes()
					sc := scheduled[a.GetScheduledEventId()]
					d := e.GetEventTime().AsTime().Sub(sc.at)
					hs.wait[sc.name] += d
					if owner != nil {
						owner.wait[sc.name] += d
					}
					if a.GetLastFailure().GetTimeoutFailureInfo() != nil {
						hs.retriedAfterTimeout++
					}
				case enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
					hs.wftTimedOut++
				}
			}
		}
	}
	types := slices.Collect(maps.Keys(hs.wait))
	slices.SortFunc(types, func(a, b string) int { return cmp.Compare(hs.wait[b], hs.wait[a]) })
	var b strings.Builder
	for _, k := range types {
		fmt.Fprintf(&b, " %s %s;", k, hs.wait[k].Round(time.Second))
	}
	t.Logf("%d workflow executions, %d history events; time from scheduled to the last attempt's start, by activity:%s", hs.workflows, hs.events, b.String())
	return hs
}

// printHistory writes a workflow's history compactly, and that of every child that did not
// complete (depth-limited), so a failure can be traced to the events behind it.
func printHistory(ctx context.Context, b *strings.Builder, c client.Client, id, runID string, depth int) {
	type child struct{ id, run string }
	var failedChildren []child
	names := map[int64]string{}
	fmt.Fprintf(b, "  history of %s (run %s):\n", id, runID)
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			fmt.Fprintf(b, "    (history: %v)\n", err)
			return
		}
		line := fmt.Sprintf("    #%d %s %s", e.GetEventId(), e.GetEventTime().AsTime().Format("15:04:05.000"), strings.TrimPrefix(e.GetEventType().String(), "EVENT_TYPE_"))
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := e.GetActivityTaskScheduledEventAttributes()
			names[e.GetEventId()] = a.GetActivityType().GetName()
			line += " " + a.GetActivityType().GetName() + fmt.Sprintf(" (start-to-close %s, heartbeat %s)", a.GetStartToCloseTimeout().AsDuration(), a.GetHeartbeatTimeout().AsDuration())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := e.GetActivityTaskStartedEventAttributes()
			line += fmt.Sprintf(" %s attempt %d", names[a.GetScheduledEventId()], a.GetAttempt())
			if f := a.GetLastFailure(); f != nil {
				line += fmt.Sprintf(" after %q", f.GetMessage())
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
			a := e.GetActivityTaskFailedEventAttributes()
			line += fmt.Sprintf(" %s: %s", names[a.GetScheduledEventId()], a.GetFailure().GetMessage())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			a := e.GetActivityTaskTimedOutEventAttributes()
			line += fmt.Sprintf(" %s: %s", names[a.GetScheduledEventId()], a.GetFailure().GetMessage())
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
			line += " " + e.GetWorkflowTaskTimedOutEventAttributes().GetTimeoutType().String()
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED:
			line += " " + e.GetWorkflowTaskFailedEventAttributes().GetFailure().GetMessage()
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
			a := e.GetStartChildWorkflowExecutionInitiatedEventAttributes()
			line += fmt.Sprintf(" %s %s (run timeout %s)", a.GetWorkflowType().GetName(), a.GetWorkflowId(), a.GetWorkflowRunTimeout().AsDuration())
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
			a := e.GetChildWorkflowExecutionFailedEventAttributes()
			line += fmt.Sprintf(" %s: %s", a.GetWorkflowExecution().GetWorkflowId(), a.GetFailure().GetMessage())
			failedChildren = append(failedChildren, child{a.GetWorkflowExecution().GetWorkflowId(), a.GetWorkflowExecution().GetRunId()})
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT:
			a := e.GetChildWorkflowExecutionTimedOutEventAttributes()
			line += " " + a.GetWorkflowExecution().GetWorkflowId()
			failedChildren = append(failedChildren, child{a.GetWorkflowExecution().GetWorkflowId(), a.GetWorkflowExecution().GetRunId()})
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
			line += " " + e.GetWorkflowExecutionFailedEventAttributes().GetFailure().GetMessage()
		}
		b.WriteString(line + "\n")
	}
	if depth < 2 {
		for _, ch := range failedChildren {
			printHistory(ctx, b, c, ch.id, ch.run, depth+1)
		}
	}
}
