package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// Helpers the polling activities share. They also work outside an activity (plain tests and
// the plan path call the same code), where there is no heartbeat to record.

// sleepCtx waits d or until ctx ends (a cancelled activity or a lost heartbeat).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// recordHeartbeat heartbeats only inside an activity.
func recordHeartbeat(ctx context.Context, details ...any) {
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, details...)
	}
}

// firstAttempt reports whether this is an activity's first attempt (or not an activity at
// all): a retry follows a failure or a lost worker, so what it waits for may be done already.
func firstAttempt(ctx context.Context) bool {
	return !activity.IsActivity(ctx) || activity.GetInfo(ctx).Attempt <= 1
}
