package awssim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const ec2NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

type ec2Handler func(s *Server, q *req) (any, *apiError)

// ec2Ops maps actions to handlers; mutating ones are recorded in the call record.
var ec2Ops = map[string]struct {
	h        ec2Handler
	mutating bool
}{
	"DescribeImages":            {(*Server).describeImages, false},
	"CreateImage":               {(*Server).createImage, true},
	"CopyImage":                 {(*Server).copyImage, true},
	"DeregisterImage":           {(*Server).deregisterImage, true},
	"DescribeImageAttribute":    {(*Server).describeImageAttribute, false},
	"ModifyImageAttribute":      {(*Server).modifyImageAttribute, true},
	"DescribeSnapshots":         {(*Server).describeSnapshots, false},
	"DescribeSnapshotAttribute": {(*Server).describeSnapshotAttribute, false},
	"ModifySnapshotAttribute":   {(*Server).modifySnapshotAttribute, true},
	"DeleteSnapshot":            {(*Server).deleteSnapshot, true},
	"CreateTags":                {(*Server).createTags, true},
	"DeleteTags":                {(*Server).deleteTags, true},
	"DescribeTags":              {(*Server).describeTags, false},
	"DescribeRegions":           {(*Server).describeRegions, false},
	"RunInstances":              {(*Server).runInstances, true},
	"DescribeInstances":         {(*Server).describeInstances, false},
	"TerminateInstances":        {(*Server).terminateInstances, true},
}

func (s *Server) serveEC2(w http.ResponseWriter, q *req) {
	vals, err := url.ParseQuery(string(q.body))
	if err != nil {
		s.writeEC2Error(w, q, &apiError{http.StatusBadRequest, "MalformedQueryString", "cannot parse form body: " + err.Error()})
		return
	}
	for k, v := range q.http.URL.Query() {
		if _, ok := vals[k]; !ok && !strings.HasPrefix(k, "X-Amz-") {
			vals[k] = v
		}
	}
	q.form = query(vals)
	q.op = q.form.get("Action")
	op, ok := ec2Ops[q.op]
	if !ok {
		if q.op == "" {
			s.writeEC2Error(w, q, &apiError{http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action"})
		} else {
			s.writeEC2Error(w, q, &apiError{http.StatusBadRequest, "InvalidAction",
				fmt.Sprintf("The action %s is not valid for this web service (the sandbox does not simulate it).", q.op)})
		}
		return
	}
	if _, ok := s.ec2[q.region]; !ok {
		s.writeEC2Error(w, q, &apiError{http.StatusUnauthorized, "AuthFailure",
			fmt.Sprintf("region %q is not enabled in this sandbox (regions: %s)", q.region, strings.Join(s.opts.Regions, ", "))})
		return
	}
	if e := s.before(q.http.Context(), q, op.mutating); e != nil {
		s.record(q, e)
		s.writeEC2Error(w, q, e)
		return
	}
	if q.form.boolean("DryRun") {
		e := &apiError{http.StatusPreconditionFailed, "DryRunOperation", "Request would have succeeded, but DryRun flag is set."}
		s.writeEC2Error(w, q, e)
		return
	}
	s.mu.Lock()
	out, e := op.h(s, q)
	s.mu.Unlock()
	s.record(q, e)
	if e != nil {
		s.writeEC2Error(w, q, e)
		return
	}
	s.writeEC2(w, out)
}

func (s *Server) writeEC2(w http.ResponseWriter, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		s.log.Error("encode ec2 response", "err", err)
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

type ec2ErrorResponse struct {
	XMLName   xml.Name `xml:"Response"`
	Errors    []ec2Err `xml:"Errors>Error"`
	RequestID string   `xml:"RequestID"`
}

type ec2Err struct {
	Code    string
	Message string
}

func (s *Server) writeEC2Error(w http.ResponseWriter, q *req, e *apiError) {
	b, _ := xml.Marshal(ec2ErrorResponse{Errors: []ec2Err{{e.code, e.msg}}, RequestID: q.id})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

// ec2Resp is the envelope every EC2 answer shares; Inner holds the action's fields.
type ec2Resp struct {
	XMLName   xml.Name
	NS        string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
	Inner     string `xml:",innerxml"`
}

// resp wraps an action's fields (a struct whose fields carry the EC2 element names) in
// the <ActionResponse> envelope.
func resp(q *req, body any) *ec2Resp {
	var inner string
	if body != nil {
		b, err := xml.Marshal(struct {
			XMLName xml.Name `xml:"x"`
			V       any
		}{V: body})
		if err == nil {
			// Strip <x><V>..</V></x>: the fields belong directly under the envelope.
			s := strings.TrimSuffix(strings.TrimPrefix(string(b), "<x>"), "</x>")
			s = strings.TrimSuffix(strings.TrimPrefix(s, "<V>"), "</V>")
			inner = s
		}
	}
	return &ec2Resp{XMLName: xml.Name{Local: q.op + "Response"}, NS: ec2NS, RequestID: q.id, Inner: inner}
}

type returnTrue struct {
	Return bool `xml:"return"`
}

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func tagSet(tags map[string]string) []xmlTag {
	out := make([]xmlTag, 0, len(tags))
	for _, k := range sortedKeys(tags) {
		out = append(out, xmlTag{k, tags[k]})
	}
	return out
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func badParam(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf(format, args...)}
}

func missing(name string) *apiError {
	return &apiError{http.StatusBadRequest, "MissingParameter",
		fmt.Sprintf("The request must contain the parameter %s", name)}
}
