package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/topology"
	"github.com/ferryhq/ferry/workflows"
)

var ferryBin string

// TestMain builds the ferry binary once; the tests run it as users do.
func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "ferry-bin")
	if err != nil {
		panic(err)
	}
	ferryBin = filepath.Join(dir, "ferry")
	// ferry dev records a "dev" context in the user's config file: the processes these
	// tests start get a config directory of their own, so running the tests never
	// repoints a developer's own ferry.
	if err := os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config")); err != nil {
		panic(err)
	}
	// `ferry dev` records a dev context in the config file: the tests' stacks must not
	// replace the one of the developer running them.
	_ = os.Setenv("FERRY_CONFIG", filepath.Join(dir, "config.yaml"))
	if !testing.Short() {
		out, err := exec.Command("go", "build", "-o", ferryBin, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build ferry: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running ferry subprocess whose output is kept for failure messages.
type process struct {
	cmd *exec.Cmd
	out *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startFerry(t *testing.T, dir string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Dir = dir
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, out: out}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("ferry %v output:\n%s", args, out.String())
		}
	})
	return p
}

// interrupt sends Ctrl-C and waits for a clean exit.
func (p *process) interrupt(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ferry did not exit cleanly on SIGINT: %v\n%s", err, p.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("ferry still running 30s after SIGINT\n%s", p.out.String())
	}
}

// TestTwoWorkerProcessesShareWork starts two `ferry worker` processes on one task queue and
// shows both take tasks.
func TestTwoWorkerProcessesShareWork(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ferry processes")
	}
	srv, c := testenv.Temporal(t)
	dir := t.TempDir()
	// The first worker serves its metrics and probes too.
	probes := testenv.Addr(testenv.FreePort(t))
	for i := range 2 {
		args := []string{"worker", "--temporal-address", srv.HostPort(), "--log-level", "warn", "--allow-unsigned"}
		if i == 0 {
			args = append(args, "--http-listen", probes)
		}
		startFerry(t, dir, args...)
	}
	waitHTTP(t, "http://"+probes+"/readyz", 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	seen := map[string]int{}
	// Keep starting pings until both workers have answered; tasks go to whichever poller
	// asks first, so a handful is enough but the exact number is not fixed.
	for i := 0; len(seen) < 2 && i < 200; i++ {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "share-" + strconv.Itoa(i), TaskQueue: workflows.TaskQueue}, workflows.Ping, workflows.PingInput{Message: strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		var res workflows.PingResult
		if err := run.Get(ctx, &res); err != nil {
			t.Fatal(err)
		}
		seen[res.Worker]++
	}
	if len(seen) != 2 {
		t.Fatalf("workers that ran activities: %v; want two distinct worker processes", seen)
	}
	t.Logf("activities per worker: %v", seen)

	// The worker's own listener: its SDK metrics, liveness, and readiness (Temporal up,
	// the namespace and ferry's search attributes registered).
	resp, err := http.Get("http://" + probes + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Both workers ran Echo activities (seen has two), so this one recorded some.
	if !regexp.MustCompile(`temporal_activity_execution_latency_seconds_count\{[^}]*activity_type="Echo"`).Match(body) {
		t.Fatalf("the worker's /metrics lacks the Echo activities it ran:\n%.2000s", body)
	}
	waitHTTP(t, "http://"+probes+"/healthz", time.Second)
}

// TestDevKeepsHistoryAcrossRestart runs `ferry dev`, completes a workflow, stops it with
// SIGINT, starts it again on the same data directory and finds the workflow's history.
func TestDevKeepsHistoryAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ferry dev")
	}
	dir := t.TempDir()
	d := newDevArgs(t, dir)
	args := d.args
	tPort, uiPort, apiPort := d.temporalPort, d.uiPort, d.apiPort
	dev := startFerry(t, dir, args...)
	waitHTTP(t, "http://"+testenv.Addr(apiPort)+"/healthz", 60*time.Second)
	waitHTTP(t, "http://"+testenv.Addr(uiPort)+"/", 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.Dial(client.Options{HostPort: testenv.Addr(tPort)})
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "survives-restart", TaskQueue: workflows.TaskQueue}, workflows.Ping, workflows.PingInput{Message: "still here"})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	dev.interrupt(t)

	startFerry(t, dir, args...)
	waitHTTP(t, "http://"+testenv.Addr(apiPort)+"/healthz", 60*time.Second)
	c, err = client.Dial(client.Options{HostPort: testenv.Addr(tPort)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var res workflows.PingResult
	if err := c.GetWorkflow(ctx, "survives-restart", run.GetRunID()).Get(ctx, &res); err != nil {
		t.Fatalf("workflow from before the restart: %v", err)
	}
	if res.Message != "still here" {
		t.Fatalf("result after restart = %+v", res)
	}
}

// devArgs are `ferry dev` arguments on free ports, with the built-in topology's MongoDB
// members moved to free ports too (a developer's own `ferry dev` may hold 27017 and up).
type devArgs struct {
	args                                  []string
	temporalPort, uiPort, apiPort, sbPort int
	dataDir                               string
}

func newDevArgs(t *testing.T, dir string) devArgs {
	t.Helper()
	d := devArgs{temporalPort: testenv.FreePort(t), uiPort: testenv.FreePort(t), apiPort: testenv.FreePort(t), sbPort: testenv.FreePort(t), dataDir: filepath.Join(dir, "state")}
	topo := string(topology.DefaultYAML())
	for p := 27017; p <= 27022; p++ {
		topo = strings.ReplaceAll(topo, "port: "+strconv.Itoa(p), "port: "+strconv.Itoa(testenv.FreePort(t)))
	}
	topoFile := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(topoFile, []byte(topo), 0o644); err != nil {
		t.Fatal(err)
	}
	d.args = []string{"dev", "--data-dir", d.dataDir, "--topology", topoFile,
		"--temporal-port", strconv.Itoa(d.temporalPort), "--ui-port", strconv.Itoa(d.uiPort),
		"--listen", testenv.Addr(d.apiPort), "--sandbox-addr", testenv.Addr(d.sbPort), "--log-level", "warn"}
	return d
}

// runFerry runs a client command to completion and returns its stdout and exit code.
func runFerry(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Logf("ferry %v exited %d: %s", args, code, stderr.String())
	}
	return stdout.String(), code
}

