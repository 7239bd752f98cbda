package cli

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
)

// A log flag with a typo is refused before the command runs, naming the values; json logs
// are one JSON object a line, for a log pipeline.
func TestLogFlags(t *testing.T) {
	for _, args := range [][]string{{"--log-level", "verbose", "version"}, {"--log-format", "logfmt", "version"}} {
		var out, errb bytes.Buffer
		root := newRoot(&out, &errb)
		root.SetArgs(args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), args[0]) || !strings.Contains(err.Error(), "use ") {
			t.Errorf("%v: err %v; want a refusal naming %s and its values", args, err, args[0])
		}
		if out.Len() > 0 {
			t.Errorf("%v: the command ran anyway: %s", args, out.String())
		}
	}
	var errb bytes.Buffer
	g := &globals{stderr: &errb, logLevel: "info", logFormat: "json"}
	g.logger().Info("worker started", "taskQueue", "ferry")
	var line map[string]any
	if err := json.Unmarshal(errb.Bytes(), &line); err != nil || line["msg"] != "worker started" || line["taskQueue"] != "ferry" {
		t.Fatalf("json log line %q: %v", errb.String(), err)
	}
}

func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8",
		Deps:     []*debug.Module{{Path: "go.temporal.io/sdk", Version: "v1.37.0"}, {Path: "go.temporal.io/server", Version: "v1.29.1"}},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "4aa3898e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a"}, {Key: "vcs.modified", Value: "true"}}}
	got := versionText("v0.9.0", bi)
	for _, want := range []string{"ferry v0.9.0 (commit 4aa3898e1d2c, modified)", "Go 1.26.8", "Temporal Go SDK v1.37.0", "Temporal server (ferry dev) v1.29.1"} {
		if !strings.Contains(got, want) {
			t.Errorf("version text lacks %q:\n%s", want, got)
		}
	}
	if got := versionText("dev", nil); !strings.Contains(got, "unknown (no build info)") {
		t.Errorf("without build info: %s", got)
	}
}
