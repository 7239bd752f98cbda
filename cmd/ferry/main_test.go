package main_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	for range 2 {
		startFerry(t, dir, "worker", "--temporal-address", srv.HostPort(), "--log-level", "warn")
	}
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
}

// TestDevKeepsHistoryAcrossRestart runs `ferry dev`, completes a workflow, stops it with
// SIGINT, starts it again on the same data directory and finds the workflow's history.
func TestDevKeepsHistoryAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ferry dev")
	}
	dir := t.TempDir()
	tPort, uiPort, apiPort, sbPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	// The built-in topology's MongoDB members sit on 27017 and up, which a developer's own
	// `ferry dev` may hold; the test runs the same topology on free ports.
	topo := string(topology.DefaultYAML())
	for p := 27017; p <= 27022; p++ {
		topo = strings.ReplaceAll(topo, "port: "+strconv.Itoa(p), "port: "+strconv.Itoa(testenv.FreePort(t)))
	}
	topoFile := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(topoFile, []byte(topo), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"dev", "--data-dir", filepath.Join(dir, "state"), "--topology", topoFile,
		"--temporal-port", strconv.Itoa(tPort), "--ui-port", strconv.Itoa(uiPort),
		"--listen", testenv.Addr(apiPort), "--sandbox-addr", testenv.Addr(sbPort), "--log-level", "warn"}

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
