package sandbox

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/topology"
)

func eventually(t *testing.T, within time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", within, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func start(t *testing.T) (*Sandbox, *control.Client) {
	t.Helper()
	topo := topology.Default()
	topo.Traffic.RequestsPerSec = 200
	sb, err := Start(context.Background(), Options{Addr: "127.0.0.1:0", Topology: topo, Fast: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sb.Close()) })
	return sb, &control.Client{BaseURL: sb.Addr()}
}

func TestTrafficFollowsWeightsAndFaults(t *testing.T) {
	sb, cc := start(t)
	ctx := context.Background()
	traffic := func() control.Traffic {
		tr, err := cc.Traffic(ctx)
		require.NoError(t, err)
		return tr
	}
	eventually(t, 10*time.Second, func() bool { return traffic().Regions["eu-west-1"].Total >= 50 }, "clients reach eu-west-1")
	assert.Zero(t, traffic().Regions["eu-west-2"].Total, "weight 0 gets nothing")

	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	require.NoError(t, err)
	r53 := route53.NewFromConfig(cfg, func(o *route53.Options) { o.BaseEndpoint = aws.String(sb.Addr()) })
	zone, _ := sb.AWS().ZoneID("shop.example.")
	// An UPSERT replaces the whole set, so the health check id must be sent again.
	set := func(id string, w int64, ip, hc string) types.Change {
		return types.Change{Action: types.ChangeActionUpsert, ResourceRecordSet: &types.ResourceRecordSet{
			Name: aws.String("www.shop.example."), Type: types.RRTypeA, SetIdentifier: aws.String(id), Weight: aws.Int64(w),
			TTL: aws.Int64(60), ResourceRecords: []types.ResourceRecord{{Value: aws.String(ip)}}, HealthCheckId: aws.String(hc)}}
	}
	_, err = r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{
			set("eu-west-1", 0, "198.51.100.10", "11111111-1111-4111-8111-111111111111"),
			set("eu-west-2", 100, "198.51.100.20", "22222222-2222-4222-8222-222222222222")}}})
	require.NoError(t, err)
	eventually(t, 10*time.Second, func() bool { return traffic().Regions["eu-west-2"].Total >= 50 }, "traffic moves to eu-west-2")
	assert.Zero(t, traffic().Regions["eu-west-2"].Errors)

	f, err := cc.AddFault(ctx, control.Fault{Target: "app:eu-west-2", Kind: "unhealthy", Rate: 1})
	require.NoError(t, err)
	assert.NotEmpty(t, f.ID)
	resp, err := http.Get(sb.Addr() + "/_apps/eu-west-2/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	resp, err = http.Get(sb.Addr() + "/_apps/eu-west-2/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "requests fail at the fault rate")
	// Route 53 leaves out record sets whose health check fails (unless all fail), so the
	// clients go back to eu-west-1 although its weight is 0.
	before := traffic().Regions["eu-west-1"].Total
	eventually(t, 10*time.Second, func() bool { return traffic().Regions["eu-west-1"].Total >= before+50 }, "failover to eu-west-1")

	hc, err := r53.GetHealthCheckStatus(ctx, &route53.GetHealthCheckStatusInput{HealthCheckId: aws.String("22222222-2222-4222-8222-222222222222")})
	require.NoError(t, err)
	assert.Contains(t, *hc.HealthCheckObservations[0].StatusReport.Status, "Failure")

	faults, err := cc.ListFaults(ctx)
	require.NoError(t, err)
	require.Len(t, faults, 1)
	require.NoError(t, cc.DeleteFault(ctx, f.ID))
	require.Error(t, cc.DeleteFault(ctx, f.ID))

	calls, err := cc.Calls(ctx, control.CallFilter{Operation: "ChangeResourceRecordSets"})
	require.NoError(t, err)
	require.Len(t, calls, 1)
	assert.Equal(t, "100", calls[0].Params["Change.2.Weight"])

	// The per-second series is the same record as the totals: every request sent so far
	// is in some second of the last minute, and every failed one.
	now := time.Now()
	series, err := cc.Series(ctx, now.Add(-time.Minute), now.Add(time.Second))
	require.NoError(t, err)
	tr := traffic()
	for _, region := range []string{"eu-west-1", "eu-west-2"} {
		var req, errs int64
		for _, p := range series.Regions[region] {
			req += p.Requests
			errs += p.Errors
		}
		assert.InDelta(t, tr.Regions[region].Total, req, float64(tr.Regions[region].Total)*0.1+20, region)
		assert.LessOrEqual(t, req, traffic().Regions[region].Total, region)
		// Every failure (the fault's, while Route 53 still answered eu-west-2) is in it too.
		assert.Equal(t, tr.Regions[region].Errors, errs, region)
	}
	_, err = cc.Series(ctx, now, now.Add(-time.Second))
	var ae *control.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "to", ae.Field)
}

func TestControlRejectsBadFaults(t *testing.T) {
	_, cc := start(t)
	ctx := context.Background()
	cases := []struct {
		f     control.Fault
		field string
	}{
		{control.Fault{Target: "aws:ec2:CopyImage", Kind: "explode", Rate: 1}, "kind"},
		{control.Fault{Target: "aws:ec2:CopyImage", Kind: "throttle", Rate: 2}, "rate"},
		{control.Fault{Target: "gcp:compute", Kind: "throttle", Rate: 1}, "target"},
		{control.Fault{Target: "app:eu-west-9", Kind: "unhealthy", Rate: 1}, "target"},
		{control.Fault{Target: "mongo:rs0:27017", Kind: "down", Rate: 1}, "target"}, // no MongoDB simulator wired
	}
	for _, c := range cases {
		_, err := cc.AddFault(ctx, c.f)
		var ae *control.APIError
		require.True(t, errors.As(err, &ae), "%v", c.f)
		assert.Equal(t, http.StatusBadRequest, ae.Status)
		assert.Equal(t, c.field, ae.Field, ae.Error())
	}
	require.NoError(t, cc.ClearFaults(ctx))
}

