package spec

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ferryhq/ferry/activities"
	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

// Gate defaults and bounds.
const (
	DefaultExpectStatus      = 200
	DefaultProbeTimeout      = 5 * time.Second
	DefaultPrometheusTimeout = 5 * time.Second
	DefaultMetricPeriod      = time.Minute
	DefaultMetricStatistic   = "Average"
	// maxGateLimit bounds failureLimit and inconclusiveLimit: a gate that tolerates more
	// in a row guards nothing.
	maxGateLimit = 100
	// maxGateCount bounds count, so a typo cannot hold every step for days.
	maxGateCount = 1000
)

// metricIDRE is CloudWatch's rule for a query id: a lower-case letter, then letters,
// digits and underscores.
var metricIDRE = regexp.MustCompile(`^[a-z][a-zA-Z0-9_]{0,254}$`)

// expressionWordRE finds the words of a metric-math expression, to check each names a
// metric (the sandbox and this check know no functions).
var expressionWordRE = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)

func convertGate(gp string, g *ferryv1.Gate) (workflows.Gate, error) {
	out := workflows.Gate{Name: strings.TrimSpace(g.GetName())}
	//lint:ignore SA1019 read only to refuse it, naming its replacement
	if n := g.GetFailureThreshold(); n != 0 {
		return out, fieldErr(gp+".failureThreshold", "was renamed failureLimit, the failing evaluations in a row a gate tolerates: write failureLimit: %d (failureThreshold %d fails on failure %d, as failureLimit %d does)", n-1, n, n, n-1)
	}
	if n := g.GetFailureLimit(); n > maxGateLimit {
		return out, fieldErr(gp+".failureLimit", "%d tolerates more than %d failing evaluations in a row; a gate that tolerant guards nothing", n, maxGateLimit)
	}
	if n := g.GetInconclusiveLimit(); n > maxGateLimit {
		return out, fieldErr(gp+".inconclusiveLimit", "%d tolerates more than %d inconclusive evaluations in a row; use onInconclusive: ignore to go on regardless", n, maxGateLimit)
	}
	if n := g.GetCount(); n > maxGateCount {
		return out, fieldErr(gp+".count", "%d evaluations per step is more than %d; lengthen gateInterval instead", n, maxGateCount)
	}
	out.FailureThreshold = int(g.GetFailureLimit()) + 1
	out.InconclusiveLimit = int(g.GetInconclusiveLimit())
	out.Count = int(g.GetCount())
	switch g.GetOnInconclusive() {
	case ferryv1.InconclusiveAction_INCONCLUSIVE_ACTION_UNSPECIFIED, ferryv1.InconclusiveAction_INCONCLUSIVE_ACTION_PAUSE:
		out.OnInconclusive = workflows.OnInconclusivePause
	case ferryv1.InconclusiveAction_INCONCLUSIVE_ACTION_ROLLBACK:
		out.OnInconclusive = workflows.OnInconclusiveRollback
	case ferryv1.InconclusiveAction_INCONCLUSIVE_ACTION_IGNORE:
		out.OnInconclusive = workflows.OnInconclusiveIgnore
	default:
		return out, fieldErr(gp+".onInconclusive", "unknown value %d; use pause, rollback or ignore", g.GetOnInconclusive())
	}
	var def string
	var err error
	switch c := g.GetCheck().(type) {
	case *ferryv1.Gate_Http:
		def, err = httpGate(gp+".http", c.Http, &out)
	case *ferryv1.Gate_Route53HealthCheck:
		id := strings.TrimSpace(c.Route53HealthCheck.GetHealthCheckId())
		if id == "" {
			return out, fieldErr(gp+".route53HealthCheck.healthCheckId", "required")
		}
		out.HealthCheckID = id
		def = "health check " + id
	case *ferryv1.Gate_CloudwatchAlarm:
		a := c.CloudwatchAlarm
		switch {
		case strings.TrimSpace(a.GetAlarmName()) == "":
			return out, fieldErr(gp+".cloudwatchAlarm.alarmName", "required")
		case strings.TrimSpace(a.GetRegion()) == "":
			return out, fieldErr(gp+".cloudwatchAlarm.region", "required: the alarm's region, e.g. eu-west-2")
		}
		out.Alarm = &workflows.AlarmRef{Name: strings.TrimSpace(a.GetAlarmName()), Region: strings.TrimSpace(a.GetRegion())}
		def = "alarm " + out.Alarm.Name
	case *ferryv1.Gate_Prometheus:
		def, err = prometheusGate(gp+".prometheus", c.Prometheus, &out)
	case *ferryv1.Gate_CloudwatchMetric:
		def, err = metricGate(gp+".cloudwatchMetric", c.CloudwatchMetric, &out)
	default:
		return out, fieldErr(gp, "needs a check: one of http, route53HealthCheck, cloudwatchAlarm, prometheus, cloudwatchMetric")
	}
	if err != nil {
		return out, err
	}
	if out.Name == "" {
		out.Name = def
	}
	return out, nil
}

