package awssim

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/aws/smithy-go/encoding/cbor"
)

// The AWS CLI v1 (botocore 1.43) picks awsJson1_0 for CloudWatch, the second protocol of
// the service model, as it has no CBOR support: X-Amz-Target names the operation.

const cwTargetPrefix = "GraniteServiceVersion20100801."

func jsonToCBOR(v any) cbor.Value {
	switch x := v.(type) {
	case map[string]any:
		m := cbor.Map{}
		for k, e := range x {
			m[k] = jsonToCBOR(e)
		}
		return m
	case []any:
		l := cbor.List{}
		for _, e := range x {
			l = append(l, jsonToCBOR(e))
		}
		return l
	case string:
		return cbor.String(x)
	case float64:
		return cbor.Float64(x)
	case bool:
		return cbor.Bool(x)
	}
	return &cbor.Nil{}
}

func cborToJSON(v cbor.Value) any {
	switch x := v.(type) {
	case cbor.Map:
		m := map[string]any{}
		for k, e := range x {
			m[k] = cborToJSON(e)
		}
		return m
	case cbor.List:
		l := []any{}
		for _, e := range x {
			l = append(l, cborToJSON(e))
		}
		return l
	case cbor.String:
		return string(x)
	case cbor.Float64:
		return float64(x)
	case cbor.Uint:
		return uint64(x)
	case cbor.Bool:
		return bool(x)
	case *cbor.Tag:
		// Timestamps: awsJson uses epoch seconds, as the CBOR tag 1 does.
		return cborToJSON(x.Value)
	}
	return nil
}

func (s *Server) serveCloudWatchJSON(w http.ResponseWriter, q *req) {
	q.op = strings.TrimPrefix(q.http.Header.Get("X-Amz-Target"), cwTargetPrefix)
	in := cbor.Map{}
	if len(q.body) > 0 {
		var raw any
		if err := json.Unmarshal(q.body, &raw); err != nil {
			s.writeJSONError(w, q, &apiError{http.StatusBadRequest, "SerializationException", "cannot decode JSON body: " + err.Error()})
			return
		}
		if m, ok := jsonToCBOR(raw).(cbor.Map); ok {
			in = m
		}
	}
	out, e := s.runCloudWatch(q, in)
	if e != nil {
		s.writeJSONError(w, q, e)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-RequestId", q.id)
	_ = json.NewEncoder(w).Encode(cborToJSON(out))
}

func (s *Server) writeJSONError(w http.ResponseWriter, q *req, e *apiError) {
	fault := "Sender"
	if e.status >= 500 {
		fault = "Receiver"
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-RequestId", q.id)
	w.Header().Set("X-Amzn-Query-Error", e.code+";"+fault)
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.code, "message": e.msg})
}
