package e2e

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tlog "go.temporal.io/sdk/log"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/workflows"
)

// TestUpgradeUnderRunningMigrations proves the versioning rule of docs/design.md ("Temporal
// use"): a change to workflow code that alters the commands a running history would produce
// goes behind workflow.GetVersion, and runs recorded before it take the old branch.
//
// It builds ferry twice, as a team would across a release: build A from the working tree,
// build B from a copy with one change to the MongoDB primary move (testdata/upgrade/): after
// every forward reconfig, one more activity (a verify read of the set) and a new timer (a
// settle wait), both under one change id. Then:
//
//   - B replays every committed history (workflows/testdata); the same change without
//     GetVersion does not: the MongoDB move's histories fail with the SDK's nondeterminism
//     error, and only they.
//   - Against one Temporal server and sandbox, worker process A starts two primary moves
//     and brings them past the changed code: one waits at its approval gate, one was approved
//     and then paused. A is SIGKILLed and worker B takes over; the held move is approved and
//     the paused one resumed, and both complete on the old path (no verify read, no marker),
//     judged from the simulator's own primary, config and reconfig record. A move started
//     on B runs B's code: its history has the version marker and the verify reads.
//
// With a warm build cache it takes 1 to 1.7 minutes on 2 shared cores, most of it building:
// each copy of the tree recompiles ferry's own packages, since their directory is part of
// the build cache's key (the three moves take about 20 s).
func TestUpgradeUnderRunningMigrations(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ferry twice and runs worker processes against the embedded stack")
	}
	began := time.Now()
	goBin, gitBin := upgradeTools(t)
	root := upgradeRepoRoot(t, goBin)
	dir := t.TempDir()

	ferryA := filepath.Join(dir, "ferry-a")
	upgradeBuild(t, goBin, root, ferryA, "build A (the working tree)")
	treeB := filepath.Join(dir, "b")
	upgradeCopyTree(t, gitBin, root, treeB)
	upgradeApplyChange(t, treeB, upgradeGuarded)
	ferryB := filepath.Join(dir, "ferry-b")
	upgradeBuild(t, goBin, treeB, ferryB, "build B (a copy with the change under GetVersion)")

	t.Run("B replays the committed histories", func(t *testing.T) {
		out, ok := upgradeReplayHistories(t, goBin, treeB)
		require.True(t, ok, "the change under GetVersion must replay every committed history:\n%s", out)
	})
	t.Run("without GetVersion the committed histories fail", func(t *testing.T) {
		treeC := filepath.Join(dir, "c")
		upgradeCopyTree(t, gitBin, root, treeC)
		upgradeApplyChange(t, treeC, upgradeUnguarded)
		out, ok := upgradeReplayHistories(t, goBin, treeC)
		require.False(t, ok, "the change without GetVersion replayed every committed history: "+
			"TestReplayHistories no longer catches a change that breaks running migrations\n%s", out)
		// TMPRL1100 is the SDK's code for a nondeterminism error; its text varies with where
		// the replayed commands part from the history.
		require.Contains(t, out, "[TMPRL1100]", "the replay fails on nondeterminism, not on something else:\n%s", out)
		failed := upgradeFailedReplays(out)
		require.NotEmpty(t, failed, "no history named as failed:\n%s", out)
		mongo := workflows.KindByName(workflows.KindMongoPrimaryMove).WorkflowName
		for file, typ := range failed {
			require.Equal(t, mongo, typ, "only the changed kind's histories fail, but %s did too:\n%s", file, out)
		}
		t.Logf("without GetVersion %d committed %s histories fail to replay with [TMPRL1100]", len(failed), mongo)
	})
	t.Run("migrations started on A finish on B", func(t *testing.T) {
		upgradeWorkers(t, ferryA, ferryB)
	})
	t.Logf("the upgrade test took %s in all, builds included", time.Since(began).Round(time.Second))
}

// The three moves: two started on A, one on B; each has a replica set of its own (a move
// locks its set).
const (
	upgradeHeld   = "held"   // started on A, waits at its approval gate while A dies
	upgradePaused = "paused" // started on A, approved and paused before the primary moves
	upgradeFresh  = "fresh"  // started on B
)

// upgradeWantShape is where every move ends, in the simulator: the preferred eu-west-2
// member on top, and five voters (the planner keeps their number odd, so the last eu-west-2
// member joins without a vote); the spec's default priorities.
var upgradeWantShape = map[string]string{
	"eu-west-1#0": "votes 1 priority 0.5 region eu-west-1",
	"eu-west-1#1": "votes 1 priority 0 region eu-west-1",
	"eu-west-1#2": "votes 1 priority 0 region eu-west-1",
	"eu-west-2#0": "votes 1 priority 2 region eu-west-2",
	"eu-west-2#1": "votes 1 priority 1 region eu-west-2",
	"eu-west-2#2": "votes 0 priority 0 region eu-west-2",
}

