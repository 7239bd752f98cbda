package awssim

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/sandbox/control"
)

func weighted(action types.ChangeAction, id string, w int64, ip string) types.Change {
	return types.Change{Action: action, ResourceRecordSet: &types.ResourceRecordSet{
		Name: aws.String("www.shop.example"), Type: types.RRTypeA, SetIdentifier: aws.String(id), Weight: aws.Int64(w),
		TTL: aws.Int64(60), ResourceRecords: []types.ResourceRecord{{Value: aws.String(ip)}},
	}}
}

func weights(t *testing.T, r *route53.Client, zone string) map[string]int64 {
	t.Helper()
	out, err := r.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zone)})
	require.NoError(t, err)
	m := map[string]int64{}
	for _, rs := range out.ResourceRecordSets {
		if rs.SetIdentifier != nil {
			m[*rs.SetIdentifier] = *rs.Weight
		}
	}
	return m
}

func TestRoute53ShiftAtomicAndInsync(t *testing.T) {
	srv, c, _ := startSim(t, simOpts{insync: 100 * time.Millisecond})
	r := c.r53()
	zone, ok := srv.ZoneID("shop.example")
	require.True(t, ok)
	assert.Equal(t, map[string]int64{"eu-west-1": 100, "eu-west-2": 0}, weights(t, r, zone))

	ch, err := r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{
			weighted(types.ChangeActionUpsert, "eu-west-1", 90, "198.51.100.10"),
			weighted(types.ChangeActionUpsert, "eu-west-2", 10, "198.51.100.20"),
		}}})
	require.NoError(t, err)
	assert.Equal(t, types.ChangeStatusPending, ch.ChangeInfo.Status)
	eventually(t, 5*time.Second, func() bool {
		g, err := r.GetChange(ctx, &route53.GetChangeInput{Id: ch.ChangeInfo.Id})
		return err == nil && g.ChangeInfo.Status == types.ChangeStatusInsync
	}, "change INSYNC")
	assert.Equal(t, map[string]int64{"eu-west-1": 90, "eu-west-2": 10}, weights(t, r, zone))

	// One bad change (CREATE of an existing set) fails the whole batch: the UPSERT with it
	// must not be applied.
	_, err = r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{
			weighted(types.ChangeActionUpsert, "eu-west-2", 50, "198.51.100.20"),
			weighted(types.ChangeActionCreate, "eu-west-1", 50, "198.51.100.10"),
		}}})
	var icb *types.InvalidChangeBatch
	require.ErrorAs(t, err, &icb)
	assert.Contains(t, err.Error(), "Tried to create resource record set [name='www.shop.example.', type='A', set-identifier='eu-west-1'] but it already exists")
	assert.Equal(t, map[string]int64{"eu-west-1": 90, "eu-west-2": 10}, weights(t, r, zone))

	_, err = r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{weighted(types.ChangeActionDelete, "nope", 1, "198.51.100.30")}}})
	assert.Equal(t, "InvalidChangeBatch", apiCode(err))
	assert.Contains(t, err.Error(), "but it was not found")

	_, err = r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{weighted(types.ChangeActionUpsert, "eu-west-1", 256, "198.51.100.10")}}})
	assert.Equal(t, "InvalidInput", apiCode(err))

	_, err = r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String("Z0NOTTHERE"),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{weighted(types.ChangeActionUpsert, "eu-west-1", 1, "198.51.100.10")}}})
	assert.Equal(t, "NoSuchHostedZone", apiCode(err))

	calls := srv.Calls(control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets"})
	require.Len(t, calls, 5)
	assert.Equal(t, "ok", calls[0].Result)
	assert.Equal(t, "10", calls[0].Params["Change.2.Weight"])
	assert.Equal(t, "InvalidChangeBatch", calls[1].Result)
}

