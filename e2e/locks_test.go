package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/workflows"
)

// Two companies' replica sets both named rs0 are two resources: their moves run at once
// and both complete, each set judged from its own simulator. On the code before, both
// moves had the workflow id mongo/rs0 (the lock was the set's name), so the second start
// was refused while the first ran.
func TestTwoReplicaSetsNamedRs0MoveAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, two simulated replica sets")
	}
	s := startStack(t)
	other := testenv.StartReplicaSet(t, "rs0")
	ours := s.mongo.Cluster("rs0")
	require.NotEqual(t, ours.ReplicaSetID(), other.ReplicaSetID(), "two sets, two replicaSetIds")

	k := workflows.KindByName(workflows.KindMongoPrimaryMove)
	first := s.kindSpec(t, workflows.KindMongoPrimaryMove).(workflows.MongoMoveSpec)
	second := first
	var source []string
	second.NewMembers = nil
	for _, m := range other.Members() {
		if m.Region == "eu-west-2" {
			second.NewMembers = append(second.NewMembers, m.Host)
		} else {
			source = append(source, m.Host)
		}
	}
	second.URI = "mongodb://" + strings.Join(source, ",") + "/?replicaSet=rs0"
	common := workflows.Common{Initiator: "alice", Approvals: workflows.ApprovalPolicy{RequiredApprovers: 1}}
	inputs := []any{k.NewInput(first, common), k.NewInput(second, common)}
	require.NotEqual(t, k.LockID(inputs[0]), k.LockID(inputs[1]))

	outs := make([]workflows.Outcome, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.runKind(t, k, inputs[i], &outs[i])
		}()
	}
	wg.Wait()
	for i := range outs {
		require.NoError(t, errs[i])
		require.Equal(t, workflows.StateCompleted, outs[i].State, outs[i].Message)
	}
	require.Equal(t, "eu-west-2", testenv.PrimaryRegion(ours), "our rs0 moved")
	require.Equal(t, "eu-west-2", testenv.PrimaryRegion(other), "the other company's rs0 moved")
}

// One replica set spelled two ways (127.0.0.1 and localhost seeds give two workflow ids)
// is still one resource: while one move holds the set's replicaSetId, the other is refused,
// naming the holder, and changes nothing.
func TestOneReplicaSetSpelledTwoWaysIsLockedOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox MongoDB")
	}
	s := startStack(t)
	k := workflows.KindByName(workflows.KindMongoPrimaryMove)
	first := s.kindSpec(t, workflows.KindMongoPrimaryMove).(workflows.MongoMoveSpec)
	second := first
	second.URI = strings.ReplaceAll(first.URI, "127.0.0.1", "localhost")
	common := workflows.Common{Initiator: "alice", Approvals: workflows.ApprovalPolicy{RequiredApprovers: 1}}
	in1, in2 := k.NewInput(first, common), k.NewInput(second, common)
	require.NotEqual(t, k.LockID(in1), k.LockID(in2), "the spellings give two workflow ids")

	// The first holds the set while it waits for its approval (no approver runs yet).
	ctx := context.Background()
	_, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: k.LockID(in1), TaskQueue: workflows.TaskQueue}, k.WorkflowName, in1)
	require.NoError(t, err)
	testenv.Eventually(t, time.Minute, "the first move holding the set", func() bool {
		p, ok := s.progress(ctx, k.LockID(in1))
		return ok && p.PendingApproval != nil
	})
	before := testenv.ReplicaSetConfig(s.mongo.Cluster("rs0").Members())

	var out workflows.Outcome
	err = s.runKind(t, k, in2, &out)
	require.True(t, workflows.HasErrorType(err, workflows.ErrResourceLocked), "%v", err)
	require.Contains(t, out.Message, k.LockID(in1), "the refusal names the holder")
	require.Equal(t, before, testenv.ReplicaSetConfig(s.mongo.Cluster("rs0").Members()), "the refused move changed nothing")
	require.NoError(t, s.c.CancelWorkflow(ctx, k.LockID(in1), ""))
}
