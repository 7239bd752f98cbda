package spec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/activities"
	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

const minimal = `
dnsShift:
  hostedZone: shop.example
  recordName: www.shop.example
  from: eu-west-1
  to: eu-west-2
`

func TestDefaults(t *testing.T) {
	m, err := Parse([]byte(minimal), ".yaml")
	require.NoError(t, err)
	in, err := DNSShiftInput(m, "alice")
	require.NoError(t, err)
	s := in.Spec
	require.Equal(t, "shop.example.", s.Zone)
	require.Equal(t, "www.shop.example.", s.RecordName)
	require.Equal(t, "A", s.RecordType)
	require.Equal(t, []int{1, 10, 25, 50, 100}, s.Percents)
	require.Equal(t, make([]bool, 5), s.ApproveAfter)
	require.Equal(t, 100, s.TotalWeight)
	require.Equal(t, 60*time.Second, s.BakeTime)
	require.Equal(t, 10*time.Second, s.GateInterval)
	require.Equal(t, workflows.RollbackImmediate, s.RollbackMode)
	require.Equal(t, workflows.OnGateFailRollback, s.OnGateFailure)
	require.Empty(t, s.Gates)
	require.Equal(t, workflows.ApprovalPolicy{RequiredApprovers: 1}, in.Approvals)
	require.Equal(t, "alice", in.Initiator)
}

func TestGateDefaults(t *testing.T) {
	m, err := Parse([]byte(minimal+`
  gates:
    - http: {url: "http://app.example/healthz"}
    - prometheus: {address: "http://prom:9090/", query: "sum(rate(errors[1m]))", condition: "<0.01"}
    - cloudwatchMetric: {region: eu-west-2, metric: {namespace: NS, metricName: M}, condition: "< 1"}
`), ".yml")
	require.NoError(t, err)
	s, err := DNSShift(m.GetDnsShift())
	require.NoError(t, err)
	require.Equal(t, []workflows.Gate{
		{Name: "GET http://app.example/healthz", FailureThreshold: 1, OnInconclusive: workflows.OnInconclusivePause,
			HTTP: &workflows.HTTPProbe{URL: "http://app.example/healthz", ExpectStatus: 200, Timeout: 5 * time.Second}},
		{Name: "prometheus sum(rate(errors[1m])) < 0.01", FailureThreshold: 1, OnInconclusive: workflows.OnInconclusivePause,
			Prometheus: &activities.PrometheusCheck{Address: "http://prom:9090", Query: "sum(rate(errors[1m]))",
				Condition: activities.Condition{Op: "<", Value: 0.01}, Timeout: 5 * time.Second}},
		{Name: "eu-west-2 M < 1", FailureThreshold: 1, OnInconclusive: workflows.OnInconclusivePause,
			Metric: &activities.MetricCheck{Region: "eu-west-2", Period: time.Minute, Condition: activities.Condition{Op: "<", Value: 1},
				Metrics: []activities.MetricQuery{{ID: "m1", Namespace: "NS", MetricName: "M", Statistic: "Average", Dimensions: map[string]string{}}}}},
	}, s.Gates)
}

func TestExampleFile(t *testing.T) {
	m, err := ParseFile("../examples/dns-shift.yaml")
	require.NoError(t, err)
	in, err := DNSShiftInput(m, "alice")
	require.NoError(t, err)
	s := in.Spec
	require.Equal(t, "www to eu-west-2", in.Name)
	require.Equal(t, "shop.example.", s.Zone)
	require.Equal(t, "www.shop.example.", s.RecordName)
	require.Equal(t, "eu-west-1", s.From)
	require.Equal(t, "eu-west-2", s.To)
	require.Equal(t, []int{10, 50, 100}, s.Percents)
	require.Equal(t, []bool{false, true, false}, s.ApproveAfter)
	require.Equal(t, 20*time.Second, s.BakeTime)
	require.Equal(t, workflows.RollbackGradual, s.RollbackMode)
	require.Len(t, s.Gates, 2)
	require.Equal(t, "http://127.0.0.1:4566/_apps/eu-west-2/healthz", s.Gates[0].HTTP.URL)
	require.Equal(t, "errors / requests", s.Gates[1].Metric.Expression)
	require.Equal(t, 2, s.Gates[1].FailureThreshold, "failureLimit 1: the second failure in a row fails the gate")
}

