//go:build uitest

package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/topology"
)

// devStack is `ferry dev` run as a user runs it: the built binary, its own directory, its
// config under XDG_CONFIG_HOME, every port free.
type devStack struct {
	bin, home, devDir, otherDir string
	apiURL, uiURL, sandboxURL   string
	temporalAddr                string
	out                         *syncBuffer
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

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// buildFerry builds the binary once for the test.
func buildFerry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ferry")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/ferry")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build ferry: %v\n%s", err, out)
	}
	return bin
}

// env is the environment of every ferry process here: no FERRY_* from the caller's shell,
// so only the config file can tell the client commands where the API is.
func (s *devStack) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FERRY_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "XDG_CONFIG_HOME="+filepath.Join(s.home, "config"))
}

func startDev(t *testing.T) *devStack {
	t.Helper()
	home := t.TempDir()
	s := &devStack{bin: buildFerry(t), home: home, devDir: filepath.Join(home, "project"), otherDir: filepath.Join(home, "elsewhere"), out: &syncBuffer{}}
	for _, d := range []string{s.devDir, s.otherDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tPort, uiPort, apiPort, sbPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	// The built-in topology's MongoDB members move to free ports: a developer's own ferry
	// dev may hold 27017 and up.
	topo := string(topology.DefaultYAML())
	// A 5s TTL makes the shift's dwell (max(bake time, TTL)) short: the test waits for the
	// approval gate, not for caches to expire.
	topo = strings.Replace(topo, "ttl: 60", "ttl: 5", 1)
	for p := 27017; p <= 27022; p++ {
		topo = strings.ReplaceAll(topo, "port: "+strconv.Itoa(p), "port: "+strconv.Itoa(testenv.FreePort(t)))
	}
	topoFile := filepath.Join(home, "topology.yaml")
	if err := os.WriteFile(topoFile, []byte(topo), 0o644); err != nil {
		t.Fatal(err)
	}
	s.apiURL, s.uiURL = "http://"+testenv.Addr(apiPort), "http://"+testenv.Addr(uiPort)
	s.sandboxURL, s.temporalAddr = "http://"+testenv.Addr(sbPort), testenv.Addr(tPort)
	cmd := exec.Command(s.bin, "dev", "--topology", topoFile, "--prometheus-addr", "off",
		"--temporal-port", strconv.Itoa(tPort), "--ui-port", strconv.Itoa(uiPort),
		"--listen", testenv.Addr(apiPort), "--sandbox-addr", testenv.Addr(sbPort), "--log-level", "warn")
	cmd.Dir, cmd.Env = s.devDir, s.env()
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("ferry dev output:\n%s", s.out.String())
		}
	})
	testenv.Eventually(t, 90*time.Second, "ferry dev's API and Web UI answer", func() bool {
		return httpOK(s.apiURL+"/healthz") && httpOK(s.uiURL)
	})
	return s
}

func httpOK(url string) bool {
	r, err := http.Get(url)
	if err != nil {
		return false
	}
	_ = r.Body.Close()
	return r.StatusCode == http.StatusOK
}

// ferry runs a client command from the directory that is not ferry dev's, so it finds the
// API only through the dev context.
func (s *devStack) ferry(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Dir, cmd.Env = s.otherDir, s.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("ferry %v: %w: %s", args, err, errb.String())
	}
	return out.String(), err
}

// migration reads one migration as JSON through the CLI.
func (s *devStack) migration(t *testing.T, id string) map[string]any {
	t.Helper()
	out, err := s.ferry(t, "get", id, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitState waits until migration id is in state (the API's enum name).
func (s *devStack) waitState(t *testing.T, id, state string, limit time.Duration) map[string]any {
	t.Helper()
	var m map[string]any
	testenv.Eventually(t, limit, id+" reaches "+state, func() bool {
		m = s.migration(t, id)
		return m["state"] == state
	})
	return m
}

// spec writes an example with the sandbox's port in place of the default one.
func (s *devStack) spec(t *testing.T, example string, edit func(string) string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", example))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "127.0.0.1:4566", strings.TrimPrefix(s.sandboxURL, "http://"))
	if edit != nil {
		text = edit(text)
	}
	path := filepath.Join(s.otherDir, example)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// artefacts is where the screenshots go: FERRY_UI_ARTIFACTS, else bin/test-ui (ignored by
// git), kept after the test for CI to collect.
func artefacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FERRY_UI_ARTIFACTS")
	if dir == "" {
		abs, err := filepath.Abs(filepath.Join("..", "..", "bin", "test-ui"))
		if err != nil {
			t.Fatal(err)
		}
		dir = abs
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium finds the browser; in CI a missing one fails the test rather than skipping it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("FERRY_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	err := errors.New("no Chromium: apt-get install -y chromium (or set FERRY_CHROMIUM)")
	if os.Getenv("CI") == "true" {
		t.Fatal(err)
	}
	t.Skip(err)
	return ""
}
