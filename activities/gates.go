package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"go.temporal.io/sdk/temporal"
)

// Gates evaluates the health checks that guard a migration's dwells.
type Gates struct {
	// HTTP is used for HTTP probes and the sandbox control API. Nil gets a private client
	// with a 10s timeout (never http.DefaultClient, whose settings any package may change).
	HTTP *http.Client
	// Route53 reads health check status; nil refuses Route 53 health check gates.
	Route53 *route53.Client
	// CloudWatch returns a client for a region; nil refuses alarm and metric gates.
	CloudWatch func(region string) *cloudwatch.Client
}

// GateCheck is one gate to evaluate. Exactly one check field is set.
type GateCheck struct {
	Name          string
	HTTP          *HTTPCheck
	HealthCheckID string
	Alarm         *AlarmCheck
	Prometheus    *PrometheusCheck
	Metric        *MetricCheck
}

// Verdict is one evaluation's outcome.
type Verdict string

const (
	VerdictPass Verdict = "pass"
	VerdictFail Verdict = "fail"
	// VerdictInconclusive: the check could not say (no data, its source unreachable).
	// Each check defines it; an HTTP probe that cannot reach its target fails instead.
	VerdictInconclusive Verdict = "inconclusive"
)

// HTTPCheck is an HTTP GET that must answer ExpectStatus within Timeout.
type HTTPCheck struct {
	URL          string
	ExpectStatus int           // zero means 200
	Timeout      time.Duration // zero means 5s
}

// AlarmCheck names a CloudWatch alarm that must not be in ALARM.
type AlarmCheck struct {
	Name   string
	Region string
}

// EvaluateGatesInput lists the gates to evaluate.
type EvaluateGatesInput struct {
	Gates []GateCheck
}

// GateResult is one gate's evaluation. Healthy is Verdict == pass; it stays because
// histories recorded before verdicts carry only it.
type GateResult struct {
	Name    string
	Healthy bool
	Verdict Verdict
	Detail  string
	Time    time.Time
}

// EvaluateGatesOutput holds one result per gate, in input order.
type EvaluateGatesOutput struct {
	Results []GateResult
}

// gateConfigError marks a gate that cannot be evaluated as configured: retrying cannot help.
type gateConfigError struct{ msg string }

func (e *gateConfigError) Error() string { return e.msg }

func configErr(format string, args ...any) error {
	return &gateConfigError{fmt.Sprintf(format, args...)}
}

// EvaluateGates evaluates every gate concurrently. A failing check is a result (Healthy
// false), because deciding what a failure means is the workflow's job; the activity fails
// only when a gate is misconfigured (non-retryable GateConfig) or a cloud API could not be
// asked (retryable).
func (g *Gates) EvaluateGates(ctx context.Context, in EvaluateGatesInput) (EvaluateGatesOutput, error) {
	out := EvaluateGatesOutput{Results: make([]GateResult, len(in.Gates))}
	errs := make([]error, len(in.Gates))
	var wg sync.WaitGroup
	for i, gate := range in.Gates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			verdict, detail, err := g.evaluate(ctx, gate)
			out.Results[i] = GateResult{Name: gate.Name, Healthy: verdict == VerdictPass, Verdict: verdict, Detail: detail, Time: time.Now().UTC()}
			if err != nil {
				errs[i] = fmt.Errorf("gate %q: %w", gate.Name, err)
			}
		}()
	}
	wg.Wait()
	var cfg, other []error
	for _, err := range errs {
		var ce *gateConfigError
		switch {
		case err == nil:
		case errors.As(err, &ce):
			cfg = append(cfg, err)
		default:
			other = append(other, err)
		}
	}
	if len(cfg) > 0 {
		err := errors.Join(cfg...)
		return out, temporal.NewNonRetryableApplicationError(err.Error(), ErrGateConfig, err)
	}
	if len(other) > 0 {
		return out, errors.Join(other...)
	}
	return out, nil
}

func (g *Gates) evaluate(ctx context.Context, gate GateCheck) (Verdict, string, error) {
	n := 0
	for _, set := range []bool{gate.HTTP != nil, gate.HealthCheckID != "", gate.Alarm != nil, gate.Prometheus != nil, gate.Metric != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return VerdictFail, "", configErr("needs exactly one check (http, route53HealthCheck, cloudwatchAlarm, prometheus or cloudwatchMetric), has %d", n)
	}
	// The first three checks answer healthy or not; they have no inconclusive verdict.
	passFail := func(healthy bool, detail string, err error) (Verdict, string, error) {
		if healthy {
			return VerdictPass, detail, err
		}
		return VerdictFail, detail, err
	}
	switch {
	case gate.HTTP != nil:
		return passFail(g.probe(ctx, *gate.HTTP))
	case gate.HealthCheckID != "":
		return passFail(g.healthCheck(ctx, gate.HealthCheckID))
	case gate.Alarm != nil:
		return passFail(g.alarm(ctx, *gate.Alarm))
	case gate.Prometheus != nil:
		return g.prometheus(ctx, *gate.Prometheus)
	default:
		return g.metric(ctx, *gate.Metric)
	}
}

