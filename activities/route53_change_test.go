package activities

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/ferryhq/ferry/sandbox/control"
)

// Drift-safe batches (route53_change.go) against the sandbox's Route 53 (newSim).

// upsert changes a record set outside ferry, as a person with the AWS CLI would.
func upsert(t *testing.T, r *Route53, zoneID string, rs RecordSet) {
	t.Helper()
	_, err := r.Client.ChangeResourceRecordSets(context.Background(), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID),
		ChangeBatch:  &types.ChangeBatch{Changes: []types.Change{{Action: types.ChangeActionUpsert, ResourceRecordSet: rs.toSDK(rs.Weight)}}},
	})
	require.NoError(t, err)
}

func changeWeights(t *testing.T, env *testsuite.TestActivityEnvironment, r *Route53, in ChangeWeightsInput) (ChangeWeightsOutput, error) {
	t.Helper()
	v, err := env.ExecuteActivity(r.ChangeWeights, in)
	if err != nil {
		return ChangeWeightsOutput{}, err
	}
	var out ChangeWeightsOutput
	require.NoError(t, v.Get(&out))
	return out, nil
}

func TestChangeWeightsDeletesAsSeenAndCreatesWithNewWeights(t *testing.T) {
	s := newSim(t, simOptions{})
	r := &Route53{Client: s.route53(t)}
	env := activityEnv(r)
	obs, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)

	out, err := changeWeights(t, env, r, ChangeWeightsInput{ZoneID: obs.ZoneID, From: obs.From, To: obs.To,
		FromWeight: 75, ToWeight: 25, Comment: "ferry test: 25%", Base: BaseLastSeen})
	require.NoError(t, err)
	require.NotEmpty(t, out.ChangeID)
	require.False(t, out.AlreadyApplied)
	require.Equal(t, withWeight(obs.From, 75), out.From, "the output is the record set as it is now")
	require.Equal(t, withWeight(obs.To, 25), out.To)

	batches := s.sentBatches()
	require.Len(t, batches, 1, "one batch per step")
	b := parseBatch(t, batches[0])
	require.Len(t, b.Changes, 4)
	for i, want := range []struct {
		action string
		rec    RecordSet
	}{{"DELETE", obs.From}, {"CREATE", withWeight(obs.From, 75)}, {"DELETE", obs.To}, {"CREATE", withWeight(obs.To, 25)}} {
		c := b.Changes[i]
		require.Equal(t, want.action, c.Action, i)
		require.Equal(t, want.rec.SetIdentifier, c.Set.SetIdentifier, i)
		require.Equal(t, want.rec.Weight, c.Set.Weight, "%d: a DELETE names the weight as seen, a CREATE the new one", i)
		require.Equal(t, want.rec.TTL, c.Set.TTL, i)
		require.Equal(t, want.rec.Values, c.Set.Values, i)
		require.Equal(t, want.rec.HealthCheckID, c.Set.HealthCheckID, i)
	}
	after, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	require.Equal(t, out.From, after.From)
	require.Equal(t, out.To, after.To)
}

// A record set someone changed outside ferry since it was last seen is never overwritten:
// the batch is not sent, and the error names the set and what differs, with the sets as
// read now in its details.
func TestChangeWeightsRefusesDrift(t *testing.T) {
	cases := []struct {
		name string
		edit func(to *RecordSet)
		want string
	}{
		{"TTL", func(to *RecordSet) { to.TTL = 300 }, "www.shop.example. A eu-west-2: TTL 60 -> 300 (changed outside ferry)"},
		{"values", func(to *RecordSet) { to.Values = []string{"203.0.113.20"} }, "www.shop.example. A eu-west-2: values 198.51.100.20 -> 203.0.113.20 (changed outside ferry)"},
		{"health check", func(to *RecordSet) { to.HealthCheckID = "" }, "www.shop.example. A eu-west-2: health check 22222222-2222-4222-8222-222222222222 -> none (changed outside ferry)"},
		{"weight", func(to *RecordSet) { to.Weight = 7 }, "www.shop.example. A eu-west-2: weight 0 -> 7 (changed outside ferry)"},
		{"alias", func(to *RecordSet) {
			to.TTL, to.Values = 0, nil
			to.Alias = &Alias{DNSName: "lb-2.eu-west-2.elb.amazonaws.com.", HostedZoneID: "ZHURV8PSTC4K8", EvaluateTargetHealth: true}
		}, "www.shop.example. A eu-west-2: TTL 60 -> 0, values 198.51.100.20 -> none, alias none -> lb-2.eu-west-2.elb.amazonaws.com. (ZHURV8PSTC4K8, evaluate health true) (changed outside ferry)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSim(t, simOptions{})
			r := &Route53{Client: s.route53(t)}
			env := activityEnv(r)
			obs, err := preflight(t, env, r, shopInput())
			require.NoError(t, err)
			edited := obs.To
			c.edit(&edited)
			upsert(t, r, obs.ZoneID, edited)
			sent := len(s.sentBatches())

			_, err = changeWeights(t, env, r, ChangeWeightsInput{ZoneID: obs.ZoneID, From: obs.From, To: obs.To, FromWeight: 50, ToWeight: 50, Base: BaseLastSeen})
			ae := requireAppError(t, err, ErrRecordDrifted)
			require.True(t, ae.NonRetryable())
			require.Equal(t, c.want, ae.Message())
			var d Drift
			require.NoError(t, ae.Details(&d))
			require.Equal(t, obs.From, d.From)
			require.Equal(t, edited, d.To, "the details carry the record sets as read now")
			require.Equal(t, []string{strings.TrimSuffix(c.want, " (changed outside ferry)")}, d.Changes)
			require.Len(t, s.sentBatches(), sent, "nothing was sent")
			now, err := preflight(t, env, r, shopInput())
			require.NoError(t, err)
			require.Equal(t, edited, now.To, "the edit stands")
		})
	}
}

