// Package promserver runs a real Prometheus (the `prometheus` binary, Debian's package) as
// a child process with a scrape config of its own: `ferry dev` starts one that scrapes the
// sandbox when the binary is installed, and tests start one to judge the Prometheus gate
// against the real query engine.
package promserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Missing explains how to get the binary when it is not on the PATH.
const Missing = "prometheus is not installed: install Debian's package (apt-get install prometheus) or put a prometheus binary on the PATH"

// Find returns the prometheus binary's path.
func Find() (string, error) {
	p, err := exec.LookPath("prometheus")
	if err != nil {
		return "", errors.New(Missing)
	}
	return p, nil
}

// Options configures a Prometheus.
type Options struct {
	// Addr is the listen address, e.g. 127.0.0.1:9090 (loopback: it has no auth).
	Addr string
	// Dir holds the config and the TSDB; the caller owns it.
	Dir string
	// Targets are the host:port endpoints scraped at /metrics, as job "sandbox".
	Targets []string
	// ScrapeInterval defaults to 1s: gates react within a gate interval plus a scrape.
	ScrapeInterval time.Duration
	// Log receives Prometheus's own output (nil: discarded).
	Log io.Writer
}

// Server is a running Prometheus.
type Server struct {
	// URL is the HTTP API's base, e.g. http://127.0.0.1:9090.
	URL    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited; waitErr is then set
	// waitErr is the process's exit, from cmd.Wait.
	waitErr error
}

// Start writes the config and starts Prometheus, returning once it reports ready.
func Start(ctx context.Context, o Options) (*Server, error) {
	bin, err := Find()
	if err != nil {
		return nil, err
	}
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = time.Second
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "data"), 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(o.Dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config(o)), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(o.Dir, "data"),
		"--storage.tsdb.retention.time=1d",
		"--web.listen-address="+o.Addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = o.Log, o.Log
	// Its own process group: a signal to the parent's group (Ctrl-C in a terminal) is the
	// parent's to handle, and Stop ends Prometheus itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	s := &Server{URL: "http://" + o.Addr, cmd: cmd, exited: make(chan struct{})}
	go func() { s.waitErr = cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

func config(o Options) string {
	targets := make([]string, len(o.Targets))
	for i, t := range o.Targets {
		targets[i] = fmt.Sprintf("%q", t)
	}
	return fmt.Sprintf(`# Written by ferry: Prometheus scraping the sandbox's apps and clients.
global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: sandbox
    scrape_interval: %[1]s
    scrape_timeout: %[1]s
    static_configs:
      - targets: [%[2]s]
`, o.ScrapeInterval, strings.Join(targets, ", "))
}

func (s *Server) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("prometheus exited before it was ready: %v", s.waitErr)
		default:
		}
		if resp, err := c.Get(s.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prometheus at %s not ready after %s", s.URL, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Pid is the process id, for tests that stop it behind the gate's back.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop ends Prometheus: SIGTERM, then SIGKILL after 5 s. Stopping a stopped server does
// nothing.
func (s *Server) Stop() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	return nil
}
