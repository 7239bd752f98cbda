package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/workflows"
)

// A DNS shift's robustness, judged from the sandbox's Route 53 as the AWS SDK reads it: a
// shift never puts back what someone else changed in its record sets while it ran (drift),
// a forward step holds through a Route 53 outage instead of failing the shift (and the
// region move around it), and a gate-triggered rollback keeps trying through one.

// dnsBudgets make an outage of a few seconds several attempts long.
var dnsBudgets = &workflows.Budgets{StepAttempt: 2 * time.Second, BlockedPace: 500 * time.Millisecond, UndoAttempt: 2 * time.Second}

// dnsAlone is the marketplace move's DNS phase (schedule [50, 100], an HTTP gate on
// eu-west-2's app) run on its own, without approvals, dwelling bake per step.
func (s *stack) dnsAlone(t testing.TB, name string, bake time.Duration, b *workflows.Budgets) (*workflows.KindDef, workflows.DNSShiftInput) {
	t.Helper()
	k := workflows.KindByName(workflows.KindDNSShift)
	sp := s.kindSpec(t, workflows.KindDNSShift).(workflows.DNSShiftSpec)
	sp.ApproveAfter = make([]bool, len(sp.Percents))
	sp.BakeTime = bake
	in := k.NewInput(sp, workflows.Common{Name: name, Initiator: "alice",
		Approvals: workflows.ApprovalPolicy{RequiredApprovers: 1}, Budgets: b}).(workflows.DNSShiftInput)
	return k, in
}

// recordSet reads one weighted record set of www.shop.example. A as an operator sees it.
func (s *stack) recordSet(t *testing.T, setID string) r53types.ResourceRecordSet {
	t.Helper()
	out, err := s.r53.ListResourceRecordSets(context.Background(), &route53.ListResourceRecordSetsInput{
		HostedZoneId: aws.String(s.zoneID), StartRecordName: aws.String("www.shop.example."), StartRecordType: r53types.RRTypeA})
	require.NoError(t, err)
	for _, rs := range out.ResourceRecordSets {
		if aws.ToString(rs.Name) == "www.shop.example." && rs.Type == r53types.RRTypeA && aws.ToString(rs.SetIdentifier) == setID {
			return rs
		}
	}
	t.Fatalf("no record set www.shop.example. A %s", setID)
	return r53types.ResourceRecordSet{}
}

// editOutsideFerry changes one record set the way a person would while a shift runs: read
// it, change it, UPSERT it through the AWS SDK straight to the sandbox.
func (s *stack) editOutsideFerry(t *testing.T, setID string, edit func(rs *r53types.ResourceRecordSet)) {
	t.Helper()
	rs := s.recordSet(t, setID)
	edit(&rs)
	_, err := s.r53.ChangeResourceRecordSets(context.Background(), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(s.zoneID),
		ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{
			{Action: r53types.ChangeActionUpsert, ResourceRecordSet: &rs},
		}},
	})
	require.NoError(t, err)
}

func values(rs r53types.ResourceRecordSet) []string {
	var v []string
	for _, r := range rs.ResourceRecords {
		v = append(v, aws.ToString(r.Value))
	}
	return v
}

func auditHas(p workflows.Progress, action, reasonPart string) bool {
	return slices.ContainsFunc(p.Audit, func(e workflows.AuditEntry) bool {
		return e.Action == action && strings.Contains(e.Reason, reasonPart)
	})
}

