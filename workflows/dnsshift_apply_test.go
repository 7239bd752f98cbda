package workflows

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/ferryhq/ferry/activities"
)

// driftAt refuses the call-th batch as Route 53 would when someone changed eu-west-2's TTL
// and value since ferry read it, and makes the harness's Route 53 (its preflight) show that
// edit from then on.
func driftAt(h *harness, call int) {
	h.refuse = func(in activities.ChangeWeightsInput, n int) error {
		if n != call {
			return nil
		}
		edited := in.To
		edited.TTL, edited.Values = 300, []string{"203.0.113.20"}
		h.obs.From, h.obs.To = in.From, edited
		return temporal.NewNonRetryableApplicationError(
			"www.shop.example. A eu-west-2: TTL 30 -> 300, values 10.2.0.10 -> 203.0.113.20 (changed outside ferry)",
			activities.ErrRecordDrifted, nil, activities.Drift{ZoneID: in.ZoneID, From: in.From, To: edited})
	}
}

func hasAudit(p Progress, action, reasonPart string) bool {
	return slices.ContainsFunc(p.Audit, func(e AuditEntry) bool {
		return e.Action == action && strings.Contains(e.Reason, reasonPart)
	})
}

// A batch refused as drifted pauses the shift with the drift in its message and audit;
// resumed, it reads the record sets again and goes on from them (their TTL and value), with
// dwells at least as long as the new TTL.
func TestDNSShiftDriftPausesThenGoesOnFromTheReRead(t *testing.T) {
	h := newHarness(t)
	driftAt(h, 2) // the 25% batch
	h.at(time.Hour, func() {
		p := h.progress()
		require.Equal(t, StatePaused, p.State)
		require.Contains(t, p.Message, "paused on drift: www.shop.example. A eu-west-2: TTL 30 -> 300")
		require.True(t, hasAudit(p, "drift", "changed outside ferry"))
		require.True(t, hasAudit(p, "pause", "drift: "))
		require.Equal(t, []batch{{90, 10}}, h.sent(), "nothing is sent while paused")
		h.signal(SignalResume, "bob", "the TTL change is intended")
	})
	start := h.env.Now()
	res, err := h.run(input(testSpec()))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State, res.Message)
	require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}, {0, 100}}, h.sent())
	require.Equal(t, 2, h.preflights, "read again on resume")
	edited := h.obs.To
	require.Equal(t, withWeight(edited, 10), h.inputs[1].To, "the batch after the resume names the record set as it is now")
	require.Equal(t, int64(300), h.inputs[3].To.TTL, "and so does every later one: the edit is kept")
	require.Equal(t, activities.BaseLastSeen, h.inputs[3].Base)
	require.GreaterOrEqual(t, h.env.Now().Sub(start), time.Hour+3*300*time.Second, "the dwells after the re-read last the new TTL")
	p := h.progress()
	require.True(t, hasAudit(p, "re-read", "TTL 300s"))
	require.True(t, hasAudit(p, "resume", ""))
}

// A rollback asked for while paused on drift returns the original weights on the record
// sets as they are (keeping the edit), never re-sending what was last seen.
func TestDNSShiftDriftThenRollbackWhilePaused(t *testing.T) {
	h := newHarness(t)
	driftAt(h, 2)
	var rb *updateOutcome
	h.at(time.Hour, func() { rb = h.update(UpdateRollback, "bob") })
	res, err := h.run(input(testSpec()))
	require.NoError(t, err)
	requireAccepted(t, rb)
	require.Equal(t, StateRolledBack, res.State, res.Message)
	require.Equal(t, []batch{{90, 10}, {100, 0}}, h.sent())
	undo := h.inputs[1]
	require.Equal(t, activities.BaseCurrent, undo.Base, "the undo keeps other people's edits")
	require.Equal(t, int64(90), undo.From.Weight, "the weights ferry last set")
	require.Equal(t, int64(10), undo.To.Weight)
	p := h.progress()
	require.Equal(t, StateRolledBack, p.State)
	require.Equal(t, StepRolledBack, p.Steps[1].Status, "the step that met the drift")
}

// Forward batches are guarded by what was last seen; rollback batches set the weights on the
// record sets as they are now.
func TestDNSShiftBatchBases(t *testing.T) {
	h := newHarness(t)
	h.healthy = failAt50
	res, err := h.run(input(testSpec()))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	var bases []string
	for _, in := range h.inputs {
		bases = append(bases, in.Base)
	}
	require.Equal(t, []string{activities.BaseLastSeen, activities.BaseLastSeen, activities.BaseLastSeen, activities.BaseCurrent}, bases)
	requireSafe(t, h)
}

