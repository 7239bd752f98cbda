package activities

import (
	"os/exec"
	"strings"
	"testing"
)

// Production activities must not lean on the simulator: a gate that only the sandbox can
// answer is a gate production cannot use. The sandbox is a metrics source (its /metrics
// and its CloudWatch) that the real gates read, like any service.
func TestActivitiesDoNotImportSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/ferryhq/ferry/activities/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/ferryhq/ferry/sandbox") {
			t.Errorf("activities depend on %s; read the sandbox through the APIs production has (Prometheus, CloudWatch)", dep)
		}
	}
}
