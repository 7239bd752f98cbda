package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
)

// fakeAPI answers GetMigration and ListMigrations for one token, and pages its list.
type fakeAPI struct {
	ferryv1connect.UnimplementedMigrationServiceHandler
	token string
	ids   []string
	pages int
}

func (f *fakeAPI) auth(h http.Header) error {
	if h.Get("Authorization") != "Bearer "+f.token {
		return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("bad token %q", h.Get("Authorization")))
	}
	return nil
}

func (f *fakeAPI) GetMigration(_ context.Context, r *connect.Request[ferryv1.GetMigrationRequest]) (*connect.Response[ferryv1.GetMigrationResponse], error) {
	if err := f.auth(r.Header()); err != nil {
		return nil, err
	}
	m := dnsFixture(running)
	m.Id = r.Msg.GetId()
	return connect.NewResponse(&ferryv1.GetMigrationResponse{Migration: m}), nil
}

func (f *fakeAPI) ListMigrations(_ context.Context, r *connect.Request[ferryv1.ListMigrationsRequest]) (*connect.Response[ferryv1.ListMigrationsResponse], error) {
	if err := f.auth(r.Header()); err != nil {
		return nil, err
	}
	f.pages++
	from := 0
	fmt.Sscan(r.Msg.GetPageToken(), &from)
	to := min(from+int(r.Msg.GetPageSize()), len(f.ids))
	resp := &ferryv1.ListMigrationsResponse{}
	for _, id := range f.ids[from:to] {
		phase := "shift to 10%"
		if strings.HasSuffix(id, "7/A") {
			phase = "shift to 50%"
		}
		resp.Migrations = append(resp.Migrations, &ferryv1.Migration{Id: id, Kind: ferryv1.MigrationKind_MIGRATION_KIND_DNS_SHIFT, State: running, Phase: phase, StartTime: at(1)})
	}
	if to < len(f.ids) {
		resp.NextPageToken = fmt.Sprint(to)
	}
	return connect.NewResponse(resp), nil
}