// Someone changes the eu-west-2 record set's TTL and IP through the AWS SDK after the first
// batch: the shift pauses on the drift instead of putting the old TTL and IP back, and the
// sandbox keeps the edit. Resumed, it completes at 0/100 from the records as they are now;
// rolled back while paused, it ends at the original weights; the edit stays either way.
// Before drift-safe batches, the second batch UPSERTed the records as read at preflight:
// the shift never paused ("paused on drift" timed out) and the old TTL and IP came back.
func TestDNSShiftPausesOnDriftAndKeepsTheEdit(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS")
	}
	for _, c := range []struct {
		name   string
		action string // what a person does while the shift is paused on drift
		state  string
		want   map[string]int64
	}{
		{"resumed, completes keeping the edit", workflows.UpdateResume, workflows.StateCompleted, map[string]int64{"eu-west-1": 0, "eu-west-2": 100}},
		{"rolled back while paused, keeps the edit", workflows.UpdateRollback, workflows.StateRolledBack, map[string]int64{"eu-west-1": 100, "eu-west-2": 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startStack(t)
			require.Equal(t, map[string]int64{"eu-west-1": 100, "eu-west-2": 0}, s.weights(t))
			fromBefore := s.recordSet(t, "eu-west-1")
			k, in := s.dnsAlone(t, "www drift", 4*time.Second, nil)
			id := k.LockID(in)
			done := make(chan error, 1)
			var out workflows.DNSShiftResult
			go func() { done <- s.runKind(t, k, in, &out) }()
			ctx := context.Background()

			testenv.Eventually(t, time.Minute, "the first batch (50%) in", func() bool {
				p, ok := s.progress(ctx, id)
				return ok && p.DNS != nil && p.DNS.StepIndex == 0
			})
			require.Equal(t, map[string]int64{"eu-west-1": 50, "eu-west-2": 50}, s.weights(t))
			s.editOutsideFerry(t, "eu-west-2", func(rs *r53types.ResourceRecordSet) {
				rs.TTL = aws.Int64(2)
				rs.ResourceRecords = []r53types.ResourceRecord{{Value: aws.String("203.0.113.20")}}
			})

			var paused workflows.Progress
			testenv.Eventually(t, 30*time.Second, "paused on drift", func() bool {
				p, ok := s.progress(ctx, id)
				paused = p
				return ok && p.State == workflows.StatePaused && strings.Contains(p.Message, "drift")
			})
			require.Contains(t, paused.Message, "www.shop.example. A eu-west-2")
			require.Contains(t, paused.Message, "TTL 1 -> 2")
			require.Contains(t, paused.Message, "203.0.113.20")
			require.True(t, auditHas(paused, "pause", "changed outside ferry"), "the pause is audited with the drift")
			// Nothing was put back: the edit stands and the weights are the first batch's.
			to := s.recordSet(t, "eu-west-2")
			require.Equal(t, int64(2), aws.ToInt64(to.TTL))
			require.Equal(t, []string{"203.0.113.20"}, values(to))
			require.Equal(t, map[string]int64{"eu-west-1": 50, "eu-west-2": 50}, s.weights(t))

			_, err := s.act(ctx, id, c.action, "bob")
			require.NoError(t, err)
			require.NoError(t, <-done)
			require.Equal(t, c.state, out.State, out.Message)

			require.Equal(t, c.want, s.weights(t))
			to = s.recordSet(t, "eu-west-2")
			require.Equal(t, int64(2), aws.ToInt64(to.TTL), "the other person's TTL stays")
			require.Equal(t, []string{"203.0.113.20"}, values(to), "the other person's IP stays")
			require.Equal(t, aws.String("22222222-2222-4222-8222-222222222222"), to.HealthCheckId)
			from := s.recordSet(t, "eu-west-1")
			from.Weight = fromBefore.Weight
			require.Equal(t, fromBefore, from, "the untouched record set changed only its weight")
		})
	}
}

// A gate fails (eu-west-2's app unhealthy) and the rollback meets Route 53 answering 5xx to
// every ChangeResourceRecordSets for about three undo budgets: the shift shows "rollback
// blocked" meanwhile and ends rolled-back at the original weights once Route 53 answers.
// (TestDNSRollbackKeepsTryingThroughAnOutage is the variant where a refused forward batch
// starts the rollback.)
func TestDNSGateRollbackKeepsTryingThroughAnOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS")
	}
	s := startStack(t)
	start := s.weights(t)
	_, err := s.sb.Faults().Add(control.Fault{Target: "app:eu-west-2", Kind: control.KindUnhealthy, Rate: 1})
	require.NoError(t, err)
	// The first batch (50%) goes in; every later one answers 5xx until the fault is cleared.
	f, err := s.sb.Faults().Add(control.Fault{Target: "aws:route53:ChangeResourceRecordSets", Kind: control.KindError, Rate: 1, After: 1})
	require.NoError(t, err)
	k, in := s.dnsAlone(t, "www gate rollback", 2*time.Second, dnsBudgets)
	id := k.LockID(in)
	done := make(chan error, 1)
	var out workflows.DNSShiftResult
	go func() { done <- s.runKind(t, k, in, &out) }()
	ctx := context.Background()

	var blocked workflows.Progress
	testenv.Eventually(t, time.Minute, "the rollback shows itself blocked", func() bool {
		p, ok := s.progress(ctx, id)
		blocked = p
		return ok && p.State == workflows.StateBlocked
	})
	since := time.Now()
	t.Logf("blocked: %s", blocked.Message)
	require.Contains(t, blocked.Message, "rollback blocked: ")
	require.True(t, auditHas(blocked, "gate failed", "eu-west-2 health"), "a failing gate started the rollback")
	// The outage lasts about three undo attempts, then ends.
	testenv.Eventually(t, time.Minute, "three undo budgets of outage", func() bool {
		return time.Since(since) >= 3*dnsBudgets.UndoAttempt
	})
	p, _ := s.progress(ctx, id)
	require.Equal(t, workflows.StateBlocked, p.State, "still blocked while Route 53 fails: %s", p.Message)
	_, err = s.sb.Faults().Delete(f.ID)
	require.NoError(t, err)

	require.NoError(t, <-done)
	require.Equal(t, workflows.StateRolledBack, out.State, out.Message)
	require.Equal(t, start, s.weights(t), "the weights are back where they started")
	p, _ = s.progress(ctx, id)
	require.True(t, auditHas(p, "rollback blocked", ""))
	require.True(t, auditHas(p, "rollback unblocked", ""))
}

