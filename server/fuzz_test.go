package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/server"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// fuzzProcedures are the paths a fuzz input picks from: every RPC, health, reflection and
// a path that is none of them.
var fuzzProcedures = []string{
	ferryv1connect.MigrationServicePlanMigrationProcedure,
	ferryv1connect.MigrationServiceStartMigrationProcedure,
	ferryv1connect.MigrationServiceGetMigrationProcedure,
	ferryv1connect.MigrationServiceListMigrationsProcedure,
	ferryv1connect.MigrationServiceWatchMigrationProcedure,
	ferryv1connect.MigrationServiceApproveStepProcedure,
	ferryv1connect.MigrationServicePauseMigrationProcedure,
	ferryv1connect.MigrationServiceResumeMigrationProcedure,
	ferryv1connect.MigrationServiceCancelMigrationProcedure,
	ferryv1connect.MigrationServiceRollbackMigrationProcedure,
	"/grpc.health.v1.Health/Check",
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
	"/ferry.v1.MigrationService/Nope",
}

var fuzzContentTypes = []string{
	"application/proto", "application/json", "application/grpc", "application/grpc+proto",
	"application/grpc-web+proto", "application/connect+proto", "application/connect+json", "text/plain", "",
}

// fuzzApprover is the one token that may approve. It is in no seed and the fuzzer cannot
// guess it, so no input may ever get an approval to Temporal.
var fuzzApprover = "fuzz-approver-" + strconv.FormatInt(time.Now().UnixNano(), 36)

// recordingClient passes every call to Temporal and counts approve updates and signals
// that reach it.
type recordingClient struct {
	client.Client
	approvals atomic.Int64
}

func (r *recordingClient) UpdateWorkflow(ctx context.Context, o client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	if o.UpdateName == workflows.UpdateApprove {
		r.approvals.Add(1)
	}
	return r.Client.UpdateWorkflow(ctx, o)
}

func (r *recordingClient) SignalWorkflow(ctx context.Context, id, runID, name string, arg any) error {
	if name == workflows.SignalApprove {
		r.approvals.Add(1)
	}
	return r.Client.SignalWorkflow(ctx, id, runID, name, arg)
}

