// Package worker builds a ferry worker: it registers every workflow and activity on the one
// task queue, with the cloud clients the activities need. Workers hold no state, so running
// more of them on the same task queue is how ferry scales.
package worker

import (
	"context"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/ferryhq/ferry/activities"
	"github.com/ferryhq/ferry/workflows"
)

// Options configures a worker.
type Options struct {
	// TaskQueue to poll. Default workflows.TaskQueue.
	TaskQueue string
	// Identity shown in the Temporal UI for the tasks this worker runs.
	Identity string
	// MaxConcurrentActivities bounds activities executing at once (0: SDK default, 1000).
	MaxConcurrentActivities int
	// MaxConcurrentWorkflowTasks bounds workflow tasks executing at once (0: SDK default).
	MaxConcurrentWorkflowTasks int
	// Cloud holds the endpoints and credentials activities use.
	Cloud  CloudOptions
	Logger *slog.Logger
}

// New returns a worker with every ferry workflow and activity registered. Start it with Run
// or Start.
func New(ctx context.Context, c client.Client, o Options) (sdkworker.Worker, error) {
	if o.TaskQueue == "" {
		o.TaskQueue = workflows.TaskQueue
	}
	clients, err := newCloudClients(ctx, o.Cloud)
	if err != nil {
		return nil, fmt.Errorf("build cloud clients: %w", err)
	}
	w := sdkworker.New(c, o.TaskQueue, sdkworker.Options{
		Identity:                               o.Identity,
		MaxConcurrentActivityExecutionSize:     o.MaxConcurrentActivities,
		MaxConcurrentWorkflowTaskExecutionSize: o.MaxConcurrentWorkflowTasks,
	})
	register(w, o, clients)
	return w, nil
}

// register is the one list of what a ferry worker runs.
func register(w sdkworker.Registry, o Options, c *cloudClients) {
	w.RegisterWorkflow(workflows.Ping)
	w.RegisterActivity(&activities.Ping{Identity: o.Identity})

	w.RegisterWorkflow(workflows.DNSShift)
	w.RegisterWorkflow(workflows.PlanDNSShift)
	w.RegisterActivity(&activities.Route53{Client: c.route53})
	w.RegisterActivity(&activities.Gates{HTTP: c.http, Route53: c.route53, CloudWatch: c.cloudwatch, SandboxURL: c.sandboxURL})

	w.RegisterWorkflow(workflows.AMIShare)
	w.RegisterWorkflow(workflows.PlanAMIShare)
	w.RegisterActivity(&activities.EC2{Client: c.ec2})
}
