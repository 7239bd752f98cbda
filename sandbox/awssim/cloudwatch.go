package awssim

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// CloudWatch is served over Smithy RPC v2 CBOR: it is what aws-sdk-go-v2 (v1.75+) and
// botocore (first in the model's protocols list) send today.
const cborPathPrefix = "/service/GraniteServiceVersion20100801/operation/"

type cwRegion struct {
	alarms map[string]*alarm
}

type alarm struct {
	name, metric, namespace, comparison, statistic string
	threshold                                      float64
	evaluationPeriods, period                      int64
	state, reason                                  string
	updated                                        time.Time
	// app-driven alarms follow a region's app error rate.
	app          string
	appThreshold float64
	derived      string // last state derived from the app, to notice changes
}

func (s *Server) serveCloudWatch(w http.ResponseWriter, q *req) {
	q.op = strings.TrimPrefix(q.http.URL.Path, cborPathPrefix)
	var in cbor.Map
	if len(q.body) > 0 {
		v, err := cbor.Decode(q.body)
		if err != nil {
			s.writeCBORError(w, q, &apiError{http.StatusBadRequest, "SerializationException", "cannot decode CBOR body: " + err.Error()})
			return
		}
		m, ok := v.(cbor.Map)
		if !ok {
			s.writeCBORError(w, q, &apiError{http.StatusBadRequest, "SerializationException", "body must be a CBOR map"})
			return
		}
		in = m
	}
	out, e := s.runCloudWatch(q, in)
	if e != nil {
		s.writeCBORError(w, q, e)
		return
	}
	if out == nil {
		out = cbor.Map{}
	}
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("X-Amzn-RequestId", q.id)
	_, _ = w.Write(cbor.Encode(out))
}

var cwOps = map[string]struct {
	h        func(*Server, *req, cbor.Map) (cbor.Map, *apiError)
	mutating bool
}{
	"DescribeAlarms": {(*Server).describeAlarms, false},
	"SetAlarmState":  {(*Server).setAlarmState, true},
	"PutMetricAlarm": {(*Server).putMetricAlarm, true},
	"DeleteAlarms":   {(*Server).deleteAlarms, true},
	"GetMetricData":  {(*Server).getMetricData, false},
}

// runCloudWatch runs one operation on a decoded input, whatever protocol carried it.
func (s *Server) runCloudWatch(q *req, in cbor.Map) (cbor.Map, *apiError) {
	op, ok := cwOps[q.op]
	if !ok {
		return nil, &apiError{http.StatusBadRequest, "UnknownOperationException",
			fmt.Sprintf("the sandbox does not simulate CloudWatch %s", q.op)}
	}
	if _, ok := s.cw[q.region]; !ok {
		return nil, &apiError{http.StatusBadRequest, "InvalidClientTokenId", fmt.Sprintf("region %q is not enabled in this sandbox", q.region)}
	}
	if e := s.before(q.http.Context(), q, op.mutating); e != nil {
		s.record(q, e)
		return nil, e
	}
	if q.call != nil {
		q.call.Params = cborFlat(in)
	}
	s.mu.Lock()
	out, e := op.h(s, q, in)
	s.mu.Unlock()
	s.record(q, e)
	if e != nil {
		return nil, e
	}
	if out == nil {
		out = cbor.Map{}
	}
	return out, nil
}

func (s *Server) writeCBORError(w http.ResponseWriter, q *req, e *apiError) {
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("X-Amzn-RequestId", q.id)
	fault := "Sender"
	if e.status >= 500 {
		fault = "Receiver"
	}
	// CloudWatch is awsQueryCompatible: clients take the code from this header.
	w.Header().Set("X-Amzn-Query-Error", e.code+";"+fault)
	w.WriteHeader(e.status)
	_, _ = w.Write(cbor.Encode(cbor.Map{"__type": cbor.String(e.code), "message": cbor.String(e.msg)}))
}

func cborString(m cbor.Map, k string) string {
	if v, ok := m[k].(cbor.String); ok {
		return string(v)
	}
	return ""
}

func cborStrings(m cbor.Map, k string) []string {
	l, _ := m[k].(cbor.List)
	var out []string
	for _, v := range l {
		if s, ok := v.(cbor.String); ok {
			out = append(out, string(s))
		}
	}
	return out
}

func cborFloat(m cbor.Map, k string) float64 {
	v, ok := m[k]
	if !ok {
		return 0
	}
	f, _ := cbor.AsFloat64(v)
	return f
}

func cborInt(m cbor.Map, k string) int64 {
	v, ok := m[k]
	if !ok {
		return 0
	}
	i, _ := cbor.AsInt64(v)
	return i
}

func cborFlat(m cbor.Map) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		switch x := v.(type) {
		case cbor.String:
			out[k] = string(x)
		case cbor.List:
			out[k] = strings.Join(cborStrings(m, k), ",")
		default:
			out[k] = fmt.Sprint(x)
		}
	}
	return out
}

func cborTime(t time.Time) cbor.Value {
	return &cbor.Tag{ID: 1, Value: cbor.Float64(float64(t.UnixMilli()) / 1000)}
}

