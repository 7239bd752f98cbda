package awssim

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// The AWS CLI v1 (botocore) still sends CloudWatch requests in the Query protocol, so the
// sandbox accepts it too: the form is turned into the same input map the CBOR path
// decodes, and the output map is written back as Query XML.

const cwQueryNS = "http://monitoring.amazonaws.com/doc/2010-08-01/"

var cwNumeric = map[string]bool{"Threshold": true, "EvaluationPeriods": true, "Period": true, "DatapointsToAlarm": true, "MaxRecords": true}

func queryToCBOR(form url.Values) cbor.Map {
	m := cbor.Map{}
	lists := map[string]map[int]string{}
	for k, vs := range form {
		if k == "Action" || k == "Version" || len(vs) == 0 {
			continue
		}
		if name, idx, ok := strings.Cut(k, ".member."); ok {
			i, err := strconv.Atoi(idx)
			if err != nil {
				continue
			}
			if lists[name] == nil {
				lists[name] = map[int]string{}
			}
			lists[name][i] = vs[0]
			continue
		}
		if cwNumeric[k] {
			if f, err := strconv.ParseFloat(vs[0], 64); err == nil {
				m[k] = cbor.Float64(f)
				continue
			}
		}
		m[k] = cbor.String(vs[0])
	}
	for name, byIdx := range lists {
		idxs := make([]int, 0, len(byIdx))
		for i := range byIdx {
			idxs = append(idxs, i)
		}
		sort.Ints(idxs)
		l := cbor.List{}
		for _, i := range idxs {
			l = append(l, cbor.String(byIdx[i]))
		}
		m[name] = l
	}
	return m
}

// writeQueryValue writes a CBOR value as Query-protocol XML elements.
func writeQueryValue(b *bytes.Buffer, v cbor.Value) {
	switch x := v.(type) {
	case cbor.Map:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteString("<" + k + ">")
			writeQueryValue(b, x[k])
			b.WriteString("</" + k + ">")
		}
	case cbor.List:
		for _, e := range x {
			b.WriteString("<member>")
			writeQueryValue(b, e)
			b.WriteString("</member>")
		}
	case cbor.String:
		_ = xml.EscapeText(b, []byte(x))
	case cbor.Float64:
		b.WriteString(strconv.FormatFloat(float64(x), 'f', -1, 64))
	case cbor.Uint:
		b.WriteString(strconv.FormatUint(uint64(x), 10))
	case cbor.Bool:
		b.WriteString(strconv.FormatBool(bool(x)))
	case *cbor.Tag:
		if f, ok := x.Value.(cbor.Float64); ok && x.ID == 1 {
			b.WriteString(time.UnixMilli(int64(float64(f) * 1000)).UTC().Format("2006-01-02T15:04:05.000Z"))
		}
	}
}

func (s *Server) serveCloudWatchQuery(w http.ResponseWriter, q *req) {
	vals, err := url.ParseQuery(string(q.body))
	if err != nil {
		s.writeQueryError(w, q, &apiError{http.StatusBadRequest, "MalformedQueryString", err.Error()})
		return
	}
	q.op = vals.Get("Action")
	out, e := s.runCloudWatch(q, queryToCBOR(vals))
	if e != nil {
		s.writeQueryError(w, q, e)
		return
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString("<" + q.op + "Response xmlns=\"" + cwQueryNS + "\"><" + q.op + "Result>")
	writeQueryValue(&b, out)
	b.WriteString("</" + q.op + "Result><ResponseMetadata><RequestId>" + q.id + "</RequestId></ResponseMetadata></" + q.op + "Response>")
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-RequestId", q.id)
	_, _ = w.Write(b.Bytes())
}

func (s *Server) writeQueryError(w http.ResponseWriter, q *req, e *apiError) {
	var r r53ErrorResponse // same shape: ErrorResponse/Error/{Type,Code,Message}, RequestId
	r.NS = cwQueryNS
	r.Error.Type = "Sender"
	if e.status >= 500 {
		r.Error.Type = "Receiver"
	}
	r.Error.Code, r.Error.Message, r.RequestID = e.code, e.msg, q.id
	b, _ := xml.Marshal(r)
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}
