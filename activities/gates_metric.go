package activities

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// MetricCheck is a CloudWatch metric, or a metric-math expression over metrics, whose
// latest complete period must meet Condition.
type MetricCheck struct {
	Region string
	// Metrics are read with GetMetricData. With no Expression there is exactly one, and it
	// is the value; with one, they are its inputs.
	Metrics    []MetricQuery
	Expression string
	Period     time.Duration
	Condition  Condition
}

// MetricQuery is one metric and its statistic.
type MetricQuery struct {
	ID         string
	Namespace  string
	MetricName string
	Dimensions map[string]string
	Statistic  string
}

// MetricStatistics are the statistics a metric gate may read.
var MetricStatistics = []string{"Average", "Sum", "Minimum", "Maximum", "SampleCount"}

// metricPeriods is how many periods back a gate reads: the latest datapoint in them is the
// value, so a metric that publishes with a delay of a period or two still has one.
const metricPeriods = 5

// metric reads the latest complete period. The window ends at a period boundary, so the
// latest datapoint covers a whole period rather than the few seconds of the current one.
// No datapoint, or CloudWatch not answering, is inconclusive; a request CloudWatch refuses
// as invalid is a configuration error.
func (g *Gates) metric(ctx context.Context, m MetricCheck) (Verdict, string, error) {
	if g.CloudWatch == nil {
		return VerdictFail, "", configErr("cloudwatch metric: the worker has no CloudWatch clients")
	}
	c := g.CloudWatch(m.Region)
	if c == nil {
		return VerdictFail, "", configErr("cloudwatch metric: no CloudWatch client for region %q", m.Region)
	}
	period := m.Period
	if period < time.Second {
		period = time.Minute
	}
	end := time.Now().UTC().Truncate(period)
	in := &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(end.Add(-metricPeriods * period)),
		EndTime:   aws.Time(end),
		ScanBy:    cwtypes.ScanByTimestampDescending,
	}
	resultID := ""
	for _, q := range m.Metrics {
		dims := make([]cwtypes.Dimension, 0, len(q.Dimensions))
		for _, k := range slices.Sorted(maps.Keys(q.Dimensions)) {
			dims = append(dims, cwtypes.Dimension{Name: aws.String(k), Value: aws.String(q.Dimensions[k])})
		}
		in.MetricDataQueries = append(in.MetricDataQueries, cwtypes.MetricDataQuery{
			Id: aws.String(q.ID),
			MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{Namespace: aws.String(q.Namespace), MetricName: aws.String(q.MetricName), Dimensions: dims},
				Period: aws.Int32(int32(period / time.Second)),
				Stat:   aws.String(q.Statistic),
			},
			ReturnData: aws.Bool(m.Expression == ""),
		})
		resultID = q.ID
	}
	if m.Expression != "" {
		resultID = "ferry_gate"
		in.MetricDataQueries = append(in.MetricDataQueries, cwtypes.MetricDataQuery{
			Id: aws.String(resultID), Expression: aws.String(m.Expression), ReturnData: aws.Bool(true),
		})
	}
	what := m.Expression
	if what == "" && len(m.Metrics) > 0 {
		q := m.Metrics[0]
		what = fmt.Sprintf("%s %s/%s", q.Statistic, q.Namespace, q.MetricName)
	}
	out, err := c.GetMetricData(ctx, in)
	if err != nil {
		if ctx.Err() != nil {
			return VerdictFail, "", ctx.Err()
		}
		switch apiCode(err) {
		case "InvalidParameterValue", "InvalidParameterCombination", "MissingParameter", "ValidationError":
			return VerdictFail, "", configErr("cloudwatch metric %s in %s: %v", what, m.Region, err)
		}
		return VerdictInconclusive, fmt.Sprintf("cloudwatch in %s could not answer: %v", m.Region, err), nil
	}
	for _, r := range out.MetricDataResults {
		if aws.ToString(r.Id) != resultID {
			continue
		}
		latest := -1
		for i, t := range r.Timestamps {
			if latest < 0 || t.After(r.Timestamps[latest]) {
				latest = i
			}
		}
		if latest < 0 || latest >= len(r.Values) {
			break
		}
		v, at := r.Values[latest], r.Timestamps[latest]
		detail := fmt.Sprintf("%s = %.4g over the %s from %s, want %s", what, v, period, at.Format("15:04:05"), m.Condition)
		if m.Condition.Met(v) {
			return VerdictPass, detail, nil
		}
		return VerdictFail, detail, nil
	}
	return VerdictInconclusive, fmt.Sprintf("%s in %s: no datapoint in the last %d periods of %s", what, m.Region, metricPeriods, period), nil
}
