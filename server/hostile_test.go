package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
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
					if code(err) != connect.CodeInvalidArgument || !strings.HasPrefix(connect.CodeOf(err).String()+" "+errMessage(err), "invalid_argument "+field) {
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
}

// errMessage is a Connect error's message without its code prefix.
func errMessage(err error) string {
	var ce *connect.Error
	if ok := asConnect(err, &ce); ok {
		return ce.Message()
	}
	return err.Error()
}

func asConnect(err error, ce **connect.Error) bool {
	e, ok := err.(*connect.Error)
	if ok {
		*ce = e
	}
	return ok
}

var _ = slices.Contains[[]string]
var _ = workflows.TaskQueue