// refresh updates an app-driven alarm from its app's error rate.
func (s *Server) refresh(region string, a *alarm) {
	if a.app == "" || s.opts.AppErrorRate == nil {
		return
	}
	rate, ok := s.opts.AppErrorRate(a.app)
	derived := "INSUFFICIENT_DATA"
	reason := "No requests in the evaluation window"
	if ok {
		derived = "OK"
		reason = fmt.Sprintf("Threshold Crossed: error rate %.3f was not greater than the threshold (%.3f).", rate, a.appThreshold)
		if rate > a.appThreshold {
			derived = "ALARM"
			reason = fmt.Sprintf("Threshold Crossed: error rate %.3f was greater than the threshold (%.3f).", rate, a.appThreshold)
		}
	}
	if derived != a.derived {
		a.derived = derived
		a.state, a.reason, a.updated = derived, reason, s.now()
		s.log.Info("alarm state", "region", region, "alarm", a.name, "state", derived)
	}
}

func (s *Server) describeAlarms(q *req, in cbor.Map) (cbor.Map, *apiError) {
	rg := s.cw[q.region]
	names := cborStrings(in, "AlarmNames")
	prefix := cborString(in, "AlarmNamePrefix")
	state := cborString(in, "StateValue")
	if len(names) > 0 && prefix != "" {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterCombination", "AlarmNames and AlarmNamePrefix cannot be used together"}
	}
	keys := sortedKeys(rg.alarms)
	sort.Strings(keys)
	list := cbor.List{}
	for _, k := range keys {
		a := rg.alarms[k]
		s.refresh(q.region, a)
		if len(names) > 0 && !contains(names, a.name) {
			continue
		}
		if prefix != "" && !strings.HasPrefix(a.name, prefix) {
			continue
		}
		if state != "" && a.state != state {
			continue
		}
		list = append(list, cbor.Map{
			"AlarmName":                          cbor.String(a.name),
			"AlarmArn":                           cbor.String(fmt.Sprintf("arn:aws:cloudwatch:%s:%s:alarm:%s", q.region, s.opts.Account, a.name)),
			"StateValue":                         cbor.String(a.state),
			"StateReason":                        cbor.String(a.reason),
			"StateUpdatedTimestamp":              cborTime(a.updated),
			"AlarmConfigurationUpdatedTimestamp": cborTime(a.updated),
			"MetricName":                         cbor.String(a.metric),
			"Namespace":                          cbor.String(a.namespace),
			"Statistic":                          cbor.String(a.statistic),
			"Threshold":                          cbor.Float64(a.threshold),
			"ComparisonOperator":                 cbor.String(a.comparison),
			"EvaluationPeriods":                  cbor.Uint(a.evaluationPeriods),
			"Period":                             cbor.Uint(a.period),
			"ActionsEnabled":                     cbor.Bool(true),
		})
	}
	return cbor.Map{"MetricAlarms": list, "CompositeAlarms": cbor.List{}}, nil
}

func (s *Server) setAlarmState(q *req, in cbor.Map) (cbor.Map, *apiError) {
	name := cborString(in, "AlarmName")
	a, ok := s.cw[q.region].alarms[name]
	if !ok {
		return nil, &apiError{http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Alarm %s not found", name)}
	}
	st := cborString(in, "StateValue")
	switch st {
	case "OK", "ALARM", "INSUFFICIENT_DATA":
	default:
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Invalid state value %q", st)}
	}
	// Like CloudWatch, a set state lasts until the next evaluation changes it.
	s.refresh(q.region, a)
	a.state, a.reason, a.updated = st, cborString(in, "StateReason"), s.now()
	q.call.IDs = []string{name}
	return nil, nil
}

func (s *Server) putMetricAlarm(q *req, in cbor.Map) (cbor.Map, *apiError) {
	name := cborString(in, "AlarmName")
	if name == "" {
		return nil, &apiError{http.StatusBadRequest, "MissingParameter", "The parameter AlarmName is required."}
	}
	rg := s.cw[q.region]
	a, ok := rg.alarms[name]
	if !ok {
		a = &alarm{name: name, state: "INSUFFICIENT_DATA", reason: "Unchecked: Initial alarm creation", updated: s.now()}
		rg.alarms[name] = a
	}
	a.metric, a.namespace = cborString(in, "MetricName"), cborString(in, "Namespace")
	a.comparison, a.statistic = cborString(in, "ComparisonOperator"), cborString(in, "Statistic")
	a.threshold = cborFloat(in, "Threshold")
	a.evaluationPeriods, a.period = cborInt(in, "EvaluationPeriods"), cborInt(in, "Period")
	q.call.IDs = []string{name}
	return nil, nil
}

func (s *Server) deleteAlarms(q *req, in cbor.Map) (cbor.Map, *apiError) {
	names := cborStrings(in, "AlarmNames")
	rg := s.cw[q.region]
	for _, n := range names {
		if _, ok := rg.alarms[n]; !ok {
			return nil, &apiError{http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("Alarm %s not found", n)}
		}
	}
	for _, n := range names {
		delete(rg.alarms, n)
	}
	q.call.IDs = names
	return nil, nil
}
