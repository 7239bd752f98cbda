package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
)

// requestRecord is what the interceptors learn about a request for its log line: who
// called (set by the auth interceptor once a token or certificate is accepted) and the
// Connect code the call ended with. A request refused before the interceptors run (too
// large, not a Connect/gRPC request) has none; its code is read from the response.
type requestRecord struct {
	identity string
	code     connect.Code
	coded    bool
}

type recordKey struct{}

func recordFrom(ctx context.Context) *requestRecord {
	r, _ := ctx.Value(recordKey{}).(*requestRecord)
	return r
}

// withRequestLog writes one structured line per request: method, identity, Connect code,
// duration. It never logs headers or bodies, so no token, spec or secret reference ends
// up in a log. Refusals (unauthenticated, permission denied, too large) are warnings, so
// they stand out from ordinary traffic; health checks and reflection are debug.
func withRequestLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &requestRecord{}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), recordKey{}, rec)))
		code := rec.code
		if !rec.coded {
			code = sw.code()
		}
		identity := rec.identity
		if identity == "" {
			identity = "-" // not authenticated (yet)
		}
		level := slog.LevelInfo
		switch {
		case !strings.HasPrefix(r.URL.Path, "/"+ferryv1connect.MigrationServiceName+"/"):
			level = slog.LevelDebug
		case code == connect.CodeUnauthenticated, code == connect.CodePermissionDenied, code == connect.CodeResourceExhausted:
			level = slog.LevelWarn
		}
		log.LogAttrs(r.Context(), level, "api request",
			slog.String("method", r.URL.Path),
			slog.String("identity", identity),
			slog.String("code", codeName(code)),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
		)
	})
}

// codeName is "ok" for success, else connect's name (snake_case, as on the wire).
func codeName(c connect.Code) string {
	if c == 0 {
		return "ok"
	}
	return c.String()
}

// statusWriter remembers the status and the start of an error body, to name the code of a
// request refused before the interceptors ran.
type statusWriter struct {
	http.ResponseWriter
	status int
	head   []byte
}

func (s *statusWriter) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if s.status != http.StatusOK && len(s.head) < 512 {
		s.head = append(s.head, p[:min(len(p), 512-len(s.head))]...)
	}
	return s.ResponseWriter.Write(p)
}

// Flush and Unwrap keep streaming (WatchMigration) and http.ResponseController working.
func (s *statusWriter) Flush() { _ = http.NewResponseController(s.ResponseWriter).Flush() }

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// code reads the Connect code from the response: gRPC's grpc-status (a header or a
// trailer), else a Connect error body's "code", else the HTTP status.
func (s *statusWriter) code() connect.Code {
	h := s.Header()
	for _, k := range []string{"Grpc-Status", http.TrailerPrefix + "Grpc-Status"} {
		if v := h.Get(k); v != "" {
			n, _ := strconv.Atoi(v)
			return connect.Code(n)
		}
	}
	if s.status == 0 || s.status == http.StatusOK {
		return 0
	}
	var body struct {
		Code string `json:"code"`
	}
	var c connect.Code
	if json.Unmarshal(s.head, &body) == nil && c.UnmarshalText([]byte(body.Code)) == nil {
		return c
	}
	switch s.status {
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return connect.CodeResourceExhausted
	case http.StatusUnauthorized:
		return connect.CodeUnauthenticated
	case http.StatusForbidden:
		return connect.CodePermissionDenied
	case http.StatusNotFound:
		return connect.CodeNotFound
	case http.StatusUnsupportedMediaType, http.StatusMethodNotAllowed:
		return connect.CodeUnimplemented
	}
	if s.status < 500 {
		return connect.CodeInvalidArgument
	}
	return connect.CodeUnknown
}

// logInterceptor records each call's code for the request's log line. It is the
// outermost interceptor, so it sees the auth interceptor's refusals.
type logInterceptor struct{}

func (logInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		recordCode(ctx, err)
		return res, err
	}
}

func (logInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (logInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		err := next(ctx, conn)
		recordCode(ctx, err)
		return err
	}
}

func recordCode(ctx context.Context, err error) {
	if rec := recordFrom(ctx); rec != nil {
		rec.coded = true
		if err != nil {
			rec.code = connect.CodeOf(err)
		}
	}
}