func upgradeWorkers(t *testing.T, ferryA, ferryB string) {
	began := time.Now()
	e := startUpgradeEnv(t, []string{upgradeHeld, upgradePaused, upgradeFresh})
	onA := []string{upgradeHeld, upgradePaused}
	ids := map[string]string{}

	a := e.startWorker(t, "worker-a", ferryA)
	for _, set := range onA {
		ids[set] = e.start(t, set)
	}
	for _, set := range onA {
		e.awaitState(t, ids[set], ferryv1.MigrationState_MIGRATION_STATE_AWAITING_APPROVAL, 2*time.Minute)
	}
	// Paused while it waits, then approved: the gate closes and the move stops before its
	// next step (the priority reconfigs), so B runs those steps of a history A began.
	e.pause(t, ids[upgradePaused])
	e.approve(t, ids[upgradePaused])
	e.awaitState(t, ids[upgradePaused], ferryv1.MigrationState_MIGRATION_STATE_PAUSED, time.Minute)
	for _, set := range onA {
		e.requirePastTheChange(t, set, ids[set], a)
	}
	a.kill()
	t.Logf("worker A SIGKILLed %s after the environment started: %s at its approval gate, %s paused after it",
		time.Since(began).Round(100*time.Millisecond), ids[upgradeHeld], ids[upgradePaused])

	b := e.startWorker(t, "worker-b", ferryB)
	e.approve(t, ids[upgradeHeld])
	e.resume(t, ids[upgradePaused])
	ids[upgradeFresh] = e.start(t, upgradeFresh)
	e.awaitState(t, ids[upgradeFresh], ferryv1.MigrationState_MIGRATION_STATE_AWAITING_APPROVAL, 2*time.Minute)
	e.approve(t, ids[upgradeFresh])

	reconfigs := map[string]int{}
	for _, set := range []string{upgradeHeld, upgradePaused, upgradeFresh} {
		reconfigs[set] = e.requireCompleted(t, set, ids[set])
	}
	t.Logf("all three moves completed %s after the environment started", time.Since(began).Round(100*time.Millisecond))

	// Started on A: recorded by A, finished by B on the old path, so A's code (this test
	// binary's) replays the whole history.
	for _, set := range onA {
		id := ids[set]
		h := e.history(t, id)
		requireRecordedBy(t, id, h, a, b)
		require.Zero(t, h.markers[upgradeChangeID], "%s: a run recorded before the change gets no version marker", id)
		require.Zero(t, h.verifyReads, "%s: no verify read", id)
		require.Zero(t, h.settleTimers, "%s: no settle timer", id)
		require.NoError(t, e.replayWithThisCode(id, testenv.QuietLogger()), "%s: B did not continue it as A would have", id)
	}
	// Started on B: B's code, one verify read and one settle timer per forward reconfig.
	id := ids[upgradeFresh]
	h := e.history(t, id)
	requireRecordedBy(t, id, h, b)
	require.Equal(t, 1, h.markers[upgradeChangeID], "%s: one version marker for the change", id)
	require.Equal(t, reconfigs[upgradeFresh], h.verifyReads, "%s: a verify read per reconfig", id)
	require.Equal(t, reconfigs[upgradeFresh], h.settleTimers, "%s: a settle timer per reconfig", id)
	// The rule works one way: going back to A while B's runs are open would break them. (The
	// replay's panic is expected here, so its log is discarded.)
	err := e.replayWithThisCode(id, tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	require.ErrorContains(t, err, "[TMPRL1100]", "%s: A's code replayed a history with B's verify reads", id)
}

// requirePastTheChange checks, before A dies, that A brought the move past the changed code:
// the reconfigs before the approval gate applied (the simulator counts them), the primary
// still in eu-west-1, and every workflow task so far completed by A, with no version marker.
func (e *upgradeEnv) requirePastTheChange(t *testing.T, set, id string, a *upgradeWorker) {
	t.Helper()
	m := e.get(t, id)
	c := e.mongo.Cluster(set)
	n, _ := upgradeReconfigs(c)
	require.Positive(t, m.GetMongoMove().GetReconfigsApplied(), "%s: no reconfig before the gate", id)
	require.EqualValues(t, n, m.GetMongoMove().GetReconfigsApplied(), "%s: reconfigs applied, the simulator's count and ferry's", id)
	require.Equal(t, "eu-west-1", testenv.PrimaryRegion(c), "%s: the primary moved before the approval", id)
	h := e.history(t, id)
	requireRecordedBy(t, id, h, a)
	require.Zero(t, h.markers[upgradeChangeID], "%s: A recorded the change's version marker", id)
}

// requireCompleted waits for the move of set to end and judges it: the workflow's own
// result, the API's state, and the simulator's primary, config and record of reconfigs
// (every planned reconfig applied exactly once, none changing more than one vote). It
// returns the number of reconfigs.
func (e *upgradeEnv) requireCompleted(t *testing.T, set, id string) int {
	t.Helper()
	res := e.result(t, id)
	require.Equal(t, workflows.StateCompleted, res.State, "%s: %s", id, res.Message)
	m := e.get(t, id)
	require.Equal(t, ferryv1.MigrationState_MIGRATION_STATE_COMPLETED, m.GetState(), "%s: %s", id, m.GetMessage())

	c := e.mongo.Cluster(set)
	_, target := e.upgradeHosts(set)
	require.Equal(t, target[0], c.Primary(), "%s: the simulator's primary is the preferred eu-west-2 member", id)
	require.Equal(t, c.Primary(), res.Primary, "%s: the result names the simulator's primary", id)
	require.Equal(t, upgradeWantShape, upgradeConfigShape(c.Members()), "%s: the simulator's config", id)
	n, maxVoting := upgradeReconfigs(c)
	require.EqualValues(t, m.GetMongoMove().GetReconfigsPlanned(), n, "%s: reconfigs planned and accepted by the simulator", id)
	require.EqualValues(t, m.GetMongoMove().GetReconfigsApplied(), n, "%s: reconfigs ferry applied and the simulator accepted", id)
	require.LessOrEqual(t, maxVoting, 1, "%s: a reconfig changed more than one vote", id)
	t.Logf("%s: %s (%d reconfigs)", id, res.Message, n)
	return n
}