func TestJSONAndLongEnumNames(t *testing.T) {
	m, err := Parse([]byte(`{"dnsShift": {"hostedZone": "Z0123ABC", "recordName": "www.shop.example.",
		"from": "a", "to": "b", "linearStep": 30, "rollbackMode": "ROLLBACK_MODE_GRADUAL", "on_gate_failure": "pause"}}`), ".json")
	require.NoError(t, err)
	s, err := DNSShift(m.GetDnsShift())
	require.NoError(t, err)
	require.Equal(t, "Z0123ABC", s.Zone)
	require.Equal(t, []int{30, 60, 90, 100}, s.Percents)
	require.Equal(t, workflows.RollbackGradual, s.RollbackMode)
	require.Equal(t, workflows.OnGateFailPause, s.OnGateFailure)
}

func TestParseErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name, doc, field, msg string
	}{
		{"unknown top", "dnsShif: {}", "dnsShif", `did you mean "dnsShift"`},
		{"unknown nested", minimal + "  gates:\n    - htp: {url: x}\n", "dnsShift.gates[0].htp", `did you mean "http"`},
		{"bad enum", minimal + "  rollbackMode: slowly\n", "dnsShift.rollbackMode", "immediate, gradual"},
		{"not an object", "dnsShift: 3", "dnsShift", "must be an object"},
		{"not a list", minimal + "  schedule: 5\n", "dnsShift.schedule", "must be a list"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc), ".yaml")
			fe, ok := AsFieldError(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, c.field, fe.Field)
			require.Contains(t, fe.Msg, c.msg)
		})
	}
	_, err := Parse([]byte(minimal+"  bakeTime: soon\n"), ".yaml")
	require.ErrorContains(t, err, "dnsShift.bakeTime: \"soon\" is not a duration")
	_, err = Parse([]byte("dnsShift: {from: eu-west-1, to: y}"), ".yaml")
	require.ErrorContains(t, err, "dnsShift.to: got the boolean true where text belongs; quote the value")
	_, err = Parse([]byte("a: [b"), ".yaml")
	require.ErrorContains(t, err, "YAML")
	_, err = Parse([]byte(minimal), ".toml")
	require.ErrorContains(t, err, "unknown spec format")
}