// Route 53 throttles every ChangeResourceRecordSets for several step budgets from a
// region move's DNS dwell on: the move holds (its DNS phase shows blocked, and so does the
// move itself), then completes once Route 53 answers, with nothing undone. Before holding,
// the batch retried on a count (minutes of backoff) and no blocked state was ever shown.
func TestRegionMoveHoldsThroughRoute53Outage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal, sandbox AWS and MongoDB")
	}
	s := startStack(t)
	in := s.moveSpec(t)
	in.Budgets = dnsBudgets
	in.PlanHash = s.planMove(t, in).Hash
	k := workflows.KindByName(workflows.KindRegionMove)
	id := k.LockID(in)
	dnsID := workflows.DNSShiftWorkflowID(in.Spec.DNS.Zone, in.Spec.DNS.RecordName, in.Spec.DNS.RecordType)
	done := make(chan error, 1)
	var res workflows.RegionMoveResult
	go func() {
		_, err := s.startAndApprove(t, k, in, &res)
		done <- err
	}()
	ctx := context.Background()
	testenv.Eventually(t, 3*time.Minute, "the DNS phase dwelling at 50%", func() bool {
		p, ok := s.progress(ctx, dnsID)
		return ok && p.DNS != nil && p.DNS.StepIndex == 0
	})
	f, err := s.sb.Faults().Add(control.Fault{Target: "aws:route53:ChangeResourceRecordSets", Kind: control.KindThrottle, Rate: 1})
	require.NoError(t, err)
	move, phase := s.watchBlocked(id), s.watchBlocked(dnsID)
	var since time.Time
	testenv.Eventually(t, time.Minute, "the DNS phase holds blocked", func() bool {
		p, ok := s.progress(ctx, dnsID)
		if ok && p.State == workflows.StateBlocked && since.IsZero() {
			since = time.Now()
		}
		return !since.IsZero() && time.Since(since) >= 3*dnsBudgets.StepAttempt
	})
	_, err = s.sb.Faults().Delete(f.ID)
	require.NoError(t, err)

	require.NoError(t, <-done)
	moveMsg, phaseMsg := move.message(), phase.message()
	t.Logf("move blocked: %s", moveMsg)
	t.Logf("dns phase blocked: %s", phaseMsg)
	require.Equal(t, workflows.StateCompleted, res.State, res.Message)
	for _, ph := range res.Phases {
		require.Equal(t, workflows.PhaseCompleted, ph.State, "%s: %s", ph.Name, ph.Detail)
	}
	require.Contains(t, phaseMsg, "shift to 100% blocked: ")
	// The cause shows when the budget ran out after a failed attempt; when it ran out
	// during an attempt (schedule-to-close with no failure yet), Temporal reports the
	// timeout alone. Either way the message says the step is blocked and why it stopped.
	require.True(t, strings.Contains(phaseMsg, "Throttling") || strings.Contains(phaseMsg, "timed out"),
		"the message says what keeps failing: %s", phaseMsg)
	require.Contains(t, phaseMsg, "retrying since")
	require.Contains(t, moveMsg, workflows.PhaseDNSShift, "the move shows its DNS phase blocked")

	// Judged from the sandbox: nothing was undone.
	require.Equal(t, map[string]int64{"eu-west-1": 0, "eu-west-2": 100}, s.weights(t))
	require.Equal(t, "eu-west-2", s.primaryRegion())
	cs := s.copies(t)
	require.Len(t, cs, 2)
	for id, state := range cs {
		require.Equal(t, "available", state, id)
	}
}
