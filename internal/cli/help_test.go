package cli

import (
	"bytes"
	"strings"
	"testing"
	"unicode"

	"github.com/spf13/cobra"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// helpOf renders a command's --help the way a user sees it.
func helpOf(t *testing.T, path []string) string {
	t.Helper()
	var out bytes.Buffer
	root := newRoot(&out, &out)
	root.SetArgs(append(path, "--help"))
	if err := root.Execute(); err != nil {
		t.Fatalf("ferry %v --help: %v", path, err)
	}
	return out.String()
}

// allCommands lists every command's path below root (root itself as the empty path).
func allCommands(c *cobra.Command, path []string, visit func([]string, *cobra.Command)) {
	visit(path, c)
	for _, sub := range c.Commands() {
		if !sub.Hidden {
			allCommands(sub, append(append([]string{}, path...), sub.Name()), visit)
		}
	}
}

// camel turns dns-shift into dnsShift, the spec's field for the kind.
func camel(kind string) string {
	parts := strings.Split(kind, "-")
	for i := 1; i < len(parts); i++ {
		r := []rune(parts[i])
		r[0] = unicode.ToUpper(r[0])
		parts[i] = string(r)
	}
	return strings.Join(parts, "")
}

// TestHelpNamesTheRegisteredKinds: help names no kind that is not registered (in the API's
// enum or a spec field, but not in spec.Kinds) and the root and list help miss none that
// is. Registering a kind makes this test demand it; help derives its lists from
// spec.Kinds, so it does.
func TestHelpNamesTheRegisteredKinds(t *testing.T) {
	registered := map[string]bool{}
	for _, k := range kindNames() {
		registered[k] = true
	}
	var unregistered []string
	for v := range len(ferryv1.MigrationKind_name) {
		k := kindText(ferryv1.MigrationKind(v))
		if v != 0 && !registered[k] {
			unregistered = append(unregistered, k, camel(k))
		}
	}
	allCommands(newRoot(&bytes.Buffer{}, &bytes.Buffer{}), nil, func(path []string, _ *cobra.Command) {
		help := helpOf(t, path)
		for _, k := range unregistered {
			if strings.Contains(help, k) {
				t.Errorf("`ferry %s --help` names %q, which is not a registered kind", strings.Join(path, " "), k)
			}
		}
	})
	for _, path := range [][]string{nil, {"list"}} {
		help := helpOf(t, path)
		for k := range registered {
			if !strings.Contains(help, k) {
				t.Errorf("`ferry %s --help` does not name the kind %s", strings.Join(path, " "), k)
			}
		}
	}
}

// TestEveryCommandHasAnExample: each command's help shows how it is used.
func TestEveryCommandHasAnExample(t *testing.T) {
	allCommands(newRoot(&bytes.Buffer{}, &bytes.Buffer{}), nil, func(path []string, c *cobra.Command) {
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("`ferry %s` has no Example", strings.Join(path, " "))
			return
		}
		if help := helpOf(t, path); !strings.Contains(help, "Examples:") {
			t.Errorf("`ferry %s --help` shows no Examples block", strings.Join(path, " "))
		}
	})
}