func TestValidationErrors(t *testing.T) {
	cases := []struct {
		name, extra, field, msg string
	}{
		{"not increasing", "schedule: [10, 25, 20, 100]", "dnsShift.schedule[2]", "20 is not greater than 25; percentages must strictly increase"},
		{"percent zero", "schedule: [0, 100]", "dnsShift.schedule[0]", "outside 1..100"},
		{"percent above 100", "schedule: [50, 101]", "dnsShift.schedule[1]", "outside 1..100"},
		{"not ending at 100", "schedule: [10, 50]", "dnsShift.schedule[1]", "ends at 50, not 100"},
		{"both schedule and linear", "schedule: [50, 100]\n  linearStep: 10", "dnsShift.linearStep", "not both"},
		{"linear too big", "linearStep: 200", "dnsShift.linearStep", "outside 1..100"},
		{"total weight", "totalWeight: 300", "dnsShift.totalWeight", "outside 1..255"},
		{"rounds to same", "totalWeight: 10\n  schedule: [1, 2, 100]", "dnsShift.schedule[0]", "rounds to eu-west-2=0"},
		{"rounds to previous", "totalWeight: 10\n  schedule: [10, 12, 100]", "dnsShift.schedule[1]", "the same as the previous step"},
		{"approve not in schedule", "schedule: [10, 50, 100]\n  approveAt: [50, 30]", "dnsShift.approveAt[1]", "30 is not a step of the schedule (10, 50, 100)"},
		{"gate without check", "gates: [{name: g}]", "dnsShift.gates[0]", "needs a check"},
		{"bad url", "gates: [{http: {url: 'not a url'}}]", "dnsShift.gates[0].http.url", "not an absolute http(s) URL"},
		{"ftp url", "gates: [{http: {url: 'ftp://x/y'}}]", "dnsShift.gates[0].http.url", "not an absolute"},
		{"empty url", "gates: [{http: {expectStatus: 200}}]", "dnsShift.gates[0].http.url", "required"},
		{"bad status", "gates: [{http: {url: 'http://x', expectStatus: 42}}]", "dnsShift.gates[0].http.expectStatus", "not an HTTP status"},
		{"old threshold name", "gates: [{failureThreshold: 2, http: {url: 'http://x'}}]", "dnsShift.gates[0].failureThreshold", "renamed failureLimit"},
		{"failure limit", "gates: [{failureLimit: 500, http: {url: 'http://x'}}]", "dnsShift.gates[0].failureLimit", "guards nothing"},
		{"inconclusive limit", "gates: [{inconclusiveLimit: 500, http: {url: 'http://x'}}]", "dnsShift.gates[0].inconclusiveLimit", "ignore"},
		{"count", "gates: [{count: 5000, http: {url: 'http://x'}}]", "dnsShift.gates[0].count", "lengthen gateInterval"},
		{"prom address", "gates: [{prometheus: {query: up, condition: '< 1'}}]", "dnsShift.gates[0].prometheus.address", "required"},
		{"prom address scheme", "gates: [{prometheus: {address: 'prom:9090', query: up, condition: '< 1'}}]", "dnsShift.gates[0].prometheus.address", "absolute"},
		{"prom creds in url", "gates: [{prometheus: {address: 'http://u:p@prom', query: up, condition: '< 1'}}]", "dnsShift.gates[0].prometheus.address", "bearerToken"},
		{"prom query", "gates: [{prometheus: {address: 'http://prom', condition: '< 1'}}]", "dnsShift.gates[0].prometheus.query", "required"},
		{"prom condition", "gates: [{prometheus: {address: 'http://prom', query: up}}]", "dnsShift.gates[0].prometheus.condition", "required"},
		{"prom bad condition", "gates: [{prometheus: {address: 'http://prom', query: up, condition: 'below 1'}}]", "dnsShift.gates[0].prometheus.condition", "not a comparison"},
		{"prom series", "gates: [{prometheus: {address: 'http://prom', query: up, condition: '< 1', series: median}}]", "dnsShift.gates[0].prometheus.series", "every"},
		{"prom empty token", "gates: [{prometheus: {address: 'http://prom', query: up, condition: '< 1', bearerToken: {}}}]", "dnsShift.gates[0].prometheus.bearerToken", "env"},
		{"prom ca without tls", "gates: [{prometheus: {address: 'http://prom', query: up, condition: '< 1', caFile: /ca.pem}}]", "dnsShift.gates[0].prometheus.caFile", "https"},
		{"metric region", "gates: [{cloudwatchMetric: {metric: {namespace: NS, metricName: M}, condition: '< 1'}}]", "dnsShift.gates[0].cloudwatchMetric.region", "required"},
		{"metric none", "gates: [{cloudwatchMetric: {region: r, condition: '< 1'}}]", "dnsShift.gates[0].cloudwatchMetric", "needs metric"},
		{"metric both", "gates: [{cloudwatchMetric: {region: r, metric: {namespace: NS, metricName: M}, expression: a, condition: '< 1'}}]", "dnsShift.gates[0].cloudwatchMetric.metric", "either"},
		{"metric stat", "gates: [{cloudwatchMetric: {region: r, metric: {namespace: NS, metricName: M, statistic: p99}, condition: '< 1'}}]", "dnsShift.gates[0].cloudwatchMetric.metric.statistic", "Average"},
		{"metric period", "gates: [{cloudwatchMetric: {region: r, metric: {namespace: NS, metricName: M}, period: 1500ms, condition: '< 1'}}]", "dnsShift.gates[0].cloudwatchMetric.period", "whole number"},
		{"metric math ids", "gates: [{cloudwatchMetric: {region: r, expression: a / b, metrics: [{id: a, namespace: NS, metricName: M}], condition: '< 1'}}]", "dnsShift.gates[0].cloudwatchMetric.expression", "\"b\""},
		{"metric math dup", "gates: [{cloudwatchMetric: {region: r, expression: a, metrics: [{id: a, namespace: NS, metricName: M}, {id: a, namespace: NS, metricName: M}], condition: '< 1'}}]", "dnsShift.gates[0].cloudwatchMetric.metrics[1].id", "also"},
		{"metric math bad id", "gates: [{cloudwatchMetric: {region: r, expression: A, metrics: [{id: A, namespace: NS, metricName: M}], condition: '< 1'}}]", "dnsShift.gates[0].cloudwatchMetric.metrics[0].id", "lower-case"},
		{"alarm region", "gates: [{cloudwatchAlarm: {alarmName: a}}]", "dnsShift.gates[0].cloudwatchAlarm.region", "required"},
		{"health check id", "gates: [{route53HealthCheck: {}}]", "dnsShift.gates[0].route53HealthCheck.healthCheckId", "required"},
		{"duplicate gate", "gates: [{name: g, http: {url: 'http://x'}}, {name: g, http: {url: 'http://y'}}]", "dnsShift.gates[1].name", "unique"},
		{"negative bake", "bakeTime: -5s", "dnsShift.bakeTime", "outside"},
		{"tiny gate interval", "gateInterval: 10ms", "dnsShift.gateInterval", "outside"},
		{"record type", "recordType: NS", "dnsShift.recordType", "cannot be weighted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Parse([]byte(minimal+"  "+c.extra+"\n"), ".yaml")
			require.NoError(t, err)
			_, err = DNSShift(m.GetDnsShift())
			var fe *FieldError
			require.True(t, errors.As(err, &fe), "%v", err)
			require.Equal(t, c.field, fe.Field)
			require.Contains(t, fe.Msg, c.msg)
		})
	}
}

