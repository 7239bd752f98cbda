package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/promserver"
)

// devPrometheus is the Prometheus `ferry dev` runs beside the sandbox when the binary is
// installed, scraping the sandbox's /metrics every second, so examples/dns-shift-prometheus.yaml
// runs as written. Without the binary ferry dev runs on (the default examples read the
// sandbox's CloudWatch instead) and its table says how to add it.
type devPrometheus struct {
	url  string // "" when not running
	note string // why not, and how to enable it
	srv  *promserver.Server
}

func (p *devPrometheus) stop() {
	if p.srv != nil {
		_ = p.srv.Stop()
	}
}

// startDevPrometheus never fails ferry dev: Prometheus is optional.
func startDevPrometheus(ctx context.Context, log *slog.Logger, addr, dataDir, sandboxURL string) *devPrometheus {
	if addr == "off" {
		return &devPrometheus{note: "off (--prometheus-addr off)"}
	}
	if _, err := promserver.Find(); err != nil {
		return &devPrometheus{note: "not installed: apt-get install prometheus, then restart ferry dev, to run examples/dns-shift-prometheus.yaml"}
	}
	if ln, err := net.Listen("tcp", addr); err != nil {
		return &devPrometheus{note: fmt.Sprintf("not started: %s is taken (another Prometheus?); use --prometheus-addr", addr)}
	} else {
		_ = ln.Close()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	srv, err := promserver.Start(ctx, promserver.Options{
		Addr: addr, Dir: filepath.Join(dataDir, "prometheus"),
		Targets: []string{strings.TrimPrefix(sandboxURL, "http://")},
		Log:     slogWriter{log.With("component", "prometheus")},
	})
	if err != nil {
		log.Warn("prometheus did not start; the Prometheus gate example needs it", "error", err)
		return &devPrometheus{note: "failed to start: " + err.Error()}
	}
	return &devPrometheus{url: srv.URL, srv: srv}
}

func (p *devPrometheus) describe(w io.Writer) {
	if p.url != "" {
		fmt.Fprintf(w, "Prometheus\t%s\tscrapes the sandbox's /metrics every 1s (examples/dns-shift-prometheus.yaml)\n", p.url)
		return
	}
	fmt.Fprintf(w, "Prometheus\t-\t%s\n", p.note)
}

// slogWriter turns a child process's output lines into warnings: Prometheus runs at
// --log.level=warn, so what it prints is worth seeing.
type slogWriter struct{ log *slog.Logger }

func (s slogWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line != "" {
			s.log.Warn(line)
		}
	}
	return len(b), nil
}
