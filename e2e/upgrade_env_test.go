package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/internal/apiclient"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/topology"
	"github.com/ferryhq/ferry/server"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// upgradeEnv is what outlives the workers in the upgrade test: an in-process Temporal, the
// sandbox with one replica set per migration, and the API. Unlike startStack it runs no
// worker of its own: the workers are ferry processes (build A, then build B).
type upgradeEnv struct {
	c        client.Client
	hostPort string
	ns       string
	sb       *sandbox.Sandbox
	mongo    *sandbox.MongoSets
	alice    ferryv1connect.MigrationServiceClient // operator: starts, pauses, resumes
	bob      ferryv1connect.MigrationServiceClient // approver (four-eyes: alice starts)
	logDir   string
}

// startUpgradeEnv starts the environment with a copy of the default rs0 (three eu-west-1
// members in the config, three eu-west-2 members to move to) for each name in sets.
func startUpgradeEnv(t *testing.T, sets []string) *upgradeEnv {
	t.Helper()
	ctx := context.Background()
	srv, c := testenv.Temporal(t)
	topo := topology.Default()
	topo.Mongo.ReplicaSets = nil
	for _, name := range sets {
		testenv.AddReplicaSet(topo, name, "")
	}
	ms, err := sandbox.StartMongo(ctx, topo, true, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ms.Close() })
	sb, err := sandbox.Start(ctx, sandbox.Options{Addr: "127.0.0.1:0", Fast: true, Topology: topo, Mongo: ms})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })

	tokens := server.NewTokens(
		server.TokenEntry{Token: testenv.TokenAlice, Principal: server.Principal{Identity: "alice", Roles: []string{server.RoleOperator}}},
		server.TokenEntry{Token: testenv.TokenBob, Principal: server.Principal{Identity: "bob", Roles: []string{server.RoleApprover}}},
	)
	api := httptest.NewServer(server.Handler(c, server.Options{Namespace: srv.Namespace(), Tokens: tokens}))
	t.Cleanup(api.Close)
	return &upgradeEnv{
		c: c, hostPort: srv.HostPort(), ns: srv.Namespace(), sb: sb, mongo: ms,
		alice:  apiclient.New(api.Client(), api.URL, testenv.TokenAlice, false),
		bob:    apiclient.New(api.Client(), api.URL, testenv.TokenBob, false),
		logDir: t.TempDir(),
	}
}

// upgradeHosts splits a set's members by region tag, in the simulator's order.
func (e *upgradeEnv) upgradeHosts(set string) (source, target []string) {
	for _, m := range e.mongo.Cluster(set).Members() {
		if m.Region == "eu-west-2" {
			target = append(target, m.Host)
		} else {
			source = append(source, m.Host)
		}
	}
	return source, target
}

// moveSpec is examples/mongo-primary-move.yaml for set, with the sandbox's short waits.
func (e *upgradeEnv) moveSpec(t *testing.T, set string) *ferryv1.MigrationSpec {
	t.Helper()
	source, target := e.upgradeHosts(set)
	doc := fmt.Sprintf(`
name: %[1]s to eu-west-2
reason: upgrade test
approvals: {requiredApprovers: 1}
mongoPrimaryMove:
  uri: mongodb://%[2]s/?replicaSet=%[1]s
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  newMembers: [%[3]s]
  maxLag: 1s
  catchUpPeriod: 1s
  takeoverTimeout: 3s
`, set, strings.Join(source, ","), strings.Join(target, ", "))
	m, err := spec.Parse([]byte(doc), ".yaml")
	require.NoError(t, err)
	return m
}

// start starts the move of set through the API, as alice, and returns its migration id.
func (e *upgradeEnv) start(t *testing.T, set string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := e.alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: e.moveSpec(t, set)}))
	require.NoError(t, err, "start the move of %s", set)
	return resp.Msg.GetMigration().GetId()
}

// get reads a migration through the API.
func (e *upgradeEnv) get(t *testing.T, id string) *ferryv1.Migration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := e.alice.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
	require.NoError(t, err, "get %s", id)
	return resp.Msg.GetMigration()
}

