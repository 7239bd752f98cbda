package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/activities"
)

// inconclusiveAt50 gives no data while eu-west-2 holds 50, passes otherwise.
func inconclusiveAt50(b []batch, _ int) activities.Verdict {
	if b[len(b)-1].To == 50 {
		return activities.VerdictInconclusive
	}
	return activities.VerdictPass
}

func countAudit(p Progress, action string) int {
	n := 0
	for _, a := range auditActions(p) {
		if a == action {
			n++
		}
	}
	return n
}

// An inconclusive gate pauses for a person by default, once: the person's resume accepts
// it, and the shift goes on although the gate still cannot decide.
func TestDNSShiftInconclusivePausesOnceAndResumes(t *testing.T) {
	h := newHarness(t)
	h.verdict = inconclusiveAt50
	h.at(time.Hour, func() {
		p := h.progress()
		require.Equal(t, StatePaused, p.State, "an inconclusive gate must not pass silently")
		require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}}, h.sent())
		require.Equal(t, "inconclusive", p.DNS.Gates[0].Verdict)
		require.False(t, p.DNS.Gates[0].Healthy)
		h.signal(SignalResume, "bob", "no traffic at night: looked at the dashboards")
	})
	res, err := h.run(input(testSpec()))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
	require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}, {0, 100}}, h.sent())
	p := h.progress()
	require.Equal(t, 1, countAudit(p, "ferry gate inconclusive"), "audited when it becomes inconclusive, not every evaluation")
	require.Equal(t, 1, countAudit(p, "ferry pause"))
	require.Contains(t, auditActions(p), "bob resume")
}

func TestDNSShiftInconclusiveRollback(t *testing.T) {
	h := newHarness(t)
	h.verdict = inconclusiveAt50
	spec := testSpec()
	spec.Gates[0].OnInconclusive = OnInconclusiveRollback
	spec.OnGateFailure = OnGateFailPause // the inconclusive action is the gate's own
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	require.Equal(t, []batch{{90, 10}, {75, 25}, {50, 50}, {100, 0}}, h.sent())
	require.Equal(t, 13, h.evals, "acted on at the first inconclusive evaluation")
	require.Contains(t, h.progress().Message, "gate inconclusive")
}

func TestDNSShiftInconclusiveIgnore(t *testing.T) {
	h := newHarness(t)
	h.verdict = inconclusiveAt50
	spec := testSpec()
	spec.Gates[0].OnInconclusive = OnInconclusiveIgnore
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
	p := h.progress()
	require.Equal(t, 1, countAudit(p, "ferry gate inconclusive"), "ignored, but still on the record")
	require.Zero(t, countAudit(p, "ferry pause"))
	require.Equal(t, 1, countAudit(p, "ferry gate recovered"), "the verdict changing back is on the record too")
}

// inconclusiveLimit tolerates that many in a row; a pass resets the count.
func TestDNSShiftInconclusiveLimit(t *testing.T) {
	h := newHarness(t)
	spec := testSpec()
	spec.Gates[0].InconclusiveLimit = 2
	spec.Gates[0].OnInconclusive = OnInconclusiveRollback
	// Two inconclusive, one pass, repeated: never three in a row.
	h.verdict = func(_ []batch, eval int) activities.Verdict {
		if eval%3 == 0 {
			return activities.VerdictPass
		}
		return activities.VerdictInconclusive
	}
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)

	h = newHarness(t)
	h.verdict = func(_ []batch, eval int) activities.Verdict {
		if eval <= 6 {
			return activities.VerdictPass
		}
		return activities.VerdictInconclusive
	}
	res, err = h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	require.Equal(t, 9, h.evals, "the third inconclusive evaluation in a row acts")
}

// An inconclusive evaluation is no evidence either way: it neither counts as a failure nor
// resets the failures before it.
func TestDNSShiftInconclusiveBetweenFailures(t *testing.T) {
	h := newHarness(t)
	spec := testSpec()
	spec.Gates[0].FailureThreshold = 2 // failureLimit 1
	spec.Gates[0].OnInconclusive = OnInconclusiveIgnore
	h.verdict = func(_ []batch, eval int) activities.Verdict {
		switch eval {
		case 7, 9:
			return activities.VerdictFail
		case 8:
			return activities.VerdictInconclusive
		}
		return activities.VerdictPass
	}
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	require.Equal(t, 9, h.evals)
}

// count stretches each step's dwell to that many gate evaluations, in the plan and the run.
func TestDNSShiftGateCount(t *testing.T) {
	h := newHarness(t)
	spec := testSpec()
	spec.Gates[0].Count = 9 // 9 x 10s = 90s > the 60s bake time
	plan, err := ComputeDNSShiftPlan(spec, testObs())
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, plan.Dwell)
	require.Contains(t, plan.Plan.Observations[3], "9 gate evaluations every 10s")
	res, err := h.run(input(spec))
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State)
	require.Equal(t, 4*9, h.evals)
}
