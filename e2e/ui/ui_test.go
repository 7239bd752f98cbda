//go:build uitest

// Package ui drives the Temporal Web UI of `ferry dev` in headless Chromium and checks
// what the user's team sees there: which workflows a filter lists, the summary and
// details a migration shows, a summary on every activity and failures as one sentence.
// Run it with `make test-ui` (it needs Debian's chromium; in CI a missing one fails).
package ui

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/ferryhq/ferry/internal/testenv"
)

// migrationsOnly is the one visibility filter that lists ferry's migrations and nothing
// else (no plan runs, no locks, no other application's workflows): FerryKind is set on a
// migration at its start and on nothing else, the same marker the API's ownership check
// reads (server/ownership.go). docs/design.md documents it.
const migrationsOnly = `FerryKind IS NOT NULL`

func TestTemporalUI(t *testing.T) {
	browser := chromium(t)
	began := time.Now()
	s := startDev(t)
	shots := artefacts(t)
	t.Logf("ferry dev up in %s; screenshots in %s", time.Since(began).Round(time.Second), shots)

	// The dev context: from a directory that is not ferry dev's, with no FERRY_* set.
	if _, err := s.ferry(t, "list"); err != nil {
		t.Fatalf("ferry list through the dev context: %v", err)
	}

	// A plan run (which the unfiltered list shows next to the migrations), the DNS-shift
	// example up to its approval gate, and an AMI share that fails: CopyImage is denied.
	dnsSpec := s.spec(t, "dns-shift.yaml", func(spec string) string {
		// The approval after the first step, and the health gate alone: the UI is under
		// test here, not the error-rate gate (its own e2e tests cover it), and the gate
		// comes a dwell sooner.
		spec = strings.Replace(spec, "approveAt: [50]", "approveAt: [10]", 1)
		spec = strings.Replace(spec, "bakeTime: 20s", "bakeTime: 5s", 1)
		return spec[:strings.Index(spec, "    # The 5xx ratio")]
	})
	if _, err := s.ferry(t, "plan", "-f", dnsSpec); err != nil {
		t.Fatal(err)
	}
	dnsID := s.start(t, dnsSpec)
	if _, err := s.ferry(t, "sandbox", "fault", "add", "aws:ec2:CopyImage", "denied", "--url", s.sandboxURL); err != nil {
		t.Fatal(err)
	}
	amiID := s.start(t, s.spec(t, "ami-share.yaml", nil))
	ami := s.waitState(t, amiID, "MIGRATION_STATE_FAILED", 2*time.Minute)
	dns := s.waitState(t, dnsID, "MIGRATION_STATE_AWAITING_APPROVAL", 3*time.Minute)
	got, err := s.ferry(t, "get", dnsID)
	if err != nil || !strings.Contains(got, "awaiting approval: ") || !strings.Contains(got, "90  [##") {
		t.Fatalf("ferry get through the dev context: %v\n%s", err, got)
	}
	t.Logf("at the approval gate after %s", time.Since(began).Round(time.Second))

	tc, err := client.Dial(client.Options{HostPort: s.temporalAddr, Logger: testenv.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := newBrowser(t, ctx, browser, shots)

	// 1. The approval filter lists exactly the migrations that wait: the shift.
	awaiting := `FerryState="awaiting-approval"`
	requireIDs(t, tc, awaiting, dnsID)
	text := b.page(t, "1-awaiting-approval", s.listURL(awaiting), dnsID)
	b.requireNone(t, text, "the approval filter", allIDs(t, tc), dnsID)

	// 2. The migrations-only filter: both migrations, none of the plan runs the unfiltered
	// list also shows.
	requireIDs(t, tc, migrationsOnly, amiID, dnsID)
	text = b.page(t, "2-migrations-only", s.listURL(migrationsOnly), dnsID, amiID)
	b.requireNone(t, text, "the migrations-only filter", allIDs(t, tc), dnsID, amiID)
	b.page(t, "3-unfiltered", s.uiURL+"/namespaces/default/workflows", "plan/")

	// 3. The shift's page: a summary naming kind and resource; current details with the
	// weights, the step and the gates.
	b.page(t, "4-dns-shift-history", uiURL(dns), "DNSShift")
	text = b.open(t, "5-dns-shift-metadata", "User Metadata", "DNS shift www.shop.example. A: eu-west-1 -> eu-west-2",
		"eu-west-1=90 → eu-west-2=10", "awaiting-approval", "eu-west-2 health")
	runID := runOf(dns)

	// 4. Every activity has a summary, and the history shows it.
	for _, sum := range activitySummaries(t, ctx, tc, dnsID, runID) {
		if sum == "" {
			t.Errorf("an activity of %s has no summary", dnsID)
		} else if !strings.Contains(text, sum) {
			t.Errorf("activity summary %q is not in the page's events with metadata", sum)
		}
	}

	// 5. The failed migration's reason is one sentence, with no chain of causes below it
	// repeating it, in the workflow's failure and on its page.
	reason, depth := failure(t, ctx, tc, amiID, runOf(ami))
	if !oneSentence(reason) || depth > 2 {
		t.Errorf("failure of %s does not read as one sentence (%d levels of causes): %q", amiID, depth, reason)
	}
	b.page(t, "6-failed-ami-share", uiURL(ami), "AMI share", firstWords(reason, 6))
	t.Logf("failure reason: %s", reason)
	t.Logf("done in %s", time.Since(began).Round(time.Second))
}

// start starts a spec through the CLI and returns the migration's id.
func (s *devStack) start(t *testing.T, spec string) string {
	t.Helper()
	out, err := s.ferry(t, "start", "-f", spec, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ ID string }
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.ID == "" {
		t.Fatalf("start %s: %v: %s", spec, err, out)
	}
	return m.ID
}

func (s *devStack) listURL(query string) string {
	return s.uiURL + "/namespaces/default/workflows?query=" + url.QueryEscape(query)
}

func uiURL(m map[string]any) string { s, _ := m["uiUrl"].(string); return s }

// runOf is the run id in a migration's Temporal UI link (.../<id>/<run>/history).
func runOf(m map[string]any) string {
	parts := strings.Split(strings.TrimSuffix(uiURL(m), "/history"), "/")
	return parts[len(parts)-1]
}

// oneSentence: one line, none of the AWS SDK's transport detail, no clause said twice.
func oneSentence(s string) bool {
	if strings.Contains(s, "\n") || strings.Contains(s, "operation error") || strings.Contains(s, "RequestID") {
		return false
	}
	seen := map[string]bool{}
	for _, c := range strings.Split(s, "; ") {
		if seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}

func firstWords(s string, n int) string {
	w := strings.Fields(s)
	return strings.Join(w[:min(n, len(w))], " ")
}

// requireIDs checks what visibility itself answers for query: exactly want.
func requireIDs(t *testing.T, c client.Client, query string, want ...string) {
	t.Helper()
	got := listIDs(t, c, query)
	if strings.Join(got, " ") != strings.Join(sorted(want), " ") {
		t.Fatalf("%s lists %v, want %v", query, got, sorted(want))
	}
}

func allIDs(t *testing.T, c client.Client) []string { return listIDs(t, c, "") }

func listIDs(t *testing.T, c client.Client, query string) []string {
	t.Helper()
	resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", Query: query, PageSize: 1000})
	if err != nil {
		t.Fatalf("list %q: %v", query, err)
	}
	seen := map[string]bool{}
	var ids []string
	for _, e := range resp.GetExecutions() {
		if id := e.GetExecution().GetWorkflowId(); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return sorted(ids)
}

// activitySummaries are the summaries of every activity the run scheduled.
func activitySummaries(t *testing.T, ctx context.Context, c client.Client, id, run string) []string {
	t.Helper()
	var out []string
	it := c.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
			out = append(out, summaryOf(e))
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s scheduled no activity", id)
	}
	return out
}

func summaryOf(e *historypb.HistoryEvent) string {
	var s string
	if p := e.GetUserMetadata().GetSummary(); p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &s)
	}
	return s
}

// failure is the run's failure message and how many levels of causes it has.
func failure(t *testing.T, ctx context.Context, c client.Client, id, run string) (string, int) {
	t.Helper()
	it := c.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if f := e.GetWorkflowExecutionFailedEventAttributes().GetFailure(); f != nil {
			depth := 0
			for x := f; x != nil; x = x.GetCause() {
				depth++
			}
			return f.GetMessage(), depth
		}
	}
	t.Fatalf("%s did not end failed", id)
	return "", 0
}

