// Package awssim simulates the parts of AWS that ferry drives (EC2 images, snapshots and
// instances; Route 53 zones, records, changes and health checks; CloudWatch alarms) over
// the real wire protocols, so unmodified aws-sdk-go-v2 clients and the AWS CLI work
// against it with only an endpoint override.
//
// One http.Handler serves all services. Route 53 is recognised by its path, CloudWatch by
// the Smithy RPC v2 CBOR path its current SDKs use (or, by scope, the awsJson1_0 the AWS
// CLI v1 sends, or the older Query protocol), and EC2 by the SigV4 credential scope. The
// region is the scope's region; signatures are not verified.
package awssim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/sandbox/control"
)

// Options configures a Server. Zero durations mean "instant".
type Options struct {
	Account string   // 12 digits; default 000000000000
	Regions []string // EC2 regions served; default eu-west-1, eu-west-2, us-east-1

	CopyTimePerGiB     time.Duration // an image copy (or CreateImage) is pending this long per GiB
	Route53InsyncDelay time.Duration // a change is PENDING this long, then INSYNC
	InstanceStartTime  time.Duration // an instance is pending this long, then running

	// Limits turns on AWS request limits: EC2 token buckets (RequestLimitExceeded),
	// concurrent copy limits (ResourceLimitExceeded) and Route 53's 10 requests/s
	// (Throttling).
	Limits bool
	// PriorRequestNotComplete refuses a Route 53 change to a zone while the zone's last
	// change is PENDING, as Route 53 may. Separate from Limits because it slows shifts.
	PriorRequestNotComplete bool

	// Faults is the GameDay fault registry; nil means no faults.
	Faults *control.Registry
	// AppHealthy reports a region's app health for health checks that watch an app.
	AppHealthy func(region string) bool
	// AppErrorRate reports a region's app error rate for alarms that watch an app.
	AppErrorRate func(region string) (rate float64, ok bool)
	// AppCounts reports the requests and errors clients sent to a region's app in
	// [from, to), for GetMetricData; ok is false for a region without an app.
	AppCounts func(region string, from, to time.Time) (requests, errors int64, ok bool)

	Logger *slog.Logger
	Now    func() time.Time // default time.Now
}

// Server is the simulated AWS endpoint. It is safe for concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	ec2     map[string]*ec2Region
	r53     *r53State
	cw      map[string]*cwRegion
	limiter *limiter

	recMu sync.Mutex
	calls []control.Call
	seq   int64
}

// New returns a Server with no resources; see Seed.
func New(opts Options) *Server {
	if opts.Account == "" {
		opts.Account = "000000000000"
	}
	if len(opts.Regions) == 0 {
		opts.Regions = []string{"eu-west-1", "eu-west-2", "us-east-1"}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		now:     opts.Now,
		ec2:     map[string]*ec2Region{},
		cw:      map[string]*cwRegion{},
		r53:     newR53State(),
		limiter: newLimiter(opts.Now),
	}
	for _, r := range opts.Regions {
		s.ec2[r] = newEC2Region(r)
		s.cw[r] = &cwRegion{alarms: map[string]*alarm{}}
	}
	return s
}

// Account returns the simulated account id.
func (s *Server) Account() string { return s.opts.Account }

// req is one AWS request being served.
type req struct {
	service string // ec2, route53, cloudwatch
	region  string
	op      string
	id      string // request id
	http    *http.Request
	form    query // EC2 parameters
	body    []byte
	call    *control.Call // set for mutating operations
}

var scopeRE = regexp.MustCompile(`Credential=[^/,\s]+/[0-9]{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request`)

// credentialScope extracts region and service from the Authorization header or, for
// presigned URLs, from X-Amz-Credential.
func credentialScope(r *http.Request) (region, service string, ok bool) {
	if m := scopeRE.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1], m[2], true
	}
	if c := r.URL.Query().Get("X-Amz-Credential"); c != "" {
		parts := strings.Split(c, "/")
		if len(parts) == 5 && parts[4] == "aws4_request" {
			return parts[2], parts[3], true
		}
	}
	return "", "", false
}

// ServeHTTP dispatches to EC2, Route 53 or CloudWatch.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	q := &req{http: r, body: body, id: newRequestID()}
	region, service, scoped := credentialScope(r)

	switch {
	case strings.HasPrefix(r.URL.Path, "/2013-04-01/"):
		q.service, q.region = "route53", "us-east-1"
		if !scoped {
			s.writeR53Error(w, q, errMissingAuth())
			return
		}
		s.serveRoute53(w, q)
	case strings.HasPrefix(r.URL.Path, cborPathPrefix):
		q.service, q.region = "cloudwatch", region
		if !scoped {
			s.writeCBORError(w, q, errMissingAuth())
			return
		}
		s.serveCloudWatch(w, q)
	default:
		q.service, q.region = "ec2", region
		if !scoped {
			s.writeEC2Error(w, q, errMissingAuth())
			return
		}
		switch service {
		case "ec2":
			s.serveEC2(w, q)
		case "monitoring":
			q.service = "cloudwatch"
			if strings.HasPrefix(r.Header.Get("X-Amz-Target"), cwTargetPrefix) {
				s.serveCloudWatchJSON(w, q)
			} else {
				s.serveCloudWatchQuery(w, q)
			}
		default:
			s.writeEC2Error(w, q, &apiError{http.StatusBadRequest, "UnknownService",
				fmt.Sprintf("the sandbox does not simulate service %q (credential scope names it); it serves ec2, route53 and monitoring", service)})
		}
	}
}

