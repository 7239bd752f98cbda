package testenv

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/promserver"
)

// RequireBinary skips the test when an external server's binary is missing on a
// developer's machine, and fails it in CI (CI=true), where a skipped test would pass for
// the wrong reason. missing says how to install it.
func RequireBinary(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %v", err)
	}
	t.Skipf("%v (in CI this fails)", err)
}

// StartPrometheus starts a real Prometheus scraping targets (host:port, at /metrics) every
// second, and waits for its first scrape of each; it stops when the test ends.
func StartPrometheus(t testing.TB, targets ...string) *promserver.Server {
	t.Helper()
	_, err := promserver.Find()
	RequireBinary(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := promserver.Start(ctx, promserver.Options{Addr: Addr(FreePort(t)), Dir: t.TempDir(), Targets: targets})
	if err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	Eventually(t, 30*time.Second, "prometheus's first scrape of "+strings.Join(targets, ", "), func() bool {
		return PromQuery(t, s.URL, `count(up{job="sandbox"} == 1)`) == float64(len(targets))
	})
	return s
}

// PromQuery asks Prometheus's HTTP API for an instant query's first value, with plain HTTP
// so tests judge the gate against what the server itself answers; -1 for no value.
func PromQuery(t testing.TB, base, q string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Data.Result) == 0 {
		return -1
	}
	var v float64
	if s, ok := body.Data.Result[0].Value[1].(string); ok {
		_ = json.Unmarshal([]byte(s), &v)
	}
	return v
}
