package server_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/internal/apiclient"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/server"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// foreignID is a workflow of another application sharing ferry's namespace: ferry's API
// must neither list it nor act on it.
const foreignID = "billing/invoice-42"

// noWorker is the API on an embedded Temporal with no worker: every call that waits on a
// worker can only end by its deadline, and nothing a request starts ever runs.
type noWorker struct {
	c    client.Client
	api  *httptest.Server
	logs *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startNoWorker(t *testing.T, o server.Options) *noWorker {
	t.Helper()
	srv, c := testenv.Temporal(t)
	logs := &syncBuf{}
	o.Namespace = srv.Namespace()
	o.Tokens = testTokens()
	o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	api := httptest.NewServer(server.Handler(c, o))
	t.Cleanup(api.Close)
	return &noWorker{c: c, api: api, logs: logs}
}

// testTokens are the Stack's principals.
func testTokens() *server.Tokens {
	return server.NewTokens(
		server.TokenEntry{Token: testenv.TokenAlice, Principal: server.Principal{Identity: "alice", Roles: []string{server.RoleOperator}}},
		server.TokenEntry{Token: testenv.TokenBob, Principal: server.Principal{Identity: "bob", Roles: []string{server.RoleApprover}}},
		server.TokenEntry{Token: testenv.TokenVera, Principal: server.Principal{Identity: "vera", Roles: []string{server.RoleViewer}}},
	)
}

func (n *noWorker) client(token string) ferryv1connect.MigrationServiceClient {
	return apiclient.New(http.DefaultClient, n.api.URL, token, false)
}

// startForeign starts another application's workflow under foreignID and waits until
// visibility lists it, so a list that leaks it would show it.
func (n *noWorker) startForeign(ctx context.Context, t *testing.T) {
	t.Helper()
	if _, err := n.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: foreignID, TaskQueue: "billing"}, "SendInvoice", "42"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the foreign workflow in visibility", func() bool {
		res, err := n.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: `WorkflowId = "` + foreignID + `"`})
		return err == nil && len(res.GetExecutions()) == 1
	})
}

