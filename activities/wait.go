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

// keepAlive heartbeats for an activity that blocks in a call the server itself holds open
// (a reconfig waiting for its config to commit, a step-down waiting for a secondary to catch
// up, a driver looking for a reachable member), so the heartbeat timeout, not the call's own
// bound of a minute or more, is how long a worker that died mid-call keeps the step. It
// beats at a third of the heartbeat timeout until the returned stop is called; without a
// heartbeat timeout it does nothing.
func keepAlive(ctx context.Context, details ...any) (stop func()) {
	if !activity.IsActivity(ctx) || activity.GetInfo(ctx).HeartbeatTimeout <= 0 {
		return func() {}
	}
	every := activity.GetInfo(ctx).HeartbeatTimeout / 3
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, details...)
			}
		}
	}()
	return func() { close(done) }
}