func TestRequiredFields(t *testing.T) {
	cases := []struct{ doc, field string }{
		{"dnsShift: {recordName: www.a., from: src, to: dst}", "dnsShift.hostedZone"},
		{"dnsShift: {hostedZone: a., from: src, to: dst}", "dnsShift.recordName"},
		{"dnsShift: {hostedZone: a., recordName: www.a., to: dst}", "dnsShift.from"},
		{"dnsShift: {hostedZone: a., recordName: www.a., from: src}", "dnsShift.to"},
		{"dnsShift: {hostedZone: a., recordName: www.a., from: src, to: src}", "dnsShift.to"},
		{"dnsShift: {hostedZone: a., recordName: www.b., from: src, to: dst}", "dnsShift.recordName"},
		{"dnsShift: {hostedZone: 'not-an-id', recordName: www.a., from: src, to: dst}", "dnsShift.hostedZone"},
		{"name: nothing", "dnsShift"},
		{"dnsShift: {hostedZone: a., recordName: www.a., from: src, to: dst}\napprovals: {requiredApprovers: 50}", "approvals.requiredApprovers"},
	}
	for _, c := range cases {
		m, err := Parse([]byte(c.doc), ".yaml")
		require.NoError(t, err, c.doc)
		_, err = DNSShiftInput(m, "alice")
		fe, ok := AsFieldError(err)
		require.True(t, ok, "%s: %v", c.doc, err)
		require.Equal(t, c.field, fe.Field, c.doc)
	}
}

func TestApprovals(t *testing.T) {
	require.Equal(t, workflows.ApprovalPolicy{RequiredApprovers: 1}, Approvals(nil))
	m, err := Parse([]byte("approvals: {requiredApprovers: 2, allowSelfApproval: true}"), "")
	require.NoError(t, err)
	require.Equal(t, workflows.ApprovalPolicy{RequiredApprovers: 2, AllowSelfApproval: true}, Approvals(m.GetApprovals()))
}

func TestApproveEveryStep(t *testing.T) {
	m, err := Parse([]byte(minimal+"  approveEveryStep: true\n  schedule: [50, 100]\n"), ".yaml")
	require.NoError(t, err)
	s, err := DNSShift(m.GetDnsShift())
	require.NoError(t, err)
	require.Equal(t, []bool{true, true}, s.ApproveAfter)
}