func errMissingAuth() *apiError {
	return &apiError{http.StatusForbidden, "MissingAuthenticationToken",
		"Request is missing a SigV4 Authorization header with a credential scope (Credential=AKID/DATE/REGION/SERVICE/aws4_request); the sandbox takes the region from it. Any credentials are accepted."}
}

// before runs the fault and limit checks common to every operation. A non-nil error is
// the answer to give instead of running the operation.
func (s *Server) before(ctx context.Context, q *req, mutating bool) *apiError {
	if mutating {
		q.call = &control.Call{
			Time: s.now().UTC(), Region: q.region, Service: q.service, Operation: q.op,
			RequestID: q.id, Result: "ok",
		}
	}
	if s.opts.Faults != nil {
		for _, f := range s.opts.Faults.Hit("aws:" + q.service + ":" + q.op) {
			switch f.Kind {
			case control.KindLatency:
				t := time.NewTimer(time.Duration(f.LatencyMs) * time.Millisecond)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			case control.KindThrottle:
				s.log.Info("fault: throttle", "service", q.service, "op", q.op, "fault", f.ID)
				return throttleError(q.service)
			case control.KindError:
				s.log.Info("fault: error", "service", q.service, "op", q.op, "fault", f.ID)
				return internalError(q.service)
			case control.KindDenied:
				s.log.Info("fault: denied", "service", q.service, "op", q.op, "fault", f.ID)
				return s.deniedError(q.service, q.op)
			}
		}
	}
	if s.opts.Limits {
		if err := s.limiter.allow(q.service, q.region, q.op, mutating); err != nil {
			return err
		}
	}
	return nil
}

func throttleError(service string) *apiError {
	switch service {
	case "ec2":
		return &apiError{http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded."}
	case "cloudwatch":
		return &apiError{http.StatusBadRequest, "Throttling", "Rate exceeded"}
	default:
		return &apiError{http.StatusBadRequest, "Throttling", "Rate exceeded"}
	}
}

func internalError(service string) *apiError {
	switch service {
	case "ec2":
		return &apiError{http.StatusInternalServerError, "InternalError", "An internal error has occurred"}
	default:
		return &apiError{http.StatusInternalServerError, "InternalFailure", "An internal error has occurred"}
	}
}

// deniedError is the service's answer to a caller whose IAM policy does not allow op: a
// 403 that no retry fixes. EC2 says UnauthorizedOperation, Route 53 and CloudWatch
// AccessDenied.
func (s *Server) deniedError(service, op string) *apiError {
	action := service + ":" + op // IAM's action names: ec2:CopyImage, route53:..., cloudwatch:...
	who := "arn:aws:sts::" + s.opts.Account + ":assumed-role/ferry/sandbox"
	why := fmt.Sprintf("User: %s is not authorized to perform: %s because no identity-based policy allows the %s action", who, action, action)
	if service == "ec2" {
		return &apiError{http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation. " + why}
	}
	return &apiError{http.StatusForbidden, "AccessDenied", why}
}

// record finishes and stores the call of a mutating operation.
func (s *Server) record(q *req, err *apiError) {
	if q.call == nil {
		return
	}
	if err != nil {
		q.call.Result = err.code
	}
	if q.call.Params == nil && q.form != nil {
		q.call.Params = q.form.flat()
	}
	s.recMu.Lock()
	s.seq++
	q.call.Seq = s.seq
	s.calls = append(s.calls, *q.call)
	s.recMu.Unlock()
	s.log.Debug("aws call", "service", q.service, "region", q.region, "op", q.op, "result", q.call.Result, "ids", q.call.IDs)
}

// Calls returns the recorded mutating calls matching f, oldest first.
func (s *Server) Calls(f control.CallFilter) []control.Call {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	var out []control.Call
	for _, c := range s.calls {
		if f.Match(c) {
			out = append(out, c)
		}
	}
	return out
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// apiError is an AWS error answer; each protocol writes it in its own form.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

// query is a parsed EC2 Query-protocol request.
type query url.Values

func (q query) get(k string) string { return url.Values(q).Get(k) }

func (q query) flat() map[string]string {
	out := make(map[string]string, len(q))
	for k, v := range q {
		if k == "Action" || k == "Version" {
			continue
		}
		out[k] = strings.Join(v, ",")
	}
	return out
}