// awaitState polls the API until the migration is in state; a final state other than that
// fails at once.
func (e *upgradeEnv) awaitState(t *testing.T, id string, state ferryv1.MigrationState, limit time.Duration) *ferryv1.Migration {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		m := e.get(t, id)
		if m.GetState() == state {
			return m
		}
		if m.GetCloseTime() != nil || time.Now().After(deadline) {
			t.Fatalf("%s: %s (%s), waited for %s", id, m.GetState(), m.GetMessage(), state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// act sends a steering request through the API; the API waits for the workflow to take it.
func (e *upgradeEnv) act(t *testing.T, what, id string, call func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, call(ctx), "%s %s", what, id)
}

func (e *upgradeEnv) approve(t *testing.T, id string) {
	e.act(t, "approve", id, func(ctx context.Context) error {
		_, err := e.bob.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id, Comment: "upgrade test"}))
		return err
	})
}

func (e *upgradeEnv) pause(t *testing.T, id string) {
	e.act(t, "pause", id, func(ctx context.Context) error {
		_, err := e.alice.PauseMigration(ctx, connect.NewRequest(&ferryv1.PauseMigrationRequest{Id: id, Reason: "upgrade test"}))
		return err
	})
}

func (e *upgradeEnv) resume(t *testing.T, id string) {
	e.act(t, "resume", id, func(ctx context.Context) error {
		_, err := e.alice.ResumeMigration(ctx, connect.NewRequest(&ferryv1.ResumeMigrationRequest{Id: id, Reason: "upgrade test"}))
		return err
	})
}

// result waits for the migration's workflow to end and returns its own result (not the
// API's view of it).
func (e *upgradeEnv) result(t *testing.T, id string) workflows.MongoPrimaryMoveResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var res workflows.MongoPrimaryMoveResult
	require.NoError(t, e.c.GetWorkflow(ctx, id, "").Get(ctx, &res), "the result of %s", id)
	return res
}

// upgradeWorker is one `ferry worker` process.
type upgradeWorker struct {
	name     string
	identity string // as the worker names itself to Temporal: ferry-worker@host:pid
	cmd      *exec.Cmd
	exited   chan struct{}
}

// startWorker runs `bin worker` against the environment's Temporal and sandbox (the flags
// `ferry dev` sets for its own worker) and returns once it polls the task queue. Its log
// goes to a file, shown when the test fails.
func (e *upgradeEnv) startWorker(t *testing.T, name, bin string) *upgradeWorker {
	t.Helper()
	logPath := filepath.Join(e.logDir, name+".log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin, "worker",
		"--temporal-address", e.hostPort, "--temporal-namespace", e.ns, "--task-queue", workflows.TaskQueue,
		"--aws-endpoint", e.sb.Addr(), "--log-level", "warn", "--allow-unsigned")
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start(), "start %s", name)
	w := &upgradeWorker{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(w.exited) }()
	t.Cleanup(func() {
		w.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log (%s):\n%s", name, logPath, upgradeTail(b, 4000))
		}
	})
	w.identity = e.awaitPoller(t, w)
	t.Logf("%s polls as %s", name, w.identity)
	return w
}

// awaitPoller waits until the worker process polls the workflow task queue (Temporal lists
// its pollers by identity, which ends in the process id) and returns its identity.
func (e *upgradeEnv) awaitPoller(t *testing.T, w *upgradeWorker) string {
	t.Helper()
	suffix := ":" + strconv.Itoa(w.cmd.Process.Pid)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-w.exited:
			t.Fatalf("%s exited before it polled: %s", w.name, w.cmd.ProcessState)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := e.c.DescribeTaskQueue(ctx, workflows.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		cancel()
		if err == nil {
			for _, p := range d.GetPollers() {
				if strings.HasSuffix(p.GetIdentity(), suffix) {
					return p.GetIdentity()
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not poll %s within a minute", w.name, workflows.TaskQueue)
	return ""
}

// kill ends the process with SIGKILL, as a crash or an OOM kill would: no graceful
// shutdown, nothing handed back to Temporal.
func (w *upgradeWorker) kill() {
	select {
	case <-w.exited:
		return
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.exited
}

func upgradeTail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