func httpGate(p string, h *ferryv1.HttpProbe, out *workflows.Gate) (string, error) {
	u, err := url.Parse(strings.TrimSpace(h.GetUrl()))
	switch {
	case h.GetUrl() == "":
		return "", fieldErr(p+".url", "required: the URL to GET, e.g. https://eu-west-2.shop.example/healthz")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "", fieldErr(p+".url", "%q is not an absolute http(s) URL", h.GetUrl())
	}
	status := int(h.GetExpectStatus())
	if status == 0 {
		status = DefaultExpectStatus
	}
	if status < 100 || status > 599 {
		return "", fieldErr(p+".expectStatus", "%d is not an HTTP status (100..599)", h.GetExpectStatus())
	}
	timeout, err := duration(p+".timeout", h.GetTimeout(), DefaultProbeTimeout, time.Millisecond, time.Minute)
	if err != nil {
		return "", err
	}
	out.HTTP = &workflows.HTTPProbe{URL: u.String(), ExpectStatus: status, Timeout: timeout}
	return "GET " + u.String(), nil
}

func condition(p, s string) (activities.Condition, error) {
	if strings.TrimSpace(s) == "" {
		return activities.Condition{}, fieldErr(p, "required: when the value is healthy, e.g. \"< 0.01\"")
	}
	c, err := activities.ParseCondition(s)
	if err != nil {
		return c, fieldErr(p, "%v", err)
	}
	return c, nil
}

func prometheusGate(p string, q *ferryv1.PrometheusQuery, out *workflows.Gate) (string, error) {
	addr := strings.TrimSuffix(strings.TrimSpace(q.GetAddress()), "/")
	u, err := url.Parse(addr)
	switch {
	case addr == "":
		return "", fieldErr(p+".address", "required: the Prometheus server's URL, e.g. http://prometheus.monitoring:9090")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "", fieldErr(p+".address", "%q is not an absolute http(s) URL", q.GetAddress())
	case u.User != nil:
		return "", fieldErr(p+".address", "holds credentials; remove them and set bearerToken (a secret reference: env or file)")
	}
	query := strings.TrimSpace(q.GetQuery())
	if query == "" {
		return "", fieldErr(p+".query", "required: a PromQL query giving one number per series, e.g. sum(rate(http_requests_total{code=~\"5..\"}[1m])) / sum(rate(http_requests_total[1m]))")
	}
	cond, err := condition(p+".condition", q.GetCondition())
	if err != nil {
		return "", err
	}
	series := strings.TrimSpace(q.GetSeries())
	if series != "" && !slices.Contains(activities.SeriesModes, series) {
		return "", fieldErr(p+".series", "%q is not one of %s", series, strings.Join(activities.SeriesModes, ", "))
	}
	timeout, err := duration(p+".timeout", q.GetTimeout(), DefaultPrometheusTimeout, 100*time.Millisecond, time.Minute)
	if err != nil {
		return "", err
	}
	check := &activities.PrometheusCheck{Address: addr, Query: query, Condition: cond, Series: series, CAFile: strings.TrimSpace(q.GetCaFile()), Timeout: timeout}
	if t := q.GetBearerToken(); t != nil {
		check.BearerToken = activities.Secret{Env: t.GetEnv(), File: t.GetFile()}
		if !check.BearerToken.Set() {
			return "", fieldErr(p+".bearerToken", "set but empty: name env (a variable on the worker) or file (a path on the worker)")
		}
	}
	if check.CAFile != "" && u.Scheme != "https" {
		return "", fieldErr(p+".caFile", "set, but the address is not https")
	}
	out.Prometheus = check
	return fmt.Sprintf("prometheus %s %s", short(query, 48), cond), nil
}