func sorted(s []string) []string {
	out := append([]string{}, s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// browser is one headless Chromium tab.
type browser struct {
	ctx   context.Context
	shots string
}

func newBrowser(t *testing.T, ctx context.Context, exe, shots string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1600, 1200))
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	return &browser{ctx: tab, shots: shots}
}

// page opens url, waits until its text holds every want (the UI renders client-side),
// saves a screenshot as name.png and returns the text.
func (b *browser) page(t *testing.T, name, url string, want ...string) string {
	t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return b.wait(t, name, url, want...)
}

// open clicks the tab or button labelled label (the UI hides the user metadata behind one)
// and waits for want.
func (b *browser) open(t *testing.T, name, label string, want ...string) string {
	t.Helper()
	js := `(() => { const e = [...document.querySelectorAll('button, a, [role=tab]')].find(e => e.innerText.trim() === ` + strconv.Quote(label) + `); if (e) { e.click(); return true } return false })()`
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q to click", name, label)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return b.wait(t, name, label, want...)
}

func (b *browser) wait(t *testing.T, name, url string, want ...string) string {
	t.Helper()
	var text string
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if text, err = chromedp.Run(b.ctx, chromedp.Evaluate[string](pageText)); err != nil {
			t.Fatal(err)
		}
		missing := ""
		for _, w := range want {
			if !strings.Contains(text, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			b.shot(t, name)
			t.Fatalf("%s: %q never appeared on %s; the page says:\n%s", name, missing, url, text)
		}
		time.Sleep(300 * time.Millisecond)
	}
	b.shot(t, name)
	return text
}

func (b *browser) shot(t *testing.T, name string) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Error(err)
	}
}

// pageText is the page's text with that of its frames: the UI renders a workflow's
// summary and details (markdown) in sandboxed iframes, readable only through srcdoc.
const pageText = `[document.body.innerText, ...[...document.querySelectorAll('iframe')].map(f => {
	try { if (f.contentDocument && f.contentDocument.body) return f.contentDocument.body.innerText } catch (e) {}
	const d = document.createElement('div'); d.innerHTML = f.srcdoc || ''; return d.textContent
})].join('\n')`

// requireNone checks that no workflow id other than allowed shows on a page.
func (b *browser) requireNone(t *testing.T, text, what string, ids []string, allowed ...string) {
	t.Helper()
	for _, id := range ids {
		ok := false
		for _, a := range allowed {
			ok = ok || id == a || strings.HasPrefix(a, id)
		}
		if !ok && strings.Contains(text, id) {
			t.Errorf("%s shows %s, which it should not list", what, id)
		}
	}
}
