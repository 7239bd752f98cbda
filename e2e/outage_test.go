package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/workflows"
)

// blockedWatch polls a migration's progress in the background and keeps the first message
// it shows while blocked.
type blockedWatch struct {
	mu   sync.Mutex
	seen string
	stop context.CancelFunc
	done chan struct{}
}

func (s *stack) watchBlocked(id string) *blockedWatch {
	ctx, cancel := context.WithCancel(context.Background())
	b := &blockedWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for ctx.Err() == nil {
			if p, ok := s.progress(ctx, id); ok && p.State == workflows.StateBlocked {
				b.mu.Lock()
				if b.seen == "" {
					b.seen = p.Message
				}
				b.mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return b
}

// message stops the watch and returns the blocked message seen, or "".
func (b *blockedWatch) message() string {
	b.stop()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen
}

// outageBudgets make an outage of a few seconds several retry budgets long.
var outageBudgets = &workflows.Budgets{StepAttempt: time.Second, BlockedPace: 300 * time.Millisecond, UndoAttempt: time.Second}

// A forward step whose cloud keeps failing with retryable errors for several times its
// retry budget holds the migration blocked ("... blocked: <error>, retrying since ...")
// and completes once the outage ends, with nothing undone. Before holding existed, the
// MongoDB move and the AMI share had no forward budget at all (fixed attempt counts of
// minutes) and never showed blocked: each case's blocked assertion fails there.
func TestForwardStepsHoldThroughAnOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS and MongoDB")
	}
	cases := []struct {
		name, kind string
		// fault fails the kind's mutating call with a retryable error for 4 s: four
		// StepAttempt budgets.
		fault   control.Fault
		blocked string // what the blocked message names
	}{
		{"mongo move: reconfigs fail (InternalError) for 4 budgets", workflows.KindMongoPrimaryMove,
			control.Fault{Target: "mongo:rs0:*", Kind: control.KindCommandError, Command: "replSetReconfig", Code: 1, Rate: 1, After: 1, DurationSec: 4},
			"reconfig blocked"},
		{"ami share: CopyImage answers 5xx for 4 budgets", workflows.KindAMIShare,
			control.Fault{Target: "aws:ec2:CopyImage", Kind: control.KindError, Rate: 1, DurationSec: 4},
			"blocked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := startStack(t)
			start := s.world(t)
			k := workflows.KindByName(c.kind)
			in := k.NewInput(s.kindSpec(t, c.kind), workflows.Common{Name: c.name, Initiator: "alice",
				Approvals: workflows.ApprovalPolicy{RequiredApprovers: 1}, Budgets: outageBudgets})
			_, err := s.sb.Faults().Add(c.fault)
			require.NoError(t, err)
			watch := s.watchBlocked(k.LockID(in))
			var out workflows.Outcome
			require.NoError(t, s.runKind(t, k, in, &out))
			blocked := watch.message()
			require.Equal(t, workflows.StateCompleted, out.State, out.Message)
			require.Contains(t, blocked, c.blocked, "the run showed itself blocked during the outage")
			require.True(t, strings.Contains(blocked, "retrying since"), blocked)

			// Judged from the sandbox: the move happened, once.
			end := s.world(t)
			switch c.kind {
			case workflows.KindMongoPrimaryMove:
				require.Equal(t, "eu-west-2", end.primary)
				require.Len(t, end.config, len(start.config)+3)
			case workflows.KindAMIShare:
				require.Equal(t, start.images+2, end.images, "each image copied once")
			}
		})
	}
}