// Alias record sets: the batch deletes and creates the alias as seen, and a changed alias
// target is drift.
func TestChangeWeightsAliasRecordSets(t *testing.T) {
	s := newSim(t, simOptions{})
	r := &Route53{Client: s.route53(t)}
	env := activityEnv(r)
	obs, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	alias := func(id, lb string, w int64) RecordSet {
		return RecordSet{Name: "api.shop.example.", Type: "A", SetIdentifier: id, Weight: w,
			Alias: &Alias{DNSName: lb, HostedZoneID: "ZHURV8PSTC4K8", EvaluateTargetHealth: true}}
	}
	from, to := alias("eu-west-1", "lb-1.eu-west-1.elb.amazonaws.com.", 100), alias("eu-west-2", "lb-1.eu-west-2.elb.amazonaws.com.", 0)
	upsert(t, r, obs.ZoneID, from)
	upsert(t, r, obs.ZoneID, to)
	in := PreflightInput{Zone: "shop.example.", RecordName: "api.shop.example.", RecordType: "A", From: "eu-west-1", To: "eu-west-2"}
	got, err := preflight(t, env, r, in)
	require.NoError(t, err)
	require.Equal(t, to, got.To)

	out, err := changeWeights(t, env, r, ChangeWeightsInput{ZoneID: obs.ZoneID, From: from, To: to, FromWeight: 50, ToWeight: 50, Base: BaseLastSeen})
	require.NoError(t, err)
	require.Equal(t, alias("eu-west-2", "lb-1.eu-west-2.elb.amazonaws.com.", 50), out.To)

	moved := alias("eu-west-2", "lb-9.eu-west-2.elb.amazonaws.com.", 50)
	upsert(t, r, obs.ZoneID, moved)
	_, err = changeWeights(t, env, r, ChangeWeightsInput{ZoneID: obs.ZoneID, From: out.From, To: out.To, FromWeight: 0, ToWeight: 100, Base: BaseLastSeen})
	ae := requireAppError(t, err, ErrRecordDrifted)
	require.Contains(t, ae.Message(), "api.shop.example. A eu-west-2: alias lb-1.eu-west-2.elb.amazonaws.com. (ZHURV8PSTC4K8, evaluate health true) -> lb-9.eu-west-2.elb.amazonaws.com. (ZHURV8PSTC4K8, evaluate health true)")
}

// An activity retry after a batch that went in but whose answer was lost finds the new
// weights and reports the batch applied, sending nothing. If someone edited the record set
// after the batch went in, the retry reports that edit as drift.
func TestChangeWeightsAppliedEarlierIsReportedApplied(t *testing.T) {
	s := newSim(t, simOptions{})
	r := &Route53{Client: s.route53(t)}
	env := activityEnv(r)
	obs, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	in := ChangeWeightsInput{ZoneID: obs.ZoneID, From: obs.From, To: obs.To, FromWeight: 50, ToWeight: 50, Base: BaseLastSeen}
	first, err := changeWeights(t, env, r, in)
	require.NoError(t, err)
	require.NotEmpty(t, first.ChangeID)

	again, err := changeWeights(t, env, r, in) // the same input: a retry
	require.NoError(t, err)
	require.True(t, again.AlreadyApplied)
	require.Empty(t, again.ChangeID, "no new change to wait for")
	require.Equal(t, first.From, again.From)
	require.Equal(t, first.To, again.To)
	require.Len(t, s.sentBatches(), 1, "the retry sent nothing")

	// Applied, and then someone changed the TTL: that is drift, and the message names only
	// their change, not ferry's own weight.
	edited := first.To
	edited.TTL = 300
	upsert(t, r, obs.ZoneID, edited)
	_, err = changeWeights(t, env, r, in)
	ae := requireAppError(t, err, ErrRecordDrifted)
	require.Equal(t, "www.shop.example. A eu-west-2: TTL 60 -> 300 (changed outside ferry)", ae.Message())
}

