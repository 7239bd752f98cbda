package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// Ping runs one activity and returns which worker ran it. `ferry dev --smoke` and the
// integration tests use it to prove that the stack executes work end to end.
func Ping(ctx workflow.Context, in PingInput) (PingResult, error) {
	var a *activities.Ping
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
		Summary:             "echo " + in.Message,
	})
	var out activities.EchoOutput
	if err := workflow.ExecuteActivity(ctx, a.Echo, activities.EchoInput{Message: in.Message}).Get(ctx, &out); err != nil {
		return PingResult{}, err
	}
	return PingResult{Message: out.Message, Worker: out.Worker}, nil
}
