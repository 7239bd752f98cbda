// Package worker builds a ferry worker: it registers every workflow and activity on the one
// task queue, with the cloud clients the activities need. Workers hold no state, so running
// more of them on the same task queue is how ferry scales.
package worker

import (
	"context"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
	"github.com/ferryhq/ferry/proof"
	"github.com/ferryhq/ferry/sandbox/gameday"
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
	// TrustedKeys are the public keys of the API's signing keys: workflows accept approvals,
	// resumes and starts only with a proof signed by one of them (workflows/steer_trust.go).
	// Empty checks nothing (tests that drive Temporal directly); `ferry worker` refuses to
	// run that way unless told to.
	TrustedKeys proof.Keys
}

// Worker is a Temporal worker with ferry's registrations; stopping it also closes the
// connections its activities hold (MongoDB client pools).
type Worker struct {
	sdkworker.Worker
	mongo *activities.Mongo
}

// Run runs the worker until interruptCh delivers, then stops it.
func (w *Worker) Run(interruptCh <-chan any) error {
	defer w.mongo.Close()
	return w.Worker.Run(interruptCh)
}

// Stop stops polling, waits for running tasks, and closes the activities' connections.
func (w *Worker) Stop() {
	w.Worker.Stop()
	w.mongo.Close()
}

// New returns a worker with every ferry workflow and activity registered. Start it with Run
// or Start.
func New(ctx context.Context, c client.Client, o Options) (*Worker, error) {
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
		Interceptors:                           []interceptor.WorkerInterceptor{workflows.TrustInterceptor(o.TrustedKeys)},
	})
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mongo := activities.NewMongo(logger.With("component", "mongo"))
	register(w, o, clients, mongo, c)
	return &Worker{Worker: w, mongo: mongo}, nil
}

// register is the one list of what a ferry worker runs: every kind's workflows under the
// stable names its descriptor gives (a renamed Go function must not rename a workflow type
// that running histories name), and the activities the kinds call.
func register(w sdkworker.Registry, o Options, c *cloudClients, mongo *activities.Mongo, tc client.Client) {
	w.RegisterWorkflowWithOptions(workflows.Ping, workflow.RegisterOptions{Name: "Ping"})
	w.RegisterActivity(&activities.Ping{Identity: o.Identity})
	for _, k := range workflows.Kinds() {
		w.RegisterWorkflowWithOptions(k.Workflow, workflow.RegisterOptions{Name: k.WorkflowName})
		w.RegisterWorkflowWithOptions(k.Plan, workflow.RegisterOptions{Name: k.PlanName})
	}
	w.RegisterActivity(&activities.Route53{Client: c.route53})
	w.RegisterActivity(&activities.Gates{HTTP: c.http, Route53: c.route53, CloudWatch: c.cloudwatch})
	w.RegisterActivity(&activities.EC2{Client: c.ec2})
	w.RegisterActivity(mongo)
	w.RegisterActivity(&activities.MySQL{})
	w.RegisterActivity(&activities.Rabbit{})
	// GameDays: the game and what it asks of the sandbox (the worker's --aws-endpoint).
	w.RegisterWorkflowWithOptions(workflows.GameDay, workflow.RegisterOptions{Name: workflows.GameDayWorkflowName})
	w.RegisterActivity(&gameday.Activities{Sandbox: o.Cloud.AWSEndpoint, HTTP: c.http, Temporal: tc})
	// Resource locks: the lock child, and reading who holds one for a refusal's message.
	workflows.RegisterLock(w)
	w.RegisterActivity(&activities.Locks{Temporal: tc})
}