// TestCLIAgainstDev drives the CLI binary against `ferry dev` over HTTP, with the local
// tokens ferry dev writes: plan, start, get/list as JSON, pause, resume, cancel, and watch's
// exit code for a migration that did not complete.
func TestCLIAgainstDev(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ferry dev")
	}
	dir := t.TempDir()
	d := newDevArgs(t, dir)
	startFerry(t, dir, d.args...)
	waitHTTP(t, "http://"+testenv.Addr(d.apiPort)+"/healthz", 60*time.Second)
	env := []string{"FERRY_API=http://" + testenv.Addr(d.apiPort), "FERRY_DATA_DIR=" + d.dataDir, "FERRY_TOKEN="}

	// The example's probe URLs name the default sandbox port; point them at this one.
	example, err := os.ReadFile("../../examples/dns-shift.yaml")
	if err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join(dir, "dns-shift.yaml")
	if err := os.WriteFile(specFile, bytes.ReplaceAll(example, []byte("127.0.0.1:4566"), []byte(testenv.Addr(d.sbPort))), 0o644); err != nil {
		t.Fatal(err)
	}

	out, code := runFerry(t, dir, env, "plan", "-f", specFile, "-o", "json")
	var plan struct {
		ID       string `json:"id"`
		PlanHash string `json:"planHash"`
	}
	if err := json.Unmarshal([]byte(out), &plan); code != 0 || err != nil || plan.PlanHash == "" {
		t.Fatalf("plan: exit %d, %v: %s", code, err, out)
	}
	if _, code := runFerry(t, dir, env, "start", "-f", specFile, "--plan-hash", "0000000000000000"); code != 0 {
		t.Fatalf("start with a stale plan hash: exit %d; the API accepts and the workflow refuses (want exit 0 here)", code)
	}
	out, _ = runFerry(t, dir, env, "watch", plan.ID, "-o", "json")
	if !strings.Contains(out, "drift") {
		t.Fatalf("a start pinned to another plan hash must fail on drift; watch printed:\n%s", out)
	}

	if _, code := runFerry(t, dir, env, "start", "-f", specFile, "--plan-hash", plan.PlanHash); code != 0 {
		t.Fatalf("start: exit %d", code)
	}
	if _, code := runFerry(t, dir, env, "start", "-f", specFile); code == 0 {
		t.Fatal("a second start of the same record must fail")
	}
	out, code = runFerry(t, dir, env, "get", plan.ID, "-o", "json")
	var m struct {
		ID        string `json:"id"`
		State     string `json:"state"`
		Initiator string `json:"initiator"`
	}
	if err := json.Unmarshal([]byte(out), &m); code != 0 || err != nil || m.ID != plan.ID || m.Initiator == "" {
		t.Fatalf("get -o json: exit %d, %v: %s", code, err, out)
	}
	out, _ = runFerry(t, dir, env, "list")
	if !strings.Contains(out, plan.ID) {
		t.Fatalf("list does not show %s:\n%s", plan.ID, out)
	}
	if _, code := runFerry(t, dir, env, "pause", plan.ID, "--reason", "lunch"); code != 0 {
		t.Fatal("pause failed")
	}
	out, _ = runFerry(t, dir, env, "get", plan.ID, "-o", "json")
	if !strings.Contains(out, "MIGRATION_STATE_PAUSED") {
		t.Fatalf("after pause:\n%s", out)
	}
	if _, code := runFerry(t, dir, env, "resume", plan.ID); code != 0 {
		t.Fatal("resume failed")
	}
	if _, code := runFerry(t, dir, env, "cancel", plan.ID, "--reason", "test over"); code != 0 {
		t.Fatal("cancel failed")
	}
	if _, code := runFerry(t, dir, env, "watch", plan.ID); code == 0 {
		t.Fatal("watch of a cancelled migration must exit non-zero")
	}
	out, _ = runFerry(t, dir, env, "get", plan.ID)
	for _, want := range []string{"cancelled", "pause", "resume", "lunch"} {
		if !strings.Contains(out, want) {
			t.Errorf("get after cancel lacks %q:\n%s", want, out)
		}
	}
}

func waitHTTP(t *testing.T, url string, limit time.Duration) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	testenv.Eventually(t, limit, url+" to answer 200", func() bool {
		resp, err := hc.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
