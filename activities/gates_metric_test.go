package activities

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/sandbox/control"
)

// counts is a client population's record the test writes: per-second requests and errors
// of eu-west-2, as the sandbox's apps keep them.
type counts struct {
	mu        sync.Mutex
	errorRate float64
	silent    bool
}

func (c *counts) read(region string, from, to time.Time) (int64, int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if region != "eu-west-2" {
		return 0, 0, false
	}
	if c.silent {
		return 0, 0, true
	}
	n := int64(to.Sub(from) / time.Second * 100)
	return n, int64(float64(n) * c.errorRate), true
}

func (c *counts) set(rate float64, silent bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errorRate, c.silent = rate, silent
}

// The metric gate reads the sandbox's CloudWatch over the SDK's wire protocol: a single
// metric and a metric-math ratio give the same verdicts, no datapoint is inconclusive,
// CloudWatch refusing the request is a config error and not answering is inconclusive.
func TestCloudWatchMetricGate(t *testing.T) {
	c := &counts{errorRate: 0.01}
	s := newSim(t, simOptions{appCounts: c.read})
	g := &Gates{CloudWatch: s.cloudwatch(t)}
	dims := map[string]string{"Region": "eu-west-2"}
	lt := func(v float64) Condition { return Condition{Op: "<", Value: v} }
	checks := []GateCheck{
		{Name: "rate", Metric: &MetricCheck{Region: "eu-west-2", Period: time.Second, Condition: lt(0.05),
			Metrics: []MetricQuery{{ID: "rate", Namespace: "Sandbox/App", MetricName: "5XXErrorRate", Dimensions: dims, Statistic: "Average"}}}},
		{Name: "ratio", Metric: &MetricCheck{Region: "eu-west-2", Period: time.Second, Condition: lt(0.05), Expression: "errors / requests",
			Metrics: []MetricQuery{
				{ID: "errors", Namespace: "Sandbox/App", MetricName: "Errors", Dimensions: dims, Statistic: "Sum"},
				{ID: "requests", Namespace: "Sandbox/App", MetricName: "Requests", Dimensions: dims, Statistic: "Sum"},
			}}},
	}
	verdicts := func() []Verdict {
		out, err := evaluate(t, g, checks...)
		require.NoError(t, err)
		return []Verdict{out.Results[0].Verdict, out.Results[1].Verdict}
	}
	require.Equal(t, []Verdict{VerdictPass, VerdictPass}, verdicts())
	c.set(0.5, false)
	require.Equal(t, []Verdict{VerdictFail, VerdictFail}, verdicts())
	c.set(0, true)
	require.Equal(t, []Verdict{VerdictInconclusive, VerdictInconclusive}, verdicts(), "no requests: no datapoint")

	// A metric that does not exist has no datapoints: inconclusive, not pass.
	out, err := evaluate(t, g, GateCheck{Name: "typo", Metric: &MetricCheck{Region: "eu-west-2", Period: time.Second, Condition: lt(1),
		Metrics: []MetricQuery{{ID: "m", Namespace: "Sandbox/App", MetricName: "5XXErrorRat", Dimensions: dims, Statistic: "Average"}}}})
	require.NoError(t, err)
	require.Equal(t, VerdictInconclusive, out.Results[0].Verdict, out.Results[0].Detail)

	// CloudWatch refuses an expression it cannot evaluate: nothing to retry.
	_, err = evaluate(t, g, GateCheck{Name: "bad math", Metric: &MetricCheck{Region: "eu-west-2", Period: time.Second, Condition: lt(1), Expression: "errors /",
		Metrics: checks[1].Metric.Metrics}})
	requireAppError(t, err, ErrGateConfig)

	// CloudWatch failing (an injected 500) is inconclusive: the gate cannot vouch either way.
	c.set(0.01, false)
	_, err = s.faults.Add(control.Fault{Target: "aws:cloudwatch:GetMetricData", Kind: control.KindError, Rate: 1})
	require.NoError(t, err)
	out, err = evaluate(t, g, checks[0])
	require.NoError(t, err)
	require.Equal(t, VerdictInconclusive, out.Results[0].Verdict, out.Results[0].Detail)
}

func TestParseCondition(t *testing.T) {
	for in, want := range map[string]Condition{
		"< 0.01": {"<", 0.01}, "<=5": {"<=", 5}, ">= 100": {">=", 100}, "== 0": {"==", 0}, "!= 1": {"!=", 1}, " > -2 ": {">", -2},
	} {
		got, err := ParseCondition(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "0.01", "< ", "<< 1", "< NaN", "=< 1", "< 1%"} {
		_, err := ParseCondition(bad)
		require.Error(t, err, bad)
	}
	require.True(t, Condition{"<", 0.01}.Met(0.005))
	require.False(t, Condition{"<", 0.01}.Met(0.01))
}
