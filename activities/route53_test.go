package activities

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/ferryhq/ferry/sandbox/awssim"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/topology"
)

// sim is the sandbox's AWS simulator (real Route 53 REST-XML and CloudWatch wire
// protocols) seeded with the default marketplace topology, behind a recorder of the
// ChangeResourceRecordSets bodies the SDK sends.
type sim struct {
	srv    *awssim.Server
	url    string
	faults *control.Registry

	mu      sync.Mutex
	batches []string // raw ChangeResourceRecordSets request bodies
	// beforeChange, when set, runs once just before the next ChangeResourceRecordSets
	// reaches the simulator: someone else's edit landing between ferry's read and its batch.
	beforeChange func()
}

type simOptions struct {
	insync       time.Duration
	appHealthy   func(string) bool
	appErrorRate func(string) (float64, bool)
}

func newSim(t *testing.T, o simOptions) *sim {
	t.Helper()
	topo := topology.Default()
	s := &sim{faults: control.NewRegistry(topo.Regions, 1)}
	s.srv = awssim.New(awssim.Options{
		Regions: topo.Regions, Faults: s.faults, Route53InsyncDelay: o.insync,
		AppHealthy: o.appHealthy, AppErrorRate: o.appErrorRate,
	})
	require.NoError(t, s.srv.Seed(topo))
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/rrset") {
			body, _ := io.ReadAll(r.Body)
			s.mu.Lock()
			s.batches = append(s.batches, string(body))
			hook := s.beforeChange
			s.beforeChange = nil
			s.mu.Unlock()
			if hook != nil {
				hook()
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		s.srv.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	s.url = hs.URL
	return s
}

func (s *sim) sentBatches() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.batches...)
}

// awsConfig builds clients as a worker does, with the SDK's own retries off so the tests
// see exactly what the activities do.
func awsConfig(t *testing.T) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithRegion("us-east-1"),
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	)
	require.NoError(t, err)
	return cfg
}

func (s *sim) route53(t *testing.T) *route53.Client {
	return route53.NewFromConfig(awsConfig(t), func(o *route53.Options) { o.BaseEndpoint = aws.String(s.url) })
}

func (s *sim) cloudwatch(t *testing.T) func(string) *cloudwatch.Client {
	cfg := awsConfig(t)
	return func(region string) *cloudwatch.Client {
		return cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
			o.BaseEndpoint = aws.String(s.url)
			o.Region = region
		})
	}
}

func activityEnv(acts ...any) *testsuite.TestActivityEnvironment {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	for _, a := range acts {
		env.RegisterActivity(a)
	}
	return env
}

func shopInput() PreflightInput {
	return PreflightInput{Zone: "shop.example.", RecordName: "www.shop.example.", RecordType: "A", From: "eu-west-1", To: "eu-west-2"}
}

func preflight(t *testing.T, env *testsuite.TestActivityEnvironment, r *Route53, in PreflightInput) (PreflightOutput, error) {
	t.Helper()
	v, err := env.ExecuteActivity(r.Preflight, in)
	if err != nil {
		return PreflightOutput{}, err
	}
	var out PreflightOutput
	require.NoError(t, v.Get(&out))
	return out, nil
}

func requireAppError(t *testing.T, err error, errType string) *temporal.ApplicationError {
	t.Helper()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want %s, got %v", errType, err)
	require.Equal(t, errType, ae.Type(), ae.Error())
	return ae
}

func TestPreflight(t *testing.T) {
	s := newSim(t, simOptions{})
	r := &Route53{Client: s.route53(t)}
	env := activityEnv(r)

	out, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	require.Equal(t, "Z0SHOPEXAMPLE0001", out.ZoneID)
	require.Equal(t, "shop.example.", out.ZoneName)
	require.Equal(t, RecordSet{Name: "www.shop.example.", Type: "A", SetIdentifier: "eu-west-1", Weight: 100, TTL: 60,
		Values: []string{"198.51.100.10"}, HealthCheckID: "11111111-1111-4111-8111-111111111111"}, out.From)
	require.Equal(t, int64(0), out.To.Weight)
	require.Equal(t, "22222222-2222-4222-8222-222222222222", out.To.HealthCheckID)

	// By zone id, without the trailing dot, in another case.
	in := shopInput()
	in.Zone, in.RecordName = "Z0SHOPEXAMPLE0001", "WWW.shop.example"
	byID, err := preflight(t, env, r, in)
	require.NoError(t, err)
	require.Equal(t, out, byID)
}

