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
	appCounts    func(region string, from, to time.Time) (int64, int64, bool)
}

func newSim(t *testing.T, o simOptions) *sim {
	t.Helper()
	topo := topology.Default()
	s := &sim{faults: control.NewRegistry(topo.Regions, 1)}
	s.srv = awssim.New(awssim.Options{
		Regions: topo.Regions, Faults: s.faults, Route53InsyncDelay: o.insync,
		AppHealthy: o.appHealthy, AppErrorRate: o.appErrorRate, AppCounts: o.appCounts,
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
