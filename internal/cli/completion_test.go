package cli

import (
	"strings"
	"testing"
)

// TestCompletion: ids come from the API through the context or variables; -f offers spec
// files; --kind the registered kinds; bash, zsh and fish scripts are generated.
func TestCompletion(t *testing.T) {
	isolate(t)
	_, api := startFakeAPI(t, "t", 3)
	t.Setenv("FERRY_API", api)
	t.Setenv("FERRY_TOKEN", "t")
	out, _ := ferry(t, "__complete", "get", "dns/z/r1")
	if !strings.Contains(out, "dns/z/r1/A\tdns-shift, running") || strings.Contains(out, "dns/z/r2/A") {
		t.Fatalf("get ids:\n%s", out)
	}
	out, _ = ferry(t, "__complete", "approve", "")
	if strings.Count(out, "dns/z/") != 3 {
		t.Fatalf("approve ids:\n%s", out)
	}
	out, _ = ferry(t, "__complete", "start", "-f", "")
	if !strings.Contains(out, "yaml\nyml\njson") || !strings.Contains(out, ":8") { // 8: filter by extension
		t.Fatalf("spec files:\n%s", out)
	}
	out, _ = ferry(t, "__complete", "list", "--kind", "")
	for _, k := range kindNames() {
		if !strings.Contains(out, k) {
			t.Fatalf("--kind misses %s:\n%s", k, out)
		}
	}
	t.Setenv("FERRY_API", "http://127.0.0.1:1") // nothing listens: complete nothing, quickly
	if out, code := ferry(t, "__complete", "get", ""); code != 0 || strings.Contains(out, "dns/") {
		t.Fatalf("unreachable API: %d %s", code, out)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if out, code := ferry(t, "completion", sh); code != 0 || !strings.Contains(out, "ferry") {
			t.Fatalf("completion %s: %d", sh, code)
		}
	}
}