func TestPreflightErrors(t *testing.T) {
	s := newSim(t, simOptions{})
	r := &Route53{Client: s.route53(t)}
	env := activityEnv(r)

	in := shopInput()
	in.Zone = "nope.example."
	_, err := preflight(t, env, r, in)
	ae := requireAppError(t, err, ErrNoSuchZone)
	require.True(t, ae.NonRetryable())
	require.Contains(t, err.Error(), "dnsShift.hostedZone")

	in = shopInput()
	in.Zone = "Z0NOSUCHZONE"
	_, err = preflight(t, env, r, in)
	requireAppError(t, err, ErrNoSuchZone)

	in = shopInput()
	in.To = "eu-west-3"
	_, err = preflight(t, env, r, in)
	ae = requireAppError(t, err, ErrNoSuchSetIdentifier)
	require.True(t, ae.NonRetryable())
	require.Contains(t, err.Error(), `"eu-west-3"`)
	require.Contains(t, err.Error(), "eu-west-1 (A), eu-west-2 (A)", "the error lists what exists")
	require.Contains(t, err.Error(), "dnsShift.to")

	in = shopInput()
	in.RecordType = "AAAA"
	_, err = preflight(t, env, r, in)
	ae = requireAppError(t, err, ErrRecordTypeMismatch)
	require.True(t, ae.NonRetryable())
	require.Contains(t, err.Error(), "is type A, not AAAA")

	in = shopInput()
	in.RecordName = "www.other.example."
	_, err = preflight(t, env, r, in)
	requireAppError(t, err, ErrBadInput)
}

func TestPreflightZeroTotalWeight(t *testing.T) {
	s := newSim(t, simOptions{})
	r := &Route53{Client: s.route53(t)}
	env := activityEnv(r)
	out, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	// Set both weights to 0 behind ferry's back (a direct UPSERT, as an operator might).
	_, err = r.Client.ChangeResourceRecordSets(context.Background(), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(out.ZoneID),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{
			{Action: types.ChangeActionUpsert, ResourceRecordSet: out.From.toSDK(0)},
			{Action: types.ChangeActionUpsert, ResourceRecordSet: out.To.toSDK(0)},
		}},
	})
	require.NoError(t, err)
	_, err = preflight(t, env, r, shopInput())
	requireAppError(t, err, ErrZeroTotalWeight)
}

func TestPreflightPagesThroughManySets(t *testing.T) {
	s := newSim(t, simOptions{})
	r := &Route53{Client: s.route53(t)}
	env := activityEnv(r)
	out, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	// More weighted sets of the name than one listing page holds, sorting between
	// eu-west-1 and eu-west-2, and a name after it that must not be read as one of them.
	var changes []types.Change
	for i := range listPage + 5 {
		set := out.From
		set.SetIdentifier, set.Values = fmt.Sprintf("eu-west-1-canary-%02d", i), []string{"198.51.100.99"}
		set.HealthCheckID = ""
		changes = append(changes, types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: set.toSDK(1)})
	}
	changes = append(changes, types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: &types.ResourceRecordSet{
		Name: aws.String("x.www.shop.example."), Type: types.RRTypeA, TTL: aws.Int64(60),
		ResourceRecords: []types.ResourceRecord{{Value: aws.String("198.51.100.1")}}}})
	_, err = r.Client.ChangeResourceRecordSets(context.Background(), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(out.ZoneID), ChangeBatch: &types.ChangeBatch{Changes: changes}})
	require.NoError(t, err)

	got, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	require.Equal(t, out.From, got.From)
	require.Equal(t, out.To, got.To)
	require.Len(t, got.Others, listPage+5, "every other weighted set of the name, across pages")
}

// xmlBatch is the part of a ChangeResourceRecordSets body the tests look at.
type xmlBatch struct {
	Changes []struct {
		Action string `xml:"Action"`
		Set    struct {
			SetIdentifier string   `xml:"SetIdentifier"`
			Weight        int64    `xml:"Weight"`
			TTL           int64    `xml:"TTL"`
			HealthCheckID string   `xml:"HealthCheckId"`
			Values        []string `xml:"ResourceRecords>ResourceRecord>Value"`
		} `xml:"ResourceRecordSet"`
	} `xml:"ChangeBatch>Changes>Change"`
}

func parseBatch(t *testing.T, body string) xmlBatch {
	t.Helper()
	var b xmlBatch
	require.NoError(t, xml.Unmarshal([]byte(body), &b))
	return b
}

// An input scheduled before drift-safe batches (no Base) still gets its one UPSERT batch.
func TestChangeWeightsWithoutBaseUpsertsBoth(t *testing.T) {
	s := newSim(t, simOptions{})
	r := &Route53{Client: s.route53(t)}
	env := activityEnv(r)
	obs, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)

	v, err := env.ExecuteActivity(r.ChangeWeights, ChangeWeightsInput{
		ZoneID: obs.ZoneID, From: obs.From, To: obs.To, FromWeight: 75, ToWeight: 25, Comment: "ferry test: 25%",
	})
	require.NoError(t, err)
	var ch ChangeWeightsOutput
	require.NoError(t, v.Get(&ch))
	require.NotEmpty(t, ch.ChangeID)
	require.NotContains(t, ch.ChangeID, "/")

	batches := s.sentBatches()
	require.Len(t, batches, 1, "one batch per step")
	b := parseBatch(t, batches[0])
	require.Len(t, b.Changes, 2)
	for i, want := range []struct {
		id     string
		weight int64
		rec    RecordSet
	}{{"eu-west-1", 75, obs.From}, {"eu-west-2", 25, obs.To}} {
		c := b.Changes[i]
		require.Equal(t, "UPSERT", c.Action)
		require.Equal(t, want.id, c.Set.SetIdentifier)
		require.Equal(t, want.weight, c.Set.Weight)
		require.Equal(t, want.rec.TTL, c.Set.TTL, "the UPSERT repeats the TTL as read")
		require.Equal(t, want.rec.Values, c.Set.Values, "the UPSERT repeats the values as read")
		require.Equal(t, want.rec.HealthCheckID, c.Set.HealthCheckID, "the UPSERT keeps the health check")
	}

	after, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	require.Equal(t, int64(75), after.From.Weight)
	require.Equal(t, int64(25), after.To.Weight)
	require.Equal(t, obs.From.HealthCheckID, after.From.HealthCheckID)

	// The sandbox's own record agrees: one mutating call.
	calls := s.srv.Calls(control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets"})
	require.Len(t, calls, 1)
	require.Equal(t, "ok", calls[0].Result)
}