// A batch an earlier attempt applied (its answer lost) comes back AlreadyApplied with no
// change id: there is nothing to wait INSYNC for, and the step goes on.
func TestDNSShiftBatchAlreadyApplied(t *testing.T) {
	h := newHarness(t)
	h.alreadyApplied = func(call int) bool { return call == 2 }
	res, err := h.run(input(testSpec()))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
	require.Equal(t, []string{"C1", "C3", "C4"}, h.insyncs)
	require.True(t, hasAudit(h.progress(), "change weights", "already applied by an earlier attempt"))
}

// Route 53 failing with retryable errors for longer than the step's attempt budget holds
// the shift blocked ("shift to 25% blocked: ..."), and it completes once Route 53 answers,
// with each batch applied once.
func TestDNSShiftForwardHoldsThroughAnOutage(t *testing.T) {
	h := newHarness(t)
	var outage time.Time
	h.refuse = func(in activities.ChangeWeightsInput, call int) error {
		if call < 2 {
			return nil
		}
		if outage.IsZero() {
			outage = h.env.Now()
		}
		if h.env.Now().Sub(outage) < 30*time.Second {
			return temporal.NewApplicationError("change weights: InternalError: try again", "InternalError")
		}
		return nil
	}
	in := input(testSpec())
	in.Budgets = &Budgets{StepAttempt: 5 * time.Second, BlockedPace: 2 * time.Second, UndoAttempt: 5 * time.Second}
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State, res.Message)
	require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}, {0, 100}}, h.sent())
	p := h.progress()
	require.True(t, hasAudit(p, "shift to 25% blocked", "change weights: InternalError: try again"), "%v", auditActions(p))
	require.True(t, hasAudit(p, "shift to 25% unblocked", ""))
	require.Greater(t, h.calls, 4, "several attempts during the outage")
}

// An attempt that spent its budget says what kept failing: Temporal reports a
// schedule-to-close timeout with the last failure as its cause.
func TestAttemptErrorNamesTheLastFailure(t *testing.T) {
	last := temporal.NewApplicationError("change weights in Z1: still Throttling after 6 attempts", activities.ErrThrottled)
	err := attemptError(temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, last), 2*time.Second)
	require.Equal(t, "change weights in Z1: still Throttling after 6 attempts (no success within the attempt budget of 2s)", failureLine(err))
	require.False(t, isPermanent(err), "an outage is retryable")
	// No attempt ended within the budget: the last heartbeat says what it met.
	err = attemptError(temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, nil, "change weights in Z1: Throttling, attempt 4"), 2*time.Second)
	require.Equal(t, "change weights in Z1: Throttling, attempt 4 (no success within the attempt budget of 2s)", failureLine(err))
	other := temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, nil)
	require.Equal(t, other, attemptError(other, time.Second))
}

// A batch Route 53 accepted whose INSYNC cannot be read (GetChange failing) holds the step;
// its next attempts wait on the same change rather than sending the batch again. A rollback
// asked for meanwhile sends its own batch.
func TestDNSShiftInsyncOutageWaitsOnTheSameChange(t *testing.T) {
	for _, rollback := range []bool{false, true} {
		t.Run(map[bool]string{false: "outage ends", true: "rollback asked while blocked"}[rollback], func(t *testing.T) {
			h := newHarness(t)
			var since time.Time
			h.insyncErr = func(id string) error {
				if id != "C2" {
					return nil
				}
				if since.IsZero() {
					since = h.env.Now()
				}
				if rollback || h.env.Now().Sub(since) < 30*time.Second {
					return temporal.NewApplicationError("get change C2: ServiceUnavailable", "ServiceUnavailable")
				}
				return nil
			}
			if rollback {
				h.at(5*time.Minute, func() {
					p := h.progress()
					require.Equal(t, StateBlocked, p.State)
					require.Contains(t, p.Message, "shift to 25% blocked: get change C2: ServiceUnavailable")
					h.signal(SignalRollback, "bob", "Route 53 is down; back out")
				})
			}
			in := input(testSpec())
			in.Budgets = &Budgets{StepAttempt: 5 * time.Second, BlockedPace: 2 * time.Second, UndoAttempt: 5 * time.Second}
			res, err := h.run(in)
			require.NoError(t, err)
			if !rollback {
				require.Equal(t, StateCompleted, res.State, res.Message)
				require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}, {0, 100}}, h.sent(), "each batch sent once")
				require.Greater(t, slices.Index(h.insyncs, "C3"), slices.Index(h.insyncs, "C2")+1, "several waits on C2 before the next step")
				return
			}
			require.Equal(t, StateRolledBack, res.State, res.Message)
			require.Equal(t, []batch{{90, 10}, {75, 25}, {100, 0}}, h.sent(), "the rollback sends its own batch")
			t.Logf("insyncs %v calls %d audit %v", h.insyncs, h.calls, auditActions(h.progress()))
			require.Equal(t, "C3", h.insyncs[len(h.insyncs)-1])
		})
	}
}