// TestHostileInput drives the API on a Temporal without a worker with what a hostile or
// careless caller sends: filters that try to leave the list query, ids of other
// applications' workflows, calls that would wait forever on a worker.
func TestHostileInput(t *testing.T) {
	if testing.Short() {
		t.Skip("boots an embedded Temporal")
	}
	n := startNoWorker(t, server.Options{CallTimeout: 2 * time.Second, PlanTimeout: 2 * time.Second, LockWait: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n.startForeign(ctx, t)
	vera := n.client(testenv.TokenVera)

	t.Run("list filters cannot leave the query", func(t *testing.T) {
		// The old quote() escaped ' but not \, so a value's own backslash escaped the quote
		// that was meant to close it; the rest of the value was then query syntax.
		hostile := []string{
			`eu-west-1\`,
			`\' OR WorkflowType = "SendInvoice" -- `,
			`\' OR WorkflowId = "` + foreignID + `" OR FerryInitiator = "\`,
			`x' OR 'a' = 'a`,
			"eu-west-1\n OR 1=1",
		}
		for _, v := range hostile {
			for _, req := range []*ferryv1.ListMigrationsRequest{{Region: v}, {Initiator: v}} {
				field := "region"
				if req.Initiator != "" {
					field = "initiator"
				}
				res, err := vera.ListMigrations(ctx, connect.NewRequest(req))
				if err != nil {
					var ce *connect.Error
					if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || !strings.HasPrefix(ce.Message(), field+" ") {
						t.Errorf("list with %s %q: %v; want InvalidArgument naming %s", field, v, err, field)
					}
					continue
				}
				for _, m := range res.Msg.GetMigrations() {
					if m.GetId() == foreignID {
						t.Errorf("list with %s %q listed the foreign workflow %s: the filter left the query", field, v, foreignID)
					}
				}
			}
		}
		// Ordinary values still filter.
		if _, err := vera.ListMigrations(ctx, connect.NewRequest(&ferryv1.ListMigrationsRequest{Region: "eu-west-1", Initiator: "ferry-dev@host:123"})); err != nil {
			t.Fatalf("list with ordinary filters: %v", err)
		}
	})

	alice, bob := n.client(testenv.TokenAlice), n.client(testenv.TokenBob)
	// ids that are not ferry's migrations: another application's workflow, and ferry's own
	// plans and locks (cancelling a lock would free a resource under a running move).
	t.Run("ids that are not migrations are refused", func(t *testing.T) {
		before := historyLen(ctx, t, n.c, foreignID)
		calls := map[string]func(id string) error{
			"get": func(id string) error {
				_, err := vera.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
				return err
			},
			"watch": func(id string) error {
				s, err := vera.WatchMigration(ctx, connect.NewRequest(&ferryv1.WatchMigrationRequest{Id: id}))
				if err != nil {
					return err
				}
				for s.Receive() {
				}
				return s.Err()
			},
			"approve": func(id string) error {
				_, err := bob.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id}))
				return err
			},
			"pause": func(id string) error {
				_, err := alice.PauseMigration(ctx, connect.NewRequest(&ferryv1.PauseMigrationRequest{Id: id}))
				return err
			},
			"resume": func(id string) error {
				_, err := alice.ResumeMigration(ctx, connect.NewRequest(&ferryv1.ResumeMigrationRequest{Id: id}))
				return err
			},
			"rollback": func(id string) error {
				_, err := alice.RollbackMigration(ctx, connect.NewRequest(&ferryv1.RollbackMigrationRequest{Id: id}))
				return err
			},
			"cancel": func(id string) error {
				_, err := alice.CancelMigration(ctx, connect.NewRequest(&ferryv1.CancelMigrationRequest{Id: id}))
				return err
			},
		}
		// A workflow of a ferry kind's type but without ferry's FerryKind: not ferry's either.
		if _, err := n.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "lookalike", TaskQueue: "billing"}, "DNSShift", "x"); err != nil {
			t.Fatal(err)
		}
		lock := "lock/route53/Z1/www.example./A"
		if _, err := n.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: lock, TaskQueue: workflows.TaskQueue}, workflows.LockWorkflowName, "x"); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{foreignID, "lookalike", lock} {
			for name, call := range calls {
				err := call(id)
				if code(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "not a ferry migration") {
					t.Errorf("%s %s: %v; want NotFound saying it is not a ferry migration", name, id, err)
				}
			}
		}
		if after := historyLen(ctx, t, n.c, foreignID); after != before {
			t.Fatalf("the foreign workflow's history grew from %d to %d events: the API acted on it", before, after)
		}
	})

	t.Run("calls that wait on a worker end by their deadline", func(t *testing.T) {
		res, err := alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: withSandbox(shiftSpec(t, "", ""), "http://127.0.0.1:9")}))
		if err != nil {
			t.Fatal(err)
		}
		id := res.Msg.GetMigration().GetId()
		bound := 2*time.Second + 3*time.Second // CallTimeout plus slack for a loaded machine
		for name, call := range map[string]func() error{
			"approve": func() error {
				_, err := bob.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id}))
				return err
			},
			"pause": func() error {
				_, err := alice.PauseMigration(ctx, connect.NewRequest(&ferryv1.PauseMigrationRequest{Id: id}))
				return err
			},
			"rollback": func() error {
				_, err := alice.RollbackMigration(ctx, connect.NewRequest(&ferryv1.RollbackMigrationRequest{Id: id}))
				return err
			},
			"plan": func() error {
				_, err := alice.PlanMigration(ctx, connect.NewRequest(&ferryv1.PlanMigrationRequest{Spec: withSandbox(shiftSpec(t, "", ""), "http://127.0.0.1:9")}))
				return err
			},
		} {
			start := time.Now()
			err := call()
			took := time.Since(start)
			t.Logf("%s without a worker: %v after %v", name, code(err), took.Round(time.Millisecond))
			if c := code(err); c != connect.CodeDeadlineExceeded && c != connect.CodeUnavailable {
				t.Errorf("%s without a worker: %v; want DeadlineExceeded or Unavailable", name, err)
			}
			if took > bound {
				t.Errorf("%s without a worker took %v; want at most %v", name, took, bound)
			}
		}
		// A read still answers within the bound, from visibility alone, saying why.
		start := time.Now()
		got, err := vera.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
		if err != nil || !strings.Contains(got.Msg.GetMigration().GetMessage(), "progress unavailable") || time.Since(start) > bound {
			t.Fatalf("get without a worker: %v, %v after %v", got, err, time.Since(start))
		}
	})

	t.Run("a viewer may not plan hosts outside the allow-list", func(t *testing.T) {
		m := mongoSpec(t, "10.9.8.7:27017", "10.9.8.8:27017")
		_, err := vera.PlanMigration(ctx, connect.NewRequest(&ferryv1.PlanMigrationRequest{Spec: m}))
		if code(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "--plan-hosts") || !strings.Contains(err.Error(), "10.9.8.7") {
			t.Fatalf("viewer planning a move of 10.9.8.7: %v; want PermissionDenied naming the rule and the host", err)
		}
		region := &ferryv1.MigrationSpec{Name: "shop", Reason: "r", Kind: &ferryv1.MigrationSpec_RegionMove{RegionMove: &ferryv1.RegionMoveSpec{
			SourceRegion: "eu-west-1", TargetRegion: "eu-west-2", MongoPrimaryMove: m.GetMongoPrimaryMove()}}}
		if _, err := vera.PlanMigration(ctx, connect.NewRequest(&ferryv1.PlanMigrationRequest{Spec: region})); code(err) != connect.CodePermissionDenied {
			t.Fatalf("viewer planning a region move with a MongoDB phase: %v; want PermissionDenied", err)
		}
		// Listed hosts (an address and a prefix) let a viewer plan; an operator always may.
		// Without a worker the plan itself then ends by its deadline.
		allowed := httptest.NewServer(server.Handler(n.c, server.Options{Tokens: testTokens(), PlanTimeout: time.Second, PlanHosts: []string{"10.9.8.7", "10.9.8.0/24"}}))
		defer allowed.Close()
		for who, c := range map[string]ferryv1connect.MigrationServiceClient{
			"viewer, hosts allowed": apiclient.New(http.DefaultClient, allowed.URL, testenv.TokenVera, false),
			"operator":              alice,
		} {
			if _, err := c.PlanMigration(ctx, connect.NewRequest(&ferryv1.PlanMigrationRequest{Spec: m})); code(err) == connect.CodePermissionDenied {
				t.Errorf("%s: %v; want the plan to run", who, err)
			}
		}
	})

	t.Run("one log line per request, refusals included, no tokens", func(t *testing.T) {
		_, _ = n.client("").GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: "x"}))
		_, _ = vera.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{}))
		logs := n.logs.String()
		for _, want := range []string{
			`"method":"/ferry.v1.MigrationService/GetMigration","identity":"-","code":"unauthenticated"`,
			`"method":"/ferry.v1.MigrationService/StartMigration","identity":"vera","code":"permission_denied"`,
			`"method":"/ferry.v1.MigrationService/ListMigrations","identity":"vera","code":"ok"`,
			`"method":"/ferry.v1.MigrationService/PauseMigration","identity":"alice","code":"deadline_exceeded"`,
		} {
			if !strings.Contains(logs, want) {
				t.Errorf("no log line with %s", want)
			}
		}
		for _, tok := range []string{testenv.TokenAlice, testenv.TokenBob, testenv.TokenVera} {
			if strings.Contains(logs, tok) {
				t.Fatalf("a token is in the logs")
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(logs), "\n")[:3] {
			t.Log(line)
		}
	})
}

// historyLen counts a workflow's history events.
func historyLen(ctx context.Context, t *testing.T, c client.Client, id string) int {
	t.Helper()
	it := c.GetWorkflowHistory(ctx, id, "", false, 0)
	n := 0
	for it.HasNext() {
		if _, err := it.Next(); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// mongoSpec is a MongoDB primary move of the set at seed to a new member.
func mongoSpec(t *testing.T, seed, member string) *ferryv1.MigrationSpec {
	t.Helper()
	m, err := spec.Parse([]byte(`
mongoPrimaryMove:
  uri: mongodb://`+seed+`/?replicaSet=rs0
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  newMembers: [`+member+`]
`), ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	return m
}