// Someone's edit lands between ferry's read and its batch: Route 53 refuses the DELETE
// (the values no longer match), and the re-read tells drift (forward) from an edit to keep
// (undo, whose batch is built again from the new read).
func TestChangeWeightsConcurrentEditRefusedThenDetected(t *testing.T) {
	for _, base := range []string{BaseLastSeen, BaseCurrent} {
		t.Run(base, func(t *testing.T) {
			s := newSim(t, simOptions{})
			r := &Route53{Client: s.route53(t)}
			env := activityEnv(r)
			obs, err := preflight(t, env, r, shopInput())
			require.NoError(t, err)
			edited := obs.To
			edited.TTL, edited.Values = 300, []string{"203.0.113.20"}
			s.mu.Lock()
			s.beforeChange = func() { upsert(t, r, obs.ZoneID, edited) }
			s.mu.Unlock()

			out, err := changeWeights(t, env, r, ChangeWeightsInput{ZoneID: obs.ZoneID, From: obs.From, To: obs.To, FromWeight: 50, ToWeight: 50, Base: base})
			var results []string
			for _, c := range s.srv.Calls(control.CallFilter{Operation: "ChangeResourceRecordSets"}) {
				results = append(results, c.Result)
			}
			now, perr := preflight(t, env, r, shopInput())
			require.NoError(t, perr)
			if base == BaseLastSeen {
				ae := requireAppError(t, err, ErrRecordDrifted)
				require.Equal(t, "www.shop.example. A eu-west-2: TTL 60 -> 300, values 198.51.100.20 -> 203.0.113.20 (changed outside ferry)", ae.Message())
				require.Equal(t, []string{"ok", "InvalidChangeBatch"}, results, "the edit, then ferry's batch refused by Route 53")
				require.Equal(t, edited, now.To, "the edit stands")
				require.Equal(t, obs.From, now.From)
				return
			}
			require.NoError(t, err)
			require.Equal(t, []string{"ok", "InvalidChangeBatch", "ok"}, results, "refused, read again, sent again")
			require.Equal(t, withWeight(edited, 50), now.To, "the weight is set and the edit kept")
			require.Equal(t, withWeight(obs.From, 50), now.From)
			require.Equal(t, []string{"www.shop.example. A eu-west-2: TTL 60 -> 300, values 198.51.100.20 -> 203.0.113.20"}, out.Kept)
		})
	}
}

// An undo batch (BaseCurrent) sets the weights on the record sets as they are now, keeping
// whatever else anyone changed; once they have the weights it sends nothing.
func TestChangeWeightsFromCurrentKeepsOtherEdits(t *testing.T) {
	s := newSim(t, simOptions{})
	r := &Route53{Client: s.route53(t)}
	env := activityEnv(r)
	obs, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	mid, err := changeWeights(t, env, r, ChangeWeightsInput{ZoneID: obs.ZoneID, From: obs.From, To: obs.To, FromWeight: 50, ToWeight: 50, Base: BaseLastSeen})
	require.NoError(t, err)
	edited := mid.To
	edited.TTL, edited.HealthCheckID = 5, ""
	upsert(t, r, obs.ZoneID, edited)

	undo := ChangeWeightsInput{ZoneID: obs.ZoneID, From: mid.From, To: mid.To, FromWeight: 100, ToWeight: 0, Base: BaseCurrent}
	out, err := changeWeights(t, env, r, undo)
	require.NoError(t, err)
	require.NotEmpty(t, out.ChangeID)
	now, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	require.Equal(t, obs.From, now.From, "back to the original")
	require.Equal(t, withWeight(edited, 0), now.To, "the original weight, their TTL and health check")
	require.Equal(t, []string{"www.shop.example. A eu-west-2: TTL 60 -> 5, health check 22222222-2222-4222-8222-222222222222 -> none"}, out.Kept)

	sent := len(s.sentBatches())
	again, err := changeWeights(t, env, r, undo)
	require.NoError(t, err)
	require.True(t, again.AlreadyApplied)
	require.Len(t, s.sentBatches(), sent)

	// A record set that is gone cannot be given a weight: drift, for a person to settle.
	_, err = r.Client.ChangeResourceRecordSets(context.Background(), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(obs.ZoneID),
		ChangeBatch:  &types.ChangeBatch{Changes: []types.Change{{Action: types.ChangeActionDelete, ResourceRecordSet: now.To.toSDK(now.To.Weight)}}},
	})
	require.NoError(t, err)
	_, err = changeWeights(t, env, r, undo)
	ae := requireAppError(t, err, ErrRecordDrifted)
	require.Contains(t, ae.Message(), "www.shop.example. A eu-west-2: deleted")
}