func TestMongoFaultEndsOnItsDuration(t *testing.T) {
	ctx := context.Background()
	topo := topology.Default()
	for i := range topo.Mongo.ReplicaSets[0].Members {
		topo.Mongo.ReplicaSets[0].Members[i].Port = 0
	}
	mongo, err := StartMongo(ctx, topo, true, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = mongo.Close() })
	sb, err := Start(ctx, Options{Addr: "127.0.0.1:0", Topology: topo, Fast: true, Mongo: mongo})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	cc := &control.Client{BaseURL: sb.Addr()}

	rs := mongo.Cluster("rs0")
	secondary := rs.Members()[2]
	require.True(t, secondary.Up)
	port := secondary.Host[len("127.0.0.1:"):]
	_, err = cc.AddFault(ctx, control.Fault{Target: "mongo:rs0:" + port, Kind: "down", DurationSec: 0.5})
	require.NoError(t, err)
	up := func() bool {
		for _, m := range rs.Members() {
			if m.Host == secondary.Host {
				return m.Up
			}
		}
		return false
	}
	require.False(t, up(), "the member is down while the fault lasts")
	// The member comes back on its own, without anything listing or hitting faults.
	eventually(t, 5*time.Second, up, "the member back up after the fault's 0.5s")

	// A count means nothing for a state fault, so it is refused rather than ignored.
	_, err = cc.AddFault(ctx, control.Fault{Target: "mongo:rs0:" + port, Kind: "down", Count: 3})
	var ae *control.APIError
	require.True(t, errors.As(err, &ae), "%v", err)
	assert.Equal(t, "count", ae.Field, ae.Error())
}

// TestMongoCommandErrorThroughTheControlAPI: a command-error fault added over the control
// API fails the command, counts its firings in the registry and goes away once used up.
func TestMongoCommandErrorThroughTheControlAPI(t *testing.T) {
	ctx := context.Background()
	topo := topology.Default()
	for i := range topo.Mongo.ReplicaSets[0].Members {
		topo.Mongo.ReplicaSets[0].Members[i].Port = 0
	}
	ms, err := StartMongo(ctx, topo, true, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ms.Close() })
	sb, err := Start(ctx, Options{Addr: "127.0.0.1:0", Topology: topo, Fast: true, Mongo: ms})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	cc := &control.Client{BaseURL: sb.Addr()}

	rs := ms.Cluster("rs0")
	cl, err := mongo.Connect(options.Client().ApplyURI(rs.URI()).SetServerSelectionTimeout(10 * time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Disconnect(context.Background()) })
	getConfig := func() error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return cl.Database("admin").RunCommand(cctx, bson.D{{Key: "replSetGetConfig", Value: 1}}).Err()
	}
	require.NoError(t, getConfig())

	f, err := cc.AddFault(ctx, control.Fault{Target: "mongo:rs0:*", Kind: control.KindCommandError, Command: "replSetGetConfig", After: 1, Count: 2})
	require.NoError(t, err)
	require.NoError(t, getConfig(), "after 1 lets the first through")
	listed := func() []control.Fault {
		l, err := cc.ListFaults(ctx)
		require.NoError(t, err)
		return l
	}
	require.Len(t, listed(), 1)
	assert.Zero(t, listed()[0].Fired)
	err = getConfig()
	var ce mongo.CommandError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, int32(13), ce.Code)
	assert.Equal(t, "Unauthorized", ce.Name)
	require.Len(t, listed(), 1)
	assert.Equal(t, 1, listed()[0].Fired)
	assert.Equal(t, 1, listed()[0].Remaining)
	require.ErrorAs(t, getConfig(), &ce)
	assert.Empty(t, listed(), "a used-up command-error goes away")
	require.NoError(t, getConfig())
	var cleared bool
	for _, e := range rs.Events() {
		cleared = cleared || (e.Kind == "fault-cleared" && e.Fault.ID == f.ID)
	}
	assert.True(t, cleared, "the simulator was told")

	// The simulator's refusals keep their field.
	for _, c := range []struct {
		f     control.Fault
		field string
	}{
		{control.Fault{Target: "mongo:rs0:*", Kind: control.KindCommandError, Command: "noSuchCommand"}, "command"},
		{control.Fault{Target: "mongo:rs0:*", Kind: control.KindCommandError}, "command"},
		{control.Fault{Target: "mongo:rs0:*", Kind: "down", After: 2}, "after"},
		{control.Fault{Target: "mongo:rs0:*", Kind: "melt"}, "kind"},
		{control.Fault{Target: "mongo:rs9:*", Kind: "down"}, "target"},
	} {
		_, err := cc.AddFault(ctx, c.f)
		var ae *control.APIError
		require.True(t, errors.As(err, &ae), "%+v: %v", c.f, err)
		assert.Equal(t, http.StatusBadRequest, ae.Status)
		assert.Equal(t, c.field, ae.Field, ae.Error())
	}
	assert.Empty(t, listed())
}