func (g *Gates) client() *http.Client {
	if g.HTTP != nil {
		return g.HTTP
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// probe GETs the URL; a transport error or unexpected status is an unhealthy result, since
// that is exactly what the probe exists to notice.
func (g *Gates) probe(ctx context.Context, p HTTPCheck) (bool, string, error) {
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false, "", configErr("http probe URL %q is not an absolute http(s) URL", p.URL)
	}
	expect := p.ExpectStatus
	if expect == 0 {
		expect = http.StatusOK
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return false, "", configErr("http probe %s: %v", p.URL, err)
	}
	start := time.Now()
	resp, err := g.client().Do(req)
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		return false, fmt.Sprintf("GET %s failed after %s: %v", p.URL, took, err), nil
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode != expect {
		return false, fmt.Sprintf("GET %s: %s in %s, want %d", p.URL, resp.Status, took, expect), nil
	}
	return true, fmt.Sprintf("GET %s: %s in %s", p.URL, resp.Status, took), nil
}

// healthCheck reads a Route 53 health check's checker observations. Route 53 itself counts
// an endpoint healthy when more than 18% of its checkers report success; the gate uses the
// same rule so it agrees with what DNS failover would do.
func (g *Gates) healthCheck(ctx context.Context, id string) (bool, string, error) {
	if g.Route53 == nil {
		return false, "", configErr("route53 health check %s: the worker has no Route 53 client", id)
	}
	out, err := g.Route53.GetHealthCheckStatus(ctx, &route53.GetHealthCheckStatusInput{HealthCheckId: aws.String(id)})
	if err != nil {
		var nh *r53types.NoSuchHealthCheck
		if errors.As(err, &nh) || apiCode(err) == "NoSuchHealthCheck" {
			return false, "", configErr("route53 health check %s does not exist; fix its healthCheckId", id)
		}
		return false, "", fmt.Errorf("get health check status %s: %w", id, err)
	}
	total, ok := len(out.HealthCheckObservations), 0
	var lastFailure string
	for _, o := range out.HealthCheckObservations {
		status := ""
		if o.StatusReport != nil {
			status = aws.ToString(o.StatusReport.Status)
		}
		if strings.HasPrefix(status, "Success") {
			ok++
		} else if status != "" {
			lastFailure = status
		}
	}
	if total == 0 {
		return false, fmt.Sprintf("health check %s: no checker has reported yet", id), nil
	}
	detail := fmt.Sprintf("health check %s: %d of %d checkers report success", id, ok, total)
	if lastFailure != "" {
		detail += "; e.g. " + lastFailure
	}
	return ok*100 > 18*total, detail, nil
}

// alarm is healthy unless the alarm is in ALARM. INSUFFICIENT_DATA passes: a new target
// often has no data points in its first minutes, and failing on that would roll back every
// shift at its first step.
func (g *Gates) alarm(ctx context.Context, a AlarmCheck) (bool, string, error) {
	if g.CloudWatch == nil {
		return false, "", configErr("cloudwatch alarm %s: the worker has no CloudWatch clients", a.Name)
	}
	c := g.CloudWatch(a.Region)
	if c == nil {
		return false, "", configErr("cloudwatch alarm %s: no CloudWatch client for region %q", a.Name, a.Region)
	}
	out, err := c.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{
		AlarmNames: []string{a.Name},
		AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeMetricAlarm, cwtypes.AlarmTypeCompositeAlarm},
	})
	if err != nil {
		return false, "", fmt.Errorf("describe alarm %s in %s: %w", a.Name, a.Region, err)
	}
	var state cwtypes.StateValue
	var reason string
	switch {
	case len(out.MetricAlarms) > 0:
		state, reason = out.MetricAlarms[0].StateValue, aws.ToString(out.MetricAlarms[0].StateReason)
	case len(out.CompositeAlarms) > 0:
		state, reason = out.CompositeAlarms[0].StateValue, aws.ToString(out.CompositeAlarms[0].StateReason)
	default:
		return false, "", configErr("cloudwatch alarm %q not found in %s; fix alarmName or region", a.Name, a.Region)
	}
	detail := fmt.Sprintf("alarm %s (%s) is %s", a.Name, a.Region, state)
	if reason != "" {
		detail += ": " + reason
	}
	return state != cwtypes.StateValueAlarm, detail, nil
}