func metricGate(p string, m *ferryv1.CloudWatchMetric, out *workflows.Gate) (string, error) {
	region := strings.TrimSpace(m.GetRegion())
	if region == "" {
		return "", fieldErr(p+".region", "required: the metric's region, e.g. eu-west-2")
	}
	cond, err := condition(p+".condition", m.GetCondition())
	if err != nil {
		return "", err
	}
	period, err := duration(p+".period", m.GetPeriod(), DefaultMetricPeriod, time.Second, 24*time.Hour)
	if err != nil {
		return "", err
	}
	if period%time.Second != 0 {
		return "", fieldErr(p+".period", "%s is not a whole number of seconds", period)
	}
	check := &activities.MetricCheck{Region: region, Period: period, Condition: cond, Expression: strings.TrimSpace(m.GetExpression())}
	def := ""
	switch {
	case m.GetMetric() != nil && (check.Expression != "" || len(m.GetMetrics()) > 0):
		return "", fieldErr(p+".metric", "set with expression/metrics; use either metric, or expression and metrics")
	case m.GetMetric() != nil:
		q, err := metricStat(p+".metric", m.GetMetric(), "m1")
		if err != nil {
			return "", err
		}
		check.Metrics = []activities.MetricQuery{q}
		def = fmt.Sprintf("%s %s %s", region, q.MetricName, cond)
	case check.Expression == "":
		return "", fieldErr(p, "needs metric (a namespace, metricName, dimensions and statistic), or expression and metrics")
	case len(m.GetMetrics()) == 0:
		return "", fieldErr(p+".metrics", "required with expression: the metrics it names by id")
	default:
		ids := map[string]int{}
		for i, ms := range m.GetMetrics() {
			mp := fmt.Sprintf("%s.metrics[%d]", p, i)
			if strings.TrimSpace(ms.GetId()) == "" {
				return "", fieldErr(mp+".id", "required: the name the expression uses for this metric, e.g. errors")
			}
			q, err := metricStat(mp, ms, "")
			if err != nil {
				return "", err
			}
			if j, dup := ids[q.ID]; dup {
				return "", fieldErr(mp+".id", "%q is also the id of metrics[%d]", q.ID, j)
			}
			ids[q.ID] = i
			check.Metrics = append(check.Metrics, q)
		}
		for _, word := range expressionWordRE.FindAllString(check.Expression, -1) {
			if _, ok := ids[word]; !ok {
				return "", fieldErr(p+".expression", "names %q, which is not the id of one of metrics (%s)", word, strings.Join(slices.Sorted(maps.Keys(ids)), ", "))
			}
		}
		def = fmt.Sprintf("%s %s %s", region, short(check.Expression, 40), cond)
	}
	out.Metric = check
	return def, nil
}

func metricStat(p string, m *ferryv1.MetricStat, defaultID string) (activities.MetricQuery, error) {
	q := activities.MetricQuery{
		ID: strings.TrimSpace(m.GetId()), Namespace: strings.TrimSpace(m.GetNamespace()), MetricName: strings.TrimSpace(m.GetMetricName()),
		Statistic: strings.TrimSpace(m.GetStatistic()), Dimensions: map[string]string{},
	}
	if q.ID == "" {
		q.ID = defaultID
	}
	if q.Statistic == "" {
		q.Statistic = DefaultMetricStatistic
	}
	switch {
	case !metricIDRE.MatchString(q.ID):
		return q, fieldErr(p+".id", "%q must start with a lower-case letter and hold only letters, digits and _", q.ID)
	case q.Namespace == "":
		return q, fieldErr(p+".namespace", "required, e.g. AWS/ApplicationELB")
	case q.MetricName == "":
		return q, fieldErr(p+".metricName", "required, e.g. HTTPCode_Target_5XX_Count")
	case !slices.Contains(activities.MetricStatistics, q.Statistic):
		return q, fieldErr(p+".statistic", "%q is not one of %s", q.Statistic, strings.Join(activities.MetricStatistics, ", "))
	case len(m.GetDimensions()) > 30:
		return q, fieldErr(p+".dimensions", "has %d; CloudWatch allows 30", len(m.GetDimensions()))
	}
	for k, v := range m.GetDimensions() {
		if strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
			return q, fieldErr(p+".dimensions", "a dimension needs a name and a value")
		}
		q.Dimensions[k] = v
	}
	return q, nil
}

// short cuts s to n runes for a default gate name.
func short(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
