package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/views")

// viewCase is one golden file: a migration and the children `ferry get` would fetch.
type viewCase struct {
	name     string
	m        *ferryv1.Migration
	children map[string]*ferryv1.Migration
	wide     bool
}

func viewCases() []viewCase {
	var cs []viewCase
	for _, s := range []mState{running, awaiting, completed, rolledBk} {
		cs = append(cs, viewCase{name: "dns-shift/" + stateText(s), m: dnsFixture(s)})
	}
	for _, s := range []mState{running, awaiting, completed, failed} {
		cs = append(cs, viewCase{name: "ami-share/" + stateText(s), m: amiFixture(s)})
	}
	for _, s := range []mState{running, awaiting, completed, rolledBk} {
		cs = append(cs, viewCase{name: "mongo-primary-move/" + stateText(s), m: mongoFixture(s)})
	}
	for _, s := range []mState{running, awaiting, completed, failed} {
		m, ch := regionFixture(s)
		cs = append(cs, viewCase{name: "region-move/" + stateText(s), m: m, children: ch})
	}
	for _, s := range []mState{running, awaiting, completed, rolledBk} {
		cs = append(cs, viewCase{name: "database-cutover/" + stateText(s), m: dbFixture(s)})
	}
	for _, s := range []mState{running, awaiting, completed, rolledBk} {
		cs = append(cs, viewCase{name: "broker-move/" + stateText(s), m: brokerFixture(s)})
	}
	cs = append(cs,
		viewCase{name: "dns-shift/running-wide", m: dnsFixture(running), wide: true},
		viewCase{name: "ami-share/failed-wide", m: amiFixture(failed), wide: true},
	)
	return cs
}

func testPrinter(w *bytes.Buffer, wide bool) *printer {
	return &printer{w: w, now: viewNow, loc: time.UTC, wide: wide}
}

// TestViewsGolden pins the text view of every kind in each state, colour off. Run with
// -update to rewrite the files after an intended change, then read the diff.
func TestViewsGolden(t *testing.T) {
	for _, c := range viewCases() {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			p := testPrinter(&b, c.wide)
			if c.children != nil {
				p.child = func(id string) *ferryv1.Migration { return c.children[id] }
			}
			p.migration(c.m)
			golden(t, filepath.Join("testdata", "views", c.name+".txt"), b.String())
		})
	}
}

// TestWatchLinesGolden pins `ferry watch`'s one line per change for every kind and state.
func TestWatchLinesGolden(t *testing.T) {
	var b bytes.Buffer
	p := testPrinter(&b, false)
	for _, c := range viewCases() {
		if c.wide {
			continue
		}
		b.WriteString(c.name + ": ")
		printWatchLine(p, c.m, &ferryv1.Migration{})
	}
	golden(t, filepath.Join("testdata", "views", "watch-lines.txt"), b.String())
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run Golden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestEveryKindHasAView: a registered kind without a text view would show only the common
// header in `get` and `watch`. A new kind adds internal/cli/view_<kind>.go and its goldens.
func TestEveryKindHasAView(t *testing.T) {
	for _, k := range spec.Kinds {
		if _, ok := kindViews[k.Proto]; !ok {
			if statusLanded(k.Name) == "" {
				t.Logf("kind %s has no view yet: the API's Migration message has no status field for it", k.Name)
				continue
			}
			t.Errorf("kind %s has no text view: add internal/cli/view_%s.go calling registerView, and golden cases in view_test.go",
				k.Name, strings.ReplaceAll(k.Name, "-", ""))
		}
	}
}

// TestNoColourWhenNotATerminal: a buffer, a pipe or NO_COLOR get no escape codes; a
// painted cell keeps the table's alignment.
func TestNoColourWhenNotATerminal(t *testing.T) {
	var b bytes.Buffer
	if styleFor(&b).on {
		t.Fatal("colour on for a buffer")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if styleFor(w).on {
		t.Fatal("colour on for a pipe")
	}
	t.Setenv("NO_COLOR", "1")
	if styleFor(os.Stdout).on {
		t.Fatal("colour on despite NO_COLOR")
	}
	p := testPrinter(&b, false)
	p.st = style{on: true}
	p.migration(dnsFixture(running))
	plain := bytes.Buffer{}
	pp := testPrinter(&plain, false)
	pp.migration(dnsFixture(running))
	stripped := stripANSI(b.String())
	if stripped != plain.String() {
		t.Errorf("colour changed the text:\n%s\nvs\n%s", stripped, plain.String())
	}
	if !strings.Contains(b.String(), "\x1b[") {
		t.Error("no colour with colour on")
	}
}

// statusLanded returns the Migration field that carries kind's status in the API, or ""
// while there is none: a view can only show what the API returns. Matched by name
// ("database-cutover" -> database_cutover or db_cutover).
func statusLanded(kind string) string {
	fields := (&ferryv1.Migration{}).ProtoReflect().Descriptor().Fields()
	want := strings.ReplaceAll(kind, "-", "_")
	for i := range fields.Len() {
		name := string(fields.Get(i).Name())
		if name == want || name == strings.Replace(want, "database", "db", 1) || strings.HasPrefix(want, name) && fields.Get(i).Number() >= 20 {
			return name
		}
	}
	return ""
}

func stripANSI(s string) string {
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			for i < len(s) && s[i] != 'm' {
				i++
			}
			continue
		}
		out.WriteByte(s[i])
	}
	return out.String()
}
