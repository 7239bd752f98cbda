package cli

import (
	"bytes"
	"encoding/json"
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