func TestRoute53PagingAndZones(t *testing.T) {
	_, c, _ := startSim(t, simOpts{})
	r := c.r53()
	z, err := r.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("paging.example"), CallerReference: aws.String("p1")})
	require.NoError(t, err)
	var changes []types.Change
	for i := 0; i < 7; i++ {
		changes = append(changes, types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: &types.ResourceRecordSet{
			Name: aws.String(fmt.Sprintf("h%d.paging.example", i)), Type: types.RRTypeA, TTL: aws.Int64(30),
			ResourceRecords: []types.ResourceRecord{{Value: aws.String("192.0.2.1")}}}})
	}
	_, err = r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: z.HostedZone.Id, ChangeBatch: &types.ChangeBatch{Changes: changes}})
	require.NoError(t, err)
	var names []string
	p := route53.NewListResourceRecordSetsPaginator(r, &route53.ListResourceRecordSetsInput{HostedZoneId: z.HostedZone.Id, MaxItems: aws.Int32(3)})
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		require.NoError(t, err)
		pages++
		for _, rs := range out.ResourceRecordSets {
			names = append(names, *rs.Name+" "+string(rs.Type))
		}
	}
	assert.Equal(t, 3, pages)
	assert.Equal(t, []string{"paging.example. NS", "paging.example. SOA", "h0.paging.example. A", "h1.paging.example. A",
		"h2.paging.example. A", "h3.paging.example. A", "h4.paging.example. A", "h5.paging.example. A", "h6.paging.example. A"}, names)

	// Starting mid-zone: at a name, and at a name and type, the listing begins there.
	from, err := r.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: z.HostedZone.Id,
		StartRecordName: aws.String("h3.paging.example"), StartRecordType: types.RRTypeA, MaxItems: aws.Int32(2)})
	require.NoError(t, err)
	require.Len(t, from.ResourceRecordSets, 2)
	assert.Equal(t, "h3.paging.example.", *from.ResourceRecordSets[0].Name)
	assert.Equal(t, "h5.paging.example.", aws.ToString(from.NextRecordName))
	from, err = r.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: z.HostedZone.Id,
		StartRecordName: aws.String("h35.paging.example")}) // absent: the next name after it
	require.NoError(t, err)
	assert.Equal(t, "h4.paging.example.", *from.ResourceRecordSets[0].Name)

	byName, err := r.ListHostedZonesByName(ctx, &route53.ListHostedZonesByNameInput{DNSName: aws.String("shop.example")})
	require.NoError(t, err)
	assert.Equal(t, "shop.example.", *byName.HostedZones[0].Name)
	_, err = r.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String("ZNOPE")})
	assert.Equal(t, "NoSuchHostedZone", apiCode(err))
}

func TestRoute53LimitsAndPriorRequest(t *testing.T) {
	srv, _, c := startSim(t, simOpts{limits: true, prior: true, insync: time.Hour})
	r := c.r53()
	zone, _ := srv.ZoneID("shop.example")
	batch := &types.ChangeBatch{Changes: []types.Change{weighted(types.ChangeActionUpsert, "eu-west-2", 1, "198.51.100.20")}}
	_, err := r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone), ChangeBatch: batch})
	require.NoError(t, err)
	_, err = r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone), ChangeBatch: batch})
	assert.Equal(t, "PriorRequestNotComplete", apiCode(err))
	var code string
	for i := 0; i < 20 && code == ""; i++ {
		_, err = r.ListHostedZones(ctx, &route53.ListHostedZonesInput{})
		code = apiCode(err)
	}
	assert.Equal(t, "Throttling", code)
}

func TestHealthChecksAndAlarmsFollowApps(t *testing.T) {
	healthy := map[string]bool{"eu-west-1": true, "eu-west-2": false}
	rate := map[string]float64{"eu-west-1": 0.0, "eu-west-2": 0.5}
	_, c, _ := startSim(t, simOpts{
		appHealthy:   func(r string) bool { return healthy[r] },
		appErrorRate: func(r string) (float64, bool) { v, ok := rate[r]; return v, ok },
	})
	r := c.r53()
	hcs, err := r.ListHealthChecks(ctx, &route53.ListHealthChecksInput{})
	require.NoError(t, err)
	require.Len(t, hcs.HealthChecks, 2)
	st := func(id string) string {
		out, err := r.GetHealthCheckStatus(ctx, &route53.GetHealthCheckStatusInput{HealthCheckId: aws.String(id)})
		require.NoError(t, err)
		return *out.HealthCheckObservations[0].StatusReport.Status
	}
	assert.Contains(t, st("11111111-1111-4111-8111-111111111111"), "Success")
	assert.Contains(t, st("22222222-2222-4222-8222-222222222222"), "Failure")

	cw := c.cw("eu-west-2")
	out, err := cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: []string{"shop-eu-west-2-5xx"}})
	require.NoError(t, err)
	require.Len(t, out.MetricAlarms, 1)
	assert.Equal(t, cwtypes.StateValueAlarm, out.MetricAlarms[0].StateValue)
	_, err = cw.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("shop-eu-west-2-5xx"), StateValue: cwtypes.StateValueOk, StateReason: aws.String("test")})
	require.NoError(t, err)
	out, err = cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{StateValue: cwtypes.StateValueOk})
	require.NoError(t, err)
	require.Len(t, out.MetricAlarms, 1)
	_, err = cw.SetAlarmState(ctx, &cloudwatch.SetAlarmStateInput{AlarmName: aws.String("nope"), StateValue: cwtypes.StateValueOk, StateReason: aws.String("x")})
	assert.Equal(t, "ResourceNotFound", apiCode(err))
	_, err = cw.PutMetricAlarm(ctx, &cloudwatch.PutMetricAlarmInput{AlarmName: aws.String("new"), MetricName: aws.String("m"), Namespace: aws.String("n"),
		Threshold: aws.Float64(1), ComparisonOperator: cwtypes.ComparisonOperatorGreaterThanThreshold, EvaluationPeriods: aws.Int32(1), Period: aws.Int32(60), Statistic: cwtypes.StatisticAverage})
	require.NoError(t, err)
	out, err = cw.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNamePrefix: aws.String("ne")})
	require.NoError(t, err)
	require.Len(t, out.MetricAlarms, 1)
	assert.Equal(t, 1.0, *out.MetricAlarms[0].Threshold)
}