func TestChangeWeightsRefusesUnsafeWeights(t *testing.T) {
	s := newSim(t, simOptions{})
	r := &Route53{Client: s.route53(t)}
	env := activityEnv(r)
	obs, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	for _, w := range [][2]int64{{0, 0}, {256, 0}, {-1, 5}} {
		_, err := env.ExecuteActivity(r.ChangeWeights, ChangeWeightsInput{ZoneID: obs.ZoneID, From: obs.From, To: obs.To, FromWeight: w[0], ToWeight: w[1]})
		requireAppError(t, err, ErrBadInput)
	}
	require.Empty(t, s.sentBatches(), "nothing unsafe reaches Route 53")
}

func TestChangeWeightsThrottlingRetriesSameBatch(t *testing.T) {
	s := newSim(t, simOptions{})
	r := &Route53{Client: s.route53(t), ThrottleBackoff: time.Millisecond}
	env := activityEnv(r)
	obs, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	_, err = s.faults.Add(control.Fault{Target: "aws:route53:ChangeResourceRecordSets", Kind: control.KindThrottle, Rate: 1, Count: 2})
	require.NoError(t, err)

	_, err = env.ExecuteActivity(r.ChangeWeights, ChangeWeightsInput{ZoneID: obs.ZoneID, From: obs.From, To: obs.To, FromWeight: 90, ToWeight: 10, Comment: "step 1", Base: BaseLastSeen})
	require.NoError(t, err)
	batches := s.sentBatches()
	require.Len(t, batches, 3, "two throttled attempts and one that went through")
	require.Equal(t, batches[0], batches[1])
	require.Equal(t, batches[0], batches[2], "a retry resends the identical batch")
	results := []string{}
	for _, c := range s.srv.Calls(control.CallFilter{Operation: "ChangeResourceRecordSets"}) {
		results = append(results, c.Result)
	}
	require.Equal(t, []string{"Throttling", "Throttling", "ok"}, results)
}

func TestChangeWeightsThrottledTooLongIsRetryable(t *testing.T) {
	s := newSim(t, simOptions{})
	r := &Route53{Client: s.route53(t), ThrottleBackoff: time.Millisecond}
	env := activityEnv(r)
	obs, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	_, err = s.faults.Add(control.Fault{Target: "aws:route53:ChangeResourceRecordSets", Kind: control.KindThrottle, Rate: 1})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(r.ChangeWeights, ChangeWeightsInput{ZoneID: obs.ZoneID, From: obs.From, To: obs.To, FromWeight: 90, ToWeight: 10, Base: BaseLastSeen})
	ae := requireAppError(t, err, ErrThrottled)
	require.False(t, ae.NonRetryable(), "the activity's RetryPolicy takes over")
	batches := s.sentBatches()
	require.Len(t, batches, 6)
	for _, b := range batches {
		require.Equal(t, batches[0], b)
	}
}

func TestWaitInsync(t *testing.T) {
	s := newSim(t, simOptions{insync: 200 * time.Millisecond})
	r := &Route53{Client: s.route53(t)}
	env := activityEnv(r)
	obs, err := preflight(t, env, r, shopInput())
	require.NoError(t, err)
	v, err := env.ExecuteActivity(r.ChangeWeights, ChangeWeightsInput{ZoneID: obs.ZoneID, From: obs.From, To: obs.To, FromWeight: 50, ToWeight: 50, Base: BaseLastSeen})
	require.NoError(t, err)
	var ch ChangeWeightsOutput
	require.NoError(t, v.Get(&ch))
	require.Equal(t, "PENDING", ch.Status)

	v, err = env.ExecuteActivity(r.WaitInsync, WaitInsyncInput{ChangeID: ch.ChangeID, PollInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	var out WaitInsyncOutput
	require.NoError(t, v.Get(&out))
	require.Equal(t, "INSYNC", out.Status)
	require.Greater(t, out.Polls, 1, "the change was PENDING at first")

	_, err = env.ExecuteActivity(r.WaitInsync, WaitInsyncInput{ChangeID: "/change/CNOSUCHCHANGE", PollInterval: time.Millisecond})
	ae := requireAppError(t, err, ErrNoSuchChange)
	require.True(t, ae.NonRetryable())
}

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