func startFakeAPI(t *testing.T, token string, n int) (*fakeAPI, string) {
	t.Helper()
	f := &fakeAPI{token: token}
	for i := range n {
		f.ids = append(f.ids, fmt.Sprintf("dns/z/r%d/A", i))
	}
	_, h := ferryv1connect.NewMigrationServiceHandler(f)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// isolate gives a test its own config file and working directory, and clears the FERRY_*
// variables a developer's shell may hold.
func isolate(t *testing.T) string {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "FERRY_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Chdir(dir)
	return dir
}

func ferry(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	if code != 0 {
		t.Logf("ferry %v: exit %d: %s", args, code, errb.String())
	}
	return out.String() + errb.String(), code
}

// TestContexts: set-context, use-context and get-contexts manage the file; get and list
// use the current context from any directory; a flag and a FERRY_* variable win over it.
func TestContexts(t *testing.T) {
	dir := isolate(t)
	_, prod := startFakeAPI(t, "prod-token", 3)
	_, stage := startFakeAPI(t, "stage-token", 3)
	tokenFile := filepath.Join(dir, "prod-token")
	if err := os.WriteFile(tokenFile, []byte("prod-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A relative token file is kept absolute, so the context works from anywhere.
	if out, code := ferry(t, "config", "set-context", "prod", "--api", prod, "--token-file", "prod-token"); code != 0 {
		t.Fatal(out)
	}
	if out, code := ferry(t, "config", "set-context", "stage", "--api", stage, "--token", "stage-token"); code != 0 {
		t.Fatal(out)
	}
	out, _ := ferry(t, "config", "get-contexts")
	if !strings.Contains(out, "*        prod") || !strings.Contains(out, "token file "+tokenFile) || !strings.Contains(out, "token (in the config file)") || strings.Contains(out, "stage-token") {
		t.Fatalf("get-contexts (first context current, no secret printed):\n%s", out)
	}
	if st, _ := os.Stat(filepath.Join(dir, "config", "ferry", "config.yaml")); st == nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file mode: %v", st)
	}

	other := t.TempDir()
	t.Chdir(other)
	if out, code := ferry(t, "get", "dns/z/r1/A"); code != 0 || !strings.Contains(out, "dns/z/r1/A") {
		t.Fatalf("get through the prod context: %d %s", code, out)
	}
	if out, code := ferry(t, "list", "--context", "stage"); code != 0 || !strings.Contains(out, "dns/z/r2/A") {
		t.Fatalf("list --context stage: %d %s", code, out)
	}
	if out, code := ferry(t, "config", "use-context", "stage"); code != 0 {
		t.Fatal(out)
	}
	if _, code := ferry(t, "list"); code != 0 {
		t.Fatal("list through stage after use-context")
	}
	// A flag, then a variable, beat the context: the stage token is wrong for prod.
	if out, code := ferry(t, "list", "--api", prod); code == 0 || !strings.Contains(out, "unauthenticated") {
		t.Fatalf("--api over the context kept the context's token, want prod to refuse it: %d %s", code, out)
	}
	if out, code := ferry(t, "list", "--api", prod, "--token", "prod-token"); code != 0 {
		t.Fatalf("--api and --token over the context: %s", out)
	}
	t.Setenv("FERRY_TOKEN", "prod-token")
	t.Setenv("FERRY_API", prod)
	if out, code := ferry(t, "list"); code != 0 {
		t.Fatalf("FERRY_API and FERRY_TOKEN over the context: %s", out)
	}
	if out, code := ferry(t, "config", "use-context", "nope"); code == 0 || !strings.Contains(out, "set-context nope") {
		t.Fatalf("use-context of a missing context: %s", out)
	}
}

// TestDevContextTokenFile: the dev context points at ferry dev's tokens.json, and --as picks
// the profile from it.
func TestDevContextTokenFile(t *testing.T) {
	dir := isolate(t)
	_, api := startFakeAPI(t, "approver-token", 1)
	data := filepath.Join(dir, "state")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	tokens := `{"tokens":[{"token":"operator-token","profile":"operator"},{"token":"approver-token","profile":"approver"}]}`
	if err := os.WriteFile(filepath.Join(data, "tokens.json"), []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := writeDevContext(api, "state"); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	if out, code := ferry(t, "get", "x", "--as", "approver"); code != 0 {
		t.Fatalf("get --as approver through the dev context: %s", out)
	}
	if out, code := ferry(t, "get", "x"); code == 0 {
		t.Fatalf("the operator token should be refused by this fake: %s", out)
	}
}

// TestListPages: --limit stops after enough, across pages of at most 500; --all reads every
// page; --phase is matched on the client and pages on until enough match.
func TestListPages(t *testing.T) {
	isolate(t)
	f, api := startFakeAPI(t, "t", 1203)
	t.Setenv("FERRY_API", api)
	t.Setenv("FERRY_TOKEN", "t")
	out, code := ferry(t, "list", "--limit", "700", "-o", "json")
	if n := strings.Count(out, `"id"`); code != 0 || n != 700 || f.pages != 2 {
		t.Fatalf("--limit 700: %d ids in %d pages (exit %d)", n, f.pages, code)
	}
	f.pages = 0
	out, _ = ferry(t, "list", "--all", "-o", "yaml")
	if n := strings.Count(out, "- id: "); n != 1203 || f.pages != 3 {
		t.Fatalf("--all: %d ids in %d pages", n, f.pages)
	}
	out, _ = ferry(t, "list", "--limit", "3")
	if strings.Count(out, "dns/z/") != 3 || !strings.Contains(out, "more than 3") {
		t.Fatalf("--limit 3 says there is more:\n%s", out)
	}
	out, _ = ferry(t, "list", "--phase", "shift to 50%", "--limit", "130")
	if n := strings.Count(out, "dns/z/"); n != 120 {
		t.Fatalf("--phase: %d matches, want every number ending in 7 below 1203 (120):\n%s", n, out)
	}
	if out, code := ferry(t, "list", "--kind", "nope"); code == 0 || !strings.Contains(out, kindNames()[0]) {
		t.Fatalf("--kind nope names the kinds: %s", out)
	}
}