func TestRequestWithoutScopeIsRejected(t *testing.T) {
	srv, c, _ := startSim(t, simOpts{})
	_ = srv
	resp, err := httpPost(c.endpoint, "Action=DescribeImages&Version=2016-11-15")
	require.NoError(t, err)
	assert.Equal(t, 403, resp.status)
	assert.Contains(t, resp.body, "MissingAuthenticationToken")
}

// A DELETE must name the record set exactly as it is now (weight, TTL, values, health check,
// alias), or Route 53 refuses the whole batch; a DELETE and a CREATE of the same set in one
// batch replace it atomically. This is what makes a change guarded by what was last seen.
func TestRoute53DeleteMustMatchCurrentValues(t *testing.T) {
	srv, c, _ := startSim(t, simOpts{})
	r := c.r53()
	zone, _ := srv.ZoneID("shop.example")
	const hc = "22222222-2222-4222-8222-222222222222"
	current := func() *types.ResourceRecordSet {
		return &types.ResourceRecordSet{Name: aws.String("www.shop.example."), Type: types.RRTypeA, SetIdentifier: aws.String("eu-west-2"),
			Weight: aws.Int64(0), TTL: aws.Int64(60), ResourceRecords: []types.ResourceRecord{{Value: aws.String("198.51.100.20")}}, HealthCheckId: aws.String(hc)}
	}
	change := func(changes ...types.Change) error {
		_, err := r.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zone),
			ChangeBatch: &types.ChangeBatch{Changes: changes}})
		return err
	}
	replace := func(seen *types.ResourceRecordSet, weight int64) error {
		next := *seen
		next.Weight = aws.Int64(weight)
		return change(types.Change{Action: types.ChangeActionDelete, ResourceRecordSet: seen},
			types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: &next})
	}
	for name, stale := range map[string]func(rs *types.ResourceRecordSet){
		"weight":       func(rs *types.ResourceRecordSet) { rs.Weight = aws.Int64(1) },
		"TTL":          func(rs *types.ResourceRecordSet) { rs.TTL = aws.Int64(300) },
		"values":       func(rs *types.ResourceRecordSet) { rs.ResourceRecords[0].Value = aws.String("203.0.113.1") },
		"health check": func(rs *types.ResourceRecordSet) { rs.HealthCheckId = nil },
	} {
		seen := current()
		stale(seen)
		err := replace(seen, 10)
		require.Equal(t, "InvalidChangeBatch", apiCode(err), name)
		require.Contains(t, err.Error(), "Tried to delete resource record set [name='www.shop.example.', type='A', set-identifier='eu-west-2'] but the values provided do not match the current values", name)
	}
	assert.Equal(t, map[string]int64{"eu-west-1": 100, "eu-west-2": 0}, weights(t, r, zone), "a refused batch changes nothing")
	require.NoError(t, replace(current(), 10), "DELETE as it is, CREATE with the new weight: one atomic batch")
	assert.Equal(t, map[string]int64{"eu-west-1": 100, "eu-west-2": 10}, weights(t, r, zone))

	// Any other repeat of a set in one batch is refused.
	up := types.Change{Action: types.ChangeActionUpsert, ResourceRecordSet: current()}
	err := change(up, up)
	require.Equal(t, "InvalidChangeBatch", apiCode(err))
	assert.Contains(t, err.Error(), "invalid set of changes")

	// Alias targets are compared too.
	alias := func(dns string) *types.ResourceRecordSet {
		return &types.ResourceRecordSet{Name: aws.String("api.shop.example."), Type: types.RRTypeA, SetIdentifier: aws.String("a"), Weight: aws.Int64(1),
			AliasTarget: &types.AliasTarget{DNSName: aws.String(dns), HostedZoneId: aws.String("Z32O12XQLNTSW2"), EvaluateTargetHealth: true}}
	}
	require.NoError(t, change(types.Change{Action: types.ChangeActionCreate, ResourceRecordSet: alias("lb-1.eu-west-2.elb.amazonaws.com")}))
	err = replace(alias("lb-2.eu-west-2.elb.amazonaws.com"), 2)
	require.Equal(t, "InvalidChangeBatch", apiCode(err))
	assert.Contains(t, err.Error(), "do not match the current values")
	require.NoError(t, replace(alias("LB-1.eu-west-2.elb.amazonaws.com"), 2), "alias names compare as DNS names")
}
