package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/workflows"
)

// Defaults of the Options that bound how long a call may wait. Without them a steering
// call (an update) to a migration whose worker is gone waits for as long as the caller
// does, holding a goroutine and a Temporal long poll each time.
const (
	// DefaultCallTimeout bounds one unary call: Temporal's answer and, for steering calls,
	// the worker's. A healthy worker answers an update in milliseconds.
	DefaultCallTimeout = 30 * time.Second
	// DefaultPlanTimeout bounds a dry run: a few read-only calls, retried on throttling.
	DefaultPlanTimeout = 2 * time.Minute
)

func (o Options) callTimeout() time.Duration {
	if o.CallTimeout > 0 {
		return o.CallTimeout
	}
	return DefaultCallTimeout
}

func (o Options) planTimeout() time.Duration {
	if o.PlanTimeout > 0 {
		return o.PlanTimeout
	}
	return DefaultPlanTimeout
}

// lockWait is Options.LockWait with its default (0 = defaultLockWait, negative = none).
func (o Options) lockWait() time.Duration {
	switch {
	case o.LockWait < 0:
		return 0
	case o.LockWait == 0:
		return defaultLockWait
	}
	return o.LockWait
}

// unaryTimeout is the whole budget of one unary procedure: a plan runs a workflow, a
// start may wait for its locks on top of its Temporal calls, the rest are a call or two.
func (o Options) unaryTimeout(procedure string) time.Duration {
	switch procedure {
	case ferryv1connect.MigrationServicePlanMigrationProcedure:
		return o.planTimeout() + o.callTimeout()
	case ferryv1connect.MigrationServiceStartMigrationProcedure:
		return o.lockWait() + o.callTimeout()
	}
	return o.callTimeout()
}

// deadlineInterceptor gives every unary call a deadline (a shorter one from the client
// stands). The streaming WatchMigration runs for as long as its migration does, so its
// reads are bounded one by one instead (loadDetail).
type deadlineInterceptor struct{ opts Options }

func (d deadlineInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, cancel := context.WithTimeout(ctx, d.opts.unaryTimeout(req.Spec().Procedure))
		defer cancel()
		return next(ctx, req)
	}
}

func (deadlineInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (deadlineInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// waitError explains a call that ran out of time waiting on Temporal or a worker: the
// usual cause is no worker polling the task queue, which the caller can check.
func waitError(ctx context.Context, err error, op string) error {
	if err == nil {
		return nil
	}
	// The SDK gives up on an update a moment before the context's deadline, with its own
	// error type; either way the call ran out of time.
	var updateTimedOut *client.WorkflowUpdateServiceTimeoutOrCanceledError
	if !errors.As(err, &updateTimedOut) && !errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf(
		"%s: no answer before the call's deadline (is a worker running on task queue %s, and Temporal reachable?): %v",
		op, workflows.TaskQueue, err))
}