// FuzzAPI sends random and mutated requests (path, content type, compression, token,
// body) to the real handler over HTTP, on an embedded Temporal with no worker, and checks
// that nothing panics, no answer is a 5xx other than the deliberate ones (unavailable,
// deadline exceeded, unimplemented), and no approval ever reaches Temporal.
//
//	go test -run '^$' -fuzz FuzzAPI -fuzztime 100000x ./server/
func FuzzAPI(f *testing.F) {
	if testing.Short() {
		f.Skip("boots an embedded Temporal")
	}
	_, c := testenv.Temporal(f)
	rc := &recordingClient{Client: c}
	var panics atomic.Int64
	h := server.Handler(rc, server.Options{
		Tokens: server.NewTokens(
			server.TokenEntry{Token: testenv.TokenAlice, Principal: server.Principal{Identity: "alice", Roles: []string{server.RoleOperator}}},
			server.TokenEntry{Token: testenv.TokenVera, Principal: server.Principal{Identity: "vera", Roles: []string{server.RoleViewer}}},
			server.TokenEntry{Token: fuzzApprover, Principal: server.Principal{Identity: "bob", Roles: []string{server.RoleApprover}}},
		),
		// Small limits and deadlines: inputs that reach them stay fast, and a limit is
		// reached more often.
		MaxRequestBytes: 64 << 10, CallTimeout: 50 * time.Millisecond, PlanTimeout: 50 * time.Millisecond, LockWait: -1,
	})
	api := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				panics.Add(1)
				f.Logf("panic serving %s: %v", r.URL.Path, p)
				panic(p)
			}
		}()
		h.ServeHTTP(w, r)
	}))
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	api.Config.Protocols = &protocols
	api.Start()
	f.Cleanup(api.Close)
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	clients := []*http.Client{
		{Timeout: 10 * time.Second},
		{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &h2c}},
	}

	for _, s := range fuzzSeeds(f) {
		f.Add(s.proc, s.ctype, s.enc, s.auth, s.body)
	}
	f.Fuzz(func(t *testing.T, proc, ctype, enc, auth uint8, body []byte) {
		path := fuzzProcedures[int(proc)%len(fuzzProcedures)]
		ct := fuzzContentTypes[int(ctype)%len(fuzzContentTypes)]
		grpcLike := strings.HasPrefix(ct, "application/grpc") || strings.HasPrefix(ct, "application/connect+")
		// enc: bit 0 gzip the message, bit 1 claim gzip without compressing, bit 2 name an
		// unknown encoding, bit 3 send over HTTP/2, bits 4+ repeat the body (size).
		msg := body
		if enc&1 != 0 {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			_, _ = zw.Write(body)
			_ = zw.Close()
			msg = b.Bytes()
		}
		if n := int(enc >> 4); n > 1 {
			msg = bytes.Repeat(msg, n*n*64)
		}
		encoding := ""
		switch {
		case enc&4 != 0:
			encoding = "br"
		case enc&3 != 0:
			encoding = "gzip"
		}
		if grpcLike {
			env := make([]byte, 5, 5+len(msg))
			if encoding != "" {
				env[0] = 1
			}
			binary.BigEndian.PutUint32(env[1:], uint32(len(msg)))
			msg = append(env, msg...)
		}
		req, err := http.NewRequest(http.MethodPost, api.URL+path, bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if encoding != "" {
			switch {
			case strings.HasPrefix(ct, "application/grpc"):
				req.Header.Set("Grpc-Encoding", encoding)
			case strings.HasPrefix(ct, "application/connect+"):
				req.Header.Set("Connect-Content-Encoding", encoding)
			default:
				req.Header.Set("Content-Encoding", encoding)
			}
		}
		req.Header.Set("Te", "trailers")
		switch auth % 5 {
		case 1:
			req.Header.Set("Authorization", "Bearer "+testenv.TokenVera)
		case 2:
			req.Header.Set("Authorization", "Bearer "+testenv.TokenAlice)
		case 3:
			req.Header.Set("Authorization", "Bearer "+string(body[:min(len(body), 40)]))
		case 4:
			req.Header.Set("Authorization", "Basic "+testenv.TokenAlice)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := clients[int(enc>>3)&1].Do(req.WithContext(ctx))
		if err != nil {
			// The server may reset a stream it refused mid-body; what matters is below.
			return
		}
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if panics.Load() > 0 {
			t.Fatalf("the handler panicked on %s %s (see log)", path, ct)
		}
		if code := answerCode(resp, head); code == connect.CodeInternal || code == connect.CodeUnknown || code == connect.CodeDataLoss {
			t.Fatalf("%s %s (encoding %q, %d bytes): HTTP %d, code %v: %.300s", path, ct, encoding, len(msg), resp.StatusCode, code, head)
		}
		if n := rc.approvals.Load(); n > 0 {
			t.Fatalf("%d approvals reached Temporal without the approver's token", n)
		}
	})
}

// answerCode is the Connect code an answer carries: gRPC's grpc-status, a Connect error
// body's code, or, for a 5xx with neither, Unknown (0 when it is a success).
// testdata/fuzz/FuzzAPI/bidi-over-http1-505 is the first input FuzzAPI found: reflection over
// HTTP/1.1, answered 505 by connect-go by design.
func answerCode(resp *http.Response, body []byte) connect.Code {
	for _, v := range []string{resp.Trailer.Get("Grpc-Status"), resp.Header.Get("Grpc-Status")} {
		if v != "" {
			n, _ := strconv.Atoi(v)
			return connect.Code(n)
		}
	}
	var c connect.Code
	if i := bytes.Index(body, []byte(`"code":"`)); i >= 0 {
		rest := body[i+8:]
		if j := bytes.IndexByte(rest, '"'); j >= 0 && c.UnmarshalText(rest[:j]) == nil {
			return c
		}
	}
	switch {
	case resp.StatusCode == http.StatusHTTPVersionNotSupported:
		// connect-go refuses a bidi stream (reflection) over HTTP/1.1 this way, on purpose.
		return connect.CodeUnimplemented
	case resp.StatusCode >= 500:
		return connect.CodeUnknown
	}
	return 0
}

type fuzzSeed struct {
	name                   string
	proc, ctype, enc, auth uint8
	body                   []byte
}

// fuzzSeeds are valid requests of every RPC, as a client sends them, for the fuzzer to
// mutate; testdata/fuzz/FuzzAPI holds the same as files (FERRY_WRITE_FUZZ_SEEDS=1
// rewrites them).
func fuzzSeeds(tb testing.TB) []fuzzSeed {
	shift, err := spec.Parse([]byte(`dnsShift: {hostedZone: shop.example., recordName: www.shop.example., from: eu-west-1, to: eu-west-2}`), ".yaml")
	if err != nil {
		tb.Fatal(err)
	}
	mongo, err := spec.Parse([]byte(`mongoPrimaryMove: {uri: "mongodb://10.0.0.1:27017/?replicaSet=rs0", sourceRegion: eu-west-1, targetRegion: eu-west-2, newMembers: ["10.0.0.2:27017"]}`), ".yaml")
	if err != nil {
		tb.Fatal(err)
	}
	id := "dns/shop.example/www.shop.example/A"
	msgs := []struct {
		name string
		proc uint8
		m    proto.Message
	}{
		{"plan", 0, &ferryv1.PlanMigrationRequest{Spec: shift}},
		{"plan-mongo", 0, &ferryv1.PlanMigrationRequest{Spec: mongo}},
		{"start", 1, &ferryv1.StartMigrationRequest{Spec: shift, IdempotencyKey: "k1"}},
		{"get", 2, &ferryv1.GetMigrationRequest{Id: id}},
		{"list", 3, &ferryv1.ListMigrationsRequest{Region: "eu-west-1", Initiator: "alice", PageSize: 10}},
		{"watch", 4, &ferryv1.WatchMigrationRequest{Id: id}},
		{"approve", 5, &ferryv1.ApproveStepRequest{Id: id, Comment: "ok"}},
		{"pause", 6, &ferryv1.PauseMigrationRequest{Id: id, Reason: "lunch"}},
		{"cancel", 8, &ferryv1.CancelMigrationRequest{Id: id}},
	}
	var out []fuzzSeed
	for _, m := range msgs {
		b, err := proto.Marshal(m.m)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out,
			fuzzSeed{m.name + "-connect-operator", m.proc, 0, 0, 2, b},
			fuzzSeed{m.name + "-grpc-gzip-viewer", m.proc, 2, 1 | 8, 1, b},
		)
	}
	out = append(out,
		fuzzSeed{"json-list-viewer", 3, 1, 0, 1, []byte(`{"region":"eu-west-1\\' OR 1=1 -- ","pageSize":5}`)},
		fuzzSeed{"gzip-claimed-raw", 1, 0, 2, 0, []byte("not gzip at all")},
		fuzzSeed{"big-repeat", 1, 0, 0xf1, 2, bytes.Repeat([]byte{0x0a, 0x00}, 512)},
		fuzzSeed{"grpc-web", 2, 4, 0, 1, []byte{0x0a, 0x03, 'a', '/', 'b'}},
	)
	if os.Getenv("FERRY_WRITE_FUZZ_SEEDS") == "1" {
		dir := filepath.Join("testdata", "fuzz", "FuzzAPI")
		_ = os.MkdirAll(dir, 0o755)
		for _, s := range out {
			text := fmt.Sprintf("go test fuzz v1\nbyte(%q)\nbyte(%q)\nbyte(%q)\nbyte(%q)\n[]byte(%q)\n", rune(s.proc), rune(s.ctype), rune(s.enc), rune(s.auth), s.body)
			if err := os.WriteFile(filepath.Join(dir, s.name), []byte(text), 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return out
}
