// Package testenv starts the pieces integration tests share: an in-process Temporal (no UI,
// in-memory store) and helpers to wait on conditions with a deadline instead of sleeping.
package testenv

import (
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/ferryhq/ferry/internal/devtemporal"
)

// Temporal starts an embedded Temporal (in memory) for the test and a client to it; both
// stop when the test ends.
func Temporal(t testing.TB) (*devtemporal.Server, client.Client) {
	t.Helper()
	srv, c, stop := StartTemporal(t, devtemporal.Options{})
	t.Cleanup(stop)
	return srv, c
}

// StartTemporal starts an embedded Temporal with o (never its UI) and a client to it; stop
// stops both, so a benchmark can give each workload a store of its own and free it before
// the next.
func StartTemporal(t testing.TB, o devtemporal.Options) (srv *devtemporal.Server, c client.Client, stop func()) {
	t.Helper()
	o.UIPort = -1
	srv, err := devtemporal.Start(o)
	if err != nil {
		t.Fatalf("start embedded temporal: %v", err)
	}
	c, err = client.Dial(client.Options{HostPort: srv.HostPort(), Namespace: srv.Namespace(), Logger: QuietLogger()})
	if err != nil {
		srv.Stop()
		t.Fatalf("dial embedded temporal: %v", err)
	}
	return srv, c, func() { c.Close(); srv.Stop() }
}

// QuietLogger keeps the SDK's per-call debug lines out of test output; warnings and errors
// still show.
func QuietLogger() tlog.Logger {
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// FreePort returns a loopback port that was free a moment ago, for a process the test
// starts with it. It is picked below Linux's ephemeral range (32768-60999): a port the
// kernel hands out for ":0" can be taken before the process binds it, by any outgoing
// connection or another test's listener (CI saw `ferry dev` fail to bind one that way).
// Ports this process handed out are not handed out again.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		p := 20000 + mrand.IntN(12000)
		if portsGiven[p] {
			continue
		}
		if ln, err := net.Listen("tcp", Addr(p)); err == nil {
			ln.Close()
			portsGiven[p] = true
			return p
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// Addr is 127.0.0.1:port.
func Addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// Eventually polls cond every 50ms until it returns true or limit passes.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchRow logs one row of the table `make bench` ends with: what was measured, the value,
// the target it is held to and whether the value meets it. Rows from every benchmark are
// gathered into one table, so the ratios measured side by side read together.
func BenchRow(t testing.TB, measure, value, target string, met bool) {
	t.Helper()
	verdict := "met"
	if !met {
		verdict = "MISSED"
	}
	t.Logf("| %s | %s | %s | %s |", measure, value, target, verdict)
}

// BenchInfo logs a row with no target: a number that explains the others.
func BenchInfo(t testing.TB, measure, value string) {
	t.Helper()
	t.Logf("| %s | %s | | |", measure, value)
}
