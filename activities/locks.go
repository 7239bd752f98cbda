package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

// Locks reads resource locks (the lock child workflows migrations hold, see
// workflows/locks.go) from Temporal, so a refused migration can name who holds its
// resource. Workflow code cannot describe another workflow; an activity can.
type Locks struct {
	Temporal client.Client
}

// LockHolder is who holds a lock, as its lock workflow's memo records it.
type LockHolder struct {
	LockID    string
	Holder    string // the holding migration's id
	Initiator string
	Resource  string
	Since     time.Time
	// Released is set when the lock was no longer held by the time it was read.
	Released bool
}

// Describe names the holder for messages: "migration X (started by alice at T)".
func (h LockHolder) Describe() string {
	if h.Holder == "" {
		return "another migration (lock " + h.LockID + ")"
	}
	s := "migration " + h.Holder
	switch {
	case h.Initiator != "" && !h.Since.IsZero():
		s += fmt.Sprintf(" (started by %s at %s)", h.Initiator, h.Since.UTC().Format(time.RFC3339))
	case !h.Since.IsZero():
		s += " (since " + h.Since.UTC().Format(time.RFC3339) + ")"
	}
	if h.Released {
		s += ", which has just released it"
	}
	return s
}

// DescribeLock reads who holds lock workflow id.
func (l *Locks) DescribeLock(ctx context.Context, id string) (LockHolder, error) {
	return DescribeLock(ctx, l.Temporal, id)
}

// DescribeLock reads who holds lock workflow id with c (the API server uses it too).
func DescribeLock(ctx context.Context, c client.Client, id string) (LockHolder, error) {
	h := LockHolder{LockID: id}
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return h, fmt.Errorf("describe lock %s: %w", id, err)
	}
	info := d.GetWorkflowExecutionInfo()
	dc := converter.GetDefaultDataConverter()
	fields := info.GetMemo().GetFields()
	for key, dst := range map[string]*string{"holder": &h.Holder, "initiator": &h.Initiator, "resource": &h.Resource} {
		if p, ok := fields[key]; ok {
			_ = dc.FromPayload(p, dst)
		}
	}
	if h.Holder == "" {
		h.Holder = info.GetParentExecution().GetWorkflowId()
	}
	h.Since = info.GetStartTime().AsTime()
	h.Released = info.GetCloseTime() != nil
	return h, nil
}

// AwaitHolderEnd returns once the migration holder (a workflow id, whose run chain may
// continue as new) is no longer running, heartbeating meanwhile: a lock that outlives its
// holder's runs ends when the holder's chain does, however it ended.
func (l *Locks) AwaitHolderEnd(ctx context.Context, holder string) error {
	const every = 5 * time.Second
	for {
		d, err := l.Temporal.DescribeWorkflowExecution(ctx, holder, "")
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			return nil // the holder's history is gone: nothing holds the lock
		case err != nil:
			activity.RecordHeartbeat(ctx, "describe "+holder+": "+err.Error())
		default:
			switch d.GetWorkflowExecutionInfo().GetStatus() {
			case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
				// Running, or between two runs of its chain.
				activity.RecordHeartbeat(ctx, "held by "+holder)
			default:
				return nil
			}
		}
		select {
		case <-ctx.Done():
			// The lock ended (released by its holder) or this worker stops (another attempt
			// goes on watching): an error either way, never a release, but not one to log
			// as a failure each time a lock is released.
			return temporal.NewApplicationErrorWithOptions("lock watch stopped: "+ctx.Err().Error(), "LockWatchStopped",
				temporal.ApplicationErrorOptions{Category: temporal.ApplicationErrorCategoryBenign})
		case <-time.After(every):
		}
	}
}
