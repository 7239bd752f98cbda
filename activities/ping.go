// Package activities holds every side effect ferry performs. Activities are methods on structs
// holding injected clients; workflows call them through nil struct pointers, so the
// workflows package never touches a client. Inputs and outputs are defined here (not in
// package workflows) because workflows import this package, never the reverse.
package activities

import (
	"context"
)

// Ping is a trivial activity that proves a worker executes work, and which one did.
type Ping struct {
	// Identity of the worker process, reported back to the caller.
	Identity string
}

// EchoInput is the Echo activity's input.
type EchoInput struct {
	Message string
}

// EchoOutput is the Echo activity's output.
type EchoOutput struct {
	Message string
	Worker  string
}

// Echo returns the message and the worker's identity.
func (p *Ping) Echo(_ context.Context, in EchoInput) (EchoOutput, error) {
	return EchoOutput{Message: in.Message, Worker: p.Identity}, nil
}
