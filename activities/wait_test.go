package activities

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// blockingCall stands for a call the server holds open (a reconfig waiting to commit).
func blockingCall(ctx context.Context, d time.Duration) error {
	defer keepAlive(ctx, "waiting")()
	return sleepCtx(ctx, d)
}

func TestKeepAliveBeatsWhileACallBlocks(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(blockingCall)
	var beats atomic.Int32
	env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) { beats.Add(1) })
	env.ExecuteWorkflow(func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, HeartbeatTimeout: 300 * time.Millisecond})
		return workflow.ExecuteActivity(ctx, blockingCall, 900*time.Millisecond).Get(ctx, nil)
	})
	require.NoError(t, env.GetWorkflowError())
	// Beats every 100ms for 900ms, which the SDK sends at most every 0.8 x the timeout;
	// and nothing after the call returned.
	n := beats.Load()
	require.GreaterOrEqual(t, n, int32(2), "heartbeats while blocked")
	time.Sleep(250 * time.Millisecond)
	require.Equal(t, n, beats.Load(), "no heartbeat after the call returned")

	// Without a heartbeat timeout nothing beats.
	env = ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(blockingCall)
	beats.Store(0)
	env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) { beats.Add(1) })
	env.ExecuteWorkflow(func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
		return workflow.ExecuteActivity(ctx, blockingCall, 200*time.Millisecond).Get(ctx, nil)
	})
	require.NoError(t, env.GetWorkflowError())
	require.Zero(t, beats.Load())
}
