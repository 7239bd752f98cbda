package awssim

import (
	"slices"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// GetMetricData serves the client population's numbers as CloudWatch metrics, so a metric
// gate reads the sandbox as it would read an ALB's or an app's metrics in production:
//
//	namespace Sandbox/App, dimension Region=<app region>:
//	  Requests      requests the clients sent to the region's app
//	  Errors        of those, the ones that failed (5xx, transport error, gave up)
//	  5XXErrorRate  Errors / Requests over the period
//
// Each second is one sample (its count), so Sum is the period's count, Average the mean per
// second, Minimum / Maximum the quietest / busiest second and SampleCount the seconds with
// traffic; for 5XXErrorRate every statistic is the period's ratio. A period in which no
// client reached the app has no datapoint, as CloudWatch reports a metric nothing was
// published to. Metric math supports + - * /, parentheses, numbers and other queries' ids.

// AppNamespace is the namespace of the sandbox apps' metrics.
const AppNamespace = "Sandbox/App"

var appMetricNames = []string{"Requests", "Errors", "5XXErrorRate"}

var statistics = []string{"Average", "Sum", "Minimum", "Maximum", "SampleCount"}

type series struct {
	times  []time.Time
	values []float64
}

func (s *Server) getMetricData(q *req, in cbor.Map) (cbor.Map, *apiError) {
	start, ok1 := cborTimeValue(in["StartTime"])
	end, ok2 := cborTimeValue(in["EndTime"])
	if !ok1 || !ok2 {
		return nil, missing("StartTime and EndTime")
	}
	if !end.After(start) {
		return nil, badParam("The parameter EndTime must be greater than StartTime.")
	}
	queries, _ := in["MetricDataQueries"].(cbor.List)
	if len(queries) == 0 || len(queries) > 500 {
		return nil, badParam("MetricDataQueries must hold 1 to 500 queries, has %d", len(queries))
	}
	byID := map[string]series{}
	var out cbor.List
	// Metric queries first, then expressions over them (in order, so an expression may
	// use an earlier expression's id).
	for _, pass := range []bool{false, true} {
		for _, v := range queries {
			m, _ := v.(cbor.Map)
			id := cborString(m, "Id")
			expr := cborString(m, "Expression")
			if (expr != "") != pass {
				continue
			}
			if id == "" {
				return nil, badParam("every MetricDataQuery needs an Id")
			}
			var ser series
			var e *apiError
			if expr != "" {
				ser, e = evalMetricMath(expr, byID)
			} else {
				ser, e = s.metricStat(m, start, end)
			}
			if e != nil {
				return nil, e
			}
			byID[id] = ser
			if rd, ok := m["ReturnData"].(cbor.Bool); ok && !bool(rd) {
				continue
			}
			out = append(out, metricResult(id, cborString(m, "Label"), ser, cborString(in, "ScanBy") == "TimestampAscending"))
		}
	}
	return cbor.Map{"MetricDataResults": out, "Messages": cbor.List{}}, nil
}

func metricResult(id, label string, ser series, ascending bool) cbor.Map {
	if label == "" {
		label = id
	}
	times, values := cbor.List{}, cbor.List{}
	for i := range ser.times {
		j := i
		if !ascending {
			j = len(ser.times) - 1 - i
		}
		times = append(times, cborTime(ser.times[j]))
		values = append(values, cbor.Float64(ser.values[j]))
	}
	return cbor.Map{"Id": cbor.String(id), "Label": cbor.String(label), "Timestamps": times, "Values": values, "StatusCode": cbor.String("Complete")}
}

// metricStat reads one MetricStat query: periods aligned on StartTime, up to EndTime.
func (s *Server) metricStat(m cbor.Map, start, end time.Time) (series, *apiError) {
	ms, _ := m["MetricStat"].(cbor.Map)
	if ms == nil {
		return series{}, badParam("query %s needs MetricStat or Expression", cborString(m, "Id"))
	}
	metric, _ := ms["Metric"].(cbor.Map)
	period := time.Duration(cborInt(ms, "Period")) * time.Second
	stat := cborString(ms, "Stat")
	if period <= 0 {
		return series{}, badParam("query %s: MetricStat.Period must be at least 1 second", cborString(m, "Id"))
	}
	if !slices.Contains(statistics, stat) {
		return series{}, badParam("query %s: the sandbox supports the statistics %s, not %q", cborString(m, "Id"), strings.Join(statistics, ", "), stat)
	}
	name, ns := cborString(metric, "MetricName"), cborString(metric, "Namespace")
	region := ""
	dims, _ := metric["Dimensions"].(cbor.List)
	for _, d := range dims {
		dm, _ := d.(cbor.Map)
		if cborString(dm, "Name") != "Region" {
			return series{}, nil // no such metric: CloudWatch answers with no datapoints
		}
		region = cborString(dm, "Value")
	}
	var ser series
	if ns != AppNamespace || !slices.Contains(appMetricNames, name) || region == "" || s.opts.AppCounts == nil {
		return ser, nil
	}
	for from := start; from.Before(end); from = from.Add(period) {
		to := from.Add(period)
		if to.After(end) {
			to = end
		}
		v, ok := s.periodValue(region, name, stat, from, to)
		if ok {
			ser.times = append(ser.times, from)
			ser.values = append(ser.values, v)
		}
	}
	return ser, nil
}

// periodValue is one statistic of one metric over [from, to); ok is false when no client
// reached the region's app in it.
func (s *Server) periodValue(region, name, stat string, from, to time.Time) (float64, bool) {
	var reqs, errs, samples int64
	var minV, maxV float64
	first := true
	for sec := from.Truncate(time.Second); sec.Before(to); sec = sec.Add(time.Second) {
		r, e, ok := s.opts.AppCounts(region, sec, sec.Add(time.Second))
		if !ok || r == 0 {
			continue
		}
		reqs, errs, samples = reqs+r, errs+e, samples+1
		v := float64(r)
		if name == "Errors" {
			v = float64(e)
		}
		if first || v < minV {
			minV = v
		}
		if first || v > maxV {
			maxV = v
		}
		first = false
	}
	if samples == 0 {
		return 0, false
	}
	if name == "5XXErrorRate" {
		return float64(errs) / float64(reqs), true
	}
	sum := float64(reqs)
	if name == "Errors" {
		sum = float64(errs)
	}
	switch stat {
	case "Sum":
		return sum, true
	case "Minimum":
		return minV, true
	case "Maximum":
		return maxV, true
	case "SampleCount":
		return float64(samples), true
	default:
		return sum / float64(samples), true
	}
}

func cborTimeValue(v cbor.Value) (time.Time, bool) {
	if t, ok := v.(*cbor.Tag); ok && t.ID == 1 {
		v = t.Value
	}
	f, err := cbor.AsFloat64(v)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(f * 1000)).UTC(), true
}