// FuzzParse checks that no input makes parsing and validation panic, whatever migration it
// describes, that every refusal names its field, and that what validation accepts keeps the
// invariants the workflows rely on.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal), ".yaml")
	f.Add([]byte(minimal+"  schedule: [10, 25, 20, 100]\n  gates: [{http: {url: 'http://x'}}]\n"), ".yaml")
	f.Add([]byte(`{"dnsShift": {"linearStep": 7, "totalWeight": 3, "approveAt": [7]}}`), ".json")
	f.Add([]byte("dnsShift: {gates: [{prometheus: {condition: '< .nan'}}]}"), ".yml")
	f.Add([]byte("approvals: {requiredApprovers: 4294967295}"), "")
	for _, ex := range []string{"dns-shift", "ami-share", "mongo-primary-move", "region-move"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", ex+".yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, ".yaml")
	}
	f.Add([]byte(`amiShare: {sourceRegion: eu-west-1, imageTags: {app: shop}, targetRegions: [eu-west-2, eu-west-2], kmsKeyIds: {eu-west-2: "arn:aws:kms:eu-west-1:0:key/x"}}`), ".yaml")
	f.Add([]byte(`mongoPrimaryMove: {uri: "mongodb://a:1/?replicaSet=rs0", sourceRegion: x, targetRegion: y, newMembers: ["b:99999"], priorities: {targetFirst: -1}}`), ".yaml")
	f.Add([]byte(`{name: "a/b", regionMove: {sourceRegion: eu-west-1, targetRegion: eu-west-2, maintenanceWindow: {start: "25:00", end: "04:00", timeZone: Local}}}`), ".yaml")
	f.Fuzz(func(t *testing.T, data []byte, ext string) {
		m, err := Parse(data, ext)
		if err != nil {
			return
		}
		var in any
		switch m.GetKind().(type) {
		case *ferryv1.MigrationSpec_DnsShift:
			in, err = DNSShiftInput(m, "fuzzer")
		case *ferryv1.MigrationSpec_AmiShare:
			in, err = AMIShareInput(m, "fuzzer")
		case *ferryv1.MigrationSpec_MongoPrimaryMove:
			in, err = MongoPrimaryMoveInput(m, "fuzzer")
		case *ferryv1.MigrationSpec_RegionMove:
			in, err = RegionMoveInput(m, "fuzzer")
		default:
			return
		}
		if err != nil {
			if _, ok := AsFieldError(err); !ok {
				t.Fatalf("validation error is not a FieldError: %v", err)
			}
			return
		}
		switch in := in.(type) {
		case workflows.DNSShiftInput:
			checkDNSShift(t, in.Spec)
		case workflows.AMIShareInput:
			s := in.Spec
			if len(s.TargetRegions) == 0 || slices.Contains(s.TargetRegions, s.SourceRegion) {
				t.Fatalf("valid AMI share copies nowhere or into its source: %+v", s)
			}
		case workflows.MongoPrimaryMoveInput:
			s := in.Spec
			if s.SourceRegion == s.TargetRegion || len(s.NewMembers) == 0 || s.ReplicaSet == "" {
				t.Fatalf("valid MongoDB move breaks an invariant: %+v", s)
			}
		case workflows.RegionMoveInput:
			s := in.Spec
			if s.SourceRegion == s.TargetRegion || in.Name == "" || strings.Contains(in.Name, "/") {
				t.Fatalf("valid region move breaks an invariant: %+v", in)
			}
			if s.DNS != nil {
				checkDNSShift(t, *s.DNS)
			}
		}
	})
}

func checkDNSShift(t *testing.T, s workflows.DNSShiftSpec) {
	t.Helper()
	if len(s.Percents) == 0 || s.Percents[len(s.Percents)-1] != 100 || len(s.ApproveAfter) != len(s.Percents) {
		t.Fatalf("valid spec with a bad schedule: %+v", s)
	}
	if s.TotalWeight < 1 || s.TotalWeight > 255 || !strings.HasSuffix(s.RecordName, ".") || s.From == s.To {
		t.Fatalf("valid spec breaks an invariant: %+v", s)
	}
}
