package testenv

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/internal/apiclient"
	"github.com/ferryhq/ferry/internal/devtemporal"
	"github.com/ferryhq/ferry/internal/telemetry"
	"github.com/ferryhq/ferry/proof"
	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/topology"
	"github.com/ferryhq/ferry/server"
	"github.com/ferryhq/ferry/worker"
)

// Tokens every Stack accepts: alice operates, bob and carol approve, vera views, and
// alice-approver is alice holding both roles (to show four-eyes refuses her anyway).
var (
	TokenAlice         = "tok-alice-operator-0001"
	TokenAliceApprover = "tok-alice-approver-0001"
	TokenBob           = "tok-bob-approver-00001"
	TokenCarol         = "tok-carol-approver-0001"
	TokenVera          = "tok-vera-viewer-000001"
)

// Stack is ferry as `ferry dev` runs it, in-process: embedded Temporal, a fast sandbox, a
// worker and the API served over HTTP/2 (TLS, so the gRPC protocol works too).
type Stack struct {
	Temporal *devtemporal.Server
	Client   client.Client
	Sandbox  *sandbox.Sandbox
	Mongo    *sandbox.MongoSets
	API      *httptest.Server
	// SigningKey is the API's: tests that play a forger sign with another.
	SigningKey ed25519.PrivateKey
	// Metrics is what the worker's and the API's client record (the SDK's and ferry's
	// own), served at API.URL + "/metrics" as `ferry server` serves it.
	Metrics *telemetry.Metrics

	workerOpts worker.Options
	workerMu   sync.Mutex
	worker     *worker.Worker
	restarts   int
}

// RestartWorker stops ferry's worker and starts a new one with the same options, as a
// deploy or a crash and its replacement would: the new worker has nothing cached, so every
// running workflow continues from its history. It returns how many restarts so far.
func (s *Stack) RestartWorker(t testing.TB) int {
	t.Helper()
	s.workerMu.Lock()
	defer s.workerMu.Unlock()
	s.worker.Stop()
	s.restarts++
	o := s.workerOpts
	o.Identity = fmt.Sprintf("test-worker-%d", s.restarts)
	w, err := worker.New(context.Background(), s.Client, o)
	if err != nil {
		t.Fatalf("build worker: %v", err)
	}
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	s.worker = w
	return s.restarts
}

// StackOptions change how StartStackWith builds the stack.
type StackOptions struct {
	// Tracing, when set, traces the API's calls and the Temporal client's (so the worker's
	// workflows and activities) as `ferry server` and `ferry worker` do with OTLP on.
	Tracing *telemetry.Tracing
	// Topology edits the sandbox's topology (after StartSandbox's own edits).
	Topology func(*topology.Topology)
	// ClientTTLScale is the sandbox's (sandbox.Options): 1 for clients that cache answers.
	ClientTTLScale float64
}

// StartStack starts the stack; everything stops when the test ends.
func StartStack(t testing.TB) *Stack {
	t.Helper()
	return StartStackWith(t, StackOptions{})
}

