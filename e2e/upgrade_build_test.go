package e2e

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The upgrade test builds ferry twice from source: build A is the working tree as it is, build B
// a copy of it with one change to workflows/mongomove.go (e2e/testdata/upgrade/). These are
// the helpers that find the tools and the tree, copy it, change it and build it.

// upgradeChange names the files in e2e/testdata/upgrade/ that describe the change: the anchor
// (text of workflows/mongomove.go that must occur exactly once) and what replaces it.
const (
	upgradeChangedFile = "workflows/mongomove.go"
	upgradeAnchor      = "anchor.txt"
	upgradeGuarded     = "guarded.txt"   // the change under workflow.GetVersion
	upgradeUnguarded   = "unguarded.txt" // the same change without it
)

// What the change adds to each forward reconfig, as the histories show it: a ReadReplicaSet
// whose summary starts with "verify: ", a timer of upgradeSettle, and one version marker.
const (
	upgradeChangeID       = "verify-after-reconfig"
	upgradeVerifyActivity = "ReadReplicaSet"
	upgradeVerifyPrefix   = "verify: "
	upgradeSettle         = 750 * time.Millisecond
)

// upgradeTools returns the go and git binaries. Without them the test cannot build ferry: on
// CI (CI=true) that fails the test, since a skip there would hide that the rule went
// unchecked; elsewhere (a machine with only a test binary) it skips.
func upgradeTools(t *testing.T) (goBin, gitBin string) {
	t.Helper()
	var missing []string
	find := func(name string) string {
		p, err := exec.LookPath(name)
		if err != nil {
			missing = append(missing, name)
		}
		return p
	}
	goBin, gitBin = find("go"), find("git")
	if len(missing) > 0 {
		msg := "the upgrade test builds ferry from source and needs " + strings.Join(missing, " and ") + " on PATH"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return goBin, gitBin
}

// upgradeRepoRoot is the directory of the module the test runs in (go env GOMOD), so the
// test finds the source from wherever `go test` runs it.
func upgradeRepoRoot(t *testing.T, goBin string) string {
	t.Helper()
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		t.Fatal("go env GOMOD names no go.mod: run the test inside the ferry module")
	}
	return filepath.Dir(mod)
}

// upgradeBuild builds ./cmd/ferry in tree into out and logs how long it took. The default
// build cache is shared, so a copy of the tree recompiles only ferry's own packages (their
// directory is part of the cache key) and none of its dependencies.
func upgradeBuild(t *testing.T, goBin, tree, out, what string) {
	t.Helper()
	began := time.Now()
	cmd := exec.Command(goBin, "build", "-o", out, "./cmd/ferry")
	cmd.Dir = tree
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s in %s: %v\n%s", what, tree, err, b)
	}
	t.Logf("built %s in %s", what, time.Since(began).Round(100*time.Millisecond))
}

// upgradeCopyTree copies the source as `go build` sees it in root into dst: the files git
// tracks and the untracked ones it does not ignore, from the working tree. So the copy is
// build A's source exactly, uncommitted edits and new files included (a new file that an
// edited one uses must come along, or the copy would not build); ignored files (bin/,
// .ferry/) and .git stay behind.
func upgradeCopyTree(t *testing.T, gitBin, root, dst string) {
	t.Helper()
	out, err := exec.Command(gitBin, "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files in %s: %v", root, err)
	}
	seen := map[string]bool{}
	for _, rel := range strings.Split(string(out), "\x00") {
		if rel == "" || seen[rel] {
			continue
		}
		seen[rel] = true
		if err := upgradeCopyFile(filepath.Join(root, rel), filepath.Join(dst, rel)); err != nil {
			t.Fatalf("copy %s: %v", rel, err)
		}
	}
}

// upgradeCopyFile copies one file, keeping its mode; a file deleted from the working tree
// (still listed by git) is left out, as the build leaves it out.
func upgradeCopyFile(src, dst string) error {
	info, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	w, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, in); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// upgradeApplyChange replaces the anchor in tree's workflows/mongomove.go with the text of
// testdata/upgrade/<replacement>. An exact text replacement rather than a patch: it either
// finds its one anchor or fails saying so, where a patch could apply with fuzz elsewhere.
func upgradeApplyChange(t *testing.T, tree, replacement string) {
	t.Helper()
	anchor := upgradeTestdata(t, upgradeAnchor)
	repl := upgradeTestdata(t, replacement)
	if !strings.HasPrefix(repl, anchor) {
		t.Fatalf("testdata/upgrade/%s must start with the anchor (the change adds after it)", replacement)
	}
	path := filepath.Join(tree, upgradeChangedFile)
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(src), anchor); n != 1 {
		t.Fatalf("the anchor of e2e/testdata/upgrade/%s occurs %d times in %s, want exactly once: "+
			"the code it names has changed; update the anchor and the replacements to today's reconfig step", upgradeAnchor, n, upgradeChangedFile)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(src), anchor, repl, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func upgradeTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "upgrade", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// upgradeReplayHistories runs the workflows package's TestReplayHistories in tree (every
// committed history replayed against that tree's code) and returns its output and whether
// it passed.
func upgradeReplayHistories(t *testing.T, goBin, tree string) (string, bool) {
	t.Helper()
	began := time.Now()
	cmd := exec.Command(goBin, "test", "-count=1", "-run", "^TestReplayHistories$", "./workflows/")
	cmd.Dir = tree
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("go test in %s: %v\n%s", tree, err, out)
	}
	t.Logf("replayed the committed histories in %s in %s (passed: %v)", filepath.Base(tree), time.Since(began).Round(100*time.Millisecond), err == nil)
	return string(out), err == nil
}

// upgradeFailedRe matches the message TestReplayHistories gives each history that failed.
var upgradeFailedRe = regexp.MustCompile(`testdata/(\S+) \(workflow type ([\w.]+)\)`)

// upgradeFailedReplays lists the histories TestReplayHistories reported as failed, by file,
// with the workflow type each recorded.
func upgradeFailedReplays(out string) map[string]string {
	failed := map[string]string{}
	for _, m := range upgradeFailedRe.FindAllStringSubmatch(out, -1) {
		failed[m[1]] = m[2]
	}
	return failed
}