// StartStackWith starts the stack with o; everything stops when the test ends.
func StartStackWith(t testing.TB, o StackOptions) *Stack {
	t.Helper()
	srv, raw := Temporal(t)
	ctx := context.Background()
	metrics, err := telemetry.NewMetrics(nil)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	t.Cleanup(metrics.Close)
	interceptors, err := o.Tracing.TemporalInterceptors()
	if err != nil {
		t.Fatalf("tracing: %v", err)
	}
	traceAPI, err := o.Tracing.ConnectInterceptor()
	if err != nil {
		t.Fatalf("tracing: %v", err)
	}
	c, err := client.NewClientFromExisting(raw, client.Options{Namespace: srv.Namespace(), Logger: QuietLogger(), MetricsHandler: metrics.Handler, Interceptors: interceptors})
	if err != nil {
		t.Fatalf("client with metrics: %v", err)
	}
	t.Cleanup(c.Close)
	var edits []func(*topology.Topology)
	if o.Topology != nil {
		edits = append(edits, o.Topology)
	}
	sb, mongo := startSandbox(t, o.ClientTTLScale, edits...)
	// The API signs with a key the worker trusts, as in `ferry dev`: approvals and starts
	// that did not come through the API are refused.
	pub, signingKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	wopts := worker.Options{
		Identity:    "test-worker",
		Cloud:       worker.CloudOptions{AWSEndpoint: sb.Addr()},
		TrustedKeys: proof.Keys{proof.KeyID(pub): pub},
	}
	w, err := worker.New(ctx, c, wopts)
	if err != nil {
		t.Fatalf("build worker: %v", err)
	}
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	st := &Stack{workerOpts: wopts, worker: w}
	t.Cleanup(func() {
		st.workerMu.Lock()
		defer st.workerMu.Unlock()
		st.worker.Stop()
	})
	tokens := server.NewTokens(
		server.TokenEntry{Token: TokenAlice, Principal: server.Principal{Identity: "alice", Roles: []string{server.RoleOperator}}},
		server.TokenEntry{Token: TokenAliceApprover, Principal: server.Principal{Identity: "alice", Roles: []string{server.RoleOperator, server.RoleApprover}}},
		server.TokenEntry{Token: TokenBob, Principal: server.Principal{Identity: "bob", Roles: []string{server.RoleApprover}}},
		server.TokenEntry{Token: TokenCarol, Principal: server.Principal{Identity: "carol", Roles: []string{server.RoleApprover}}},
		server.TokenEntry{Token: TokenVera, Principal: server.Principal{Identity: "vera", Roles: []string{server.RoleViewer}}},
	)
	api := httptest.NewUnstartedServer(server.Handler(c, server.Options{Namespace: srv.Namespace(), UIURL: "http://ui.test", Tokens: tokens, SigningKey: signingKey, Metrics: metrics.HTTP(), TraceInterceptor: traceAPI}))
	api.EnableHTTP2 = true
	api.StartTLS()
	t.Cleanup(api.Close)
	st.Temporal, st.Client, st.Sandbox, st.Mongo, st.API, st.SigningKey, st.Metrics = srv, c, sb, mongo, api, signingKey, metrics
	return st
}

// StartSandbox starts the sandbox as tests want it: fast, every record's TTL 1 s, the replica
// set's members on ports of their own; edits change the topology first (e.g.
// AddShiftRecords). Both stop when the test ends.
func StartSandbox(t testing.TB, edits ...func(*topology.Topology)) (*sandbox.Sandbox, *sandbox.MongoSets) {
	t.Helper()
	return startSandbox(t, 0, edits...)
}

func startSandbox(t testing.TB, clientTTLScale float64, edits ...func(*topology.Topology)) (*sandbox.Sandbox, *sandbox.MongoSets) {
	t.Helper()
	ctx := context.Background()
	// TTL 1s: a shift dwells max(bake, TTL), so the default 60s would make every test step
	// a minute long.
	topo := topology.Default()
	for i := range topo.HostedZones {
		for j := range topo.HostedZones[i].Records {
			topo.HostedZones[i].Records[j].TTL = 1
		}
	}
	// The replica set on free ports: a developer's own `ferry dev` may hold 27017 and up.
	for i := range topo.Mongo.ReplicaSets {
		for j := range topo.Mongo.ReplicaSets[i].Members {
			topo.Mongo.ReplicaSets[i].Members[j].Port = 0
		}
	}
	for _, edit := range edits {
		edit(topo)
	}
	mongo, err := sandbox.StartMongo(ctx, topo, true, nil)
	if err != nil {
		t.Fatalf("start sandbox mongodb: %v", err)
	}
	t.Cleanup(func() { _ = mongo.Close() })
	sb, err := sandbox.Start(ctx, sandbox.Options{Addr: "127.0.0.1:0", Fast: true, Topology: topo, Mongo: mongo, ClientTTLScale: clientTTLScale})
	if err != nil {
		t.Fatalf("start sandbox: %v", err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	return sb, mongo
}

// APIClient returns a MigrationService client that sends token; grpc picks the gRPC
// protocol instead of Connect.
func (s *Stack) APIClient(token string, grpc bool) ferryv1connect.MigrationServiceClient {
	return apiclient.New(s.API.Client(), s.API.URL, token, grpc)
}

// AddShiftRecords adds n weighted A records to the topology's first zone, each at 100 on
// set identifier eu-west-1 and 0 on eu-west-2 with TTL 1s, for runs of many shifts.
func AddShiftRecords(topo *topology.Topology, n int, name func(i int) string) {
	for i := range n {
		topo.HostedZones[0].Records = append(topo.HostedZones[0].Records, topology.Record{
			Name: name(i), Type: "A", TTL: 1,
			Weighted: []topology.WeightedSet{
				{SetIdentifier: "eu-west-1", Weight: 100, Values: []string{"198.51.100.10"}},
				{SetIdentifier: "eu-west-2", Weight: 0, Values: []string{"198.51.100.20"}},
			},
		})
	}
}
