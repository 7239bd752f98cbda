package cli

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestServerRefusesPlaintextOnNonLoopback: `ferry server` on an address other hosts reach,
// without --tls-cert, refuses to start and says how to fix it; loopback passes the check.
func TestServerRefusesPlaintextOnNonLoopback(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		var stderr bytes.Buffer
		code := Main([]string{"server", "--listen", listen, "--token-file", "/nonexistent/tokens.json"}, io.Discard, &stderr)
		msg := stderr.String()
		if code == 0 || !strings.Contains(msg, "--tls-cert") || !strings.Contains(msg, "--insecure") {
			t.Errorf("ferry server --listen %s: exit %d, %q; want a refusal naming --tls-cert and --insecure", listen, code, msg)
		}
	}
	// Loopback, and --insecure on purpose, pass the check and stop at the next problem.
	for _, args := range [][]string{
		{"server", "--listen", "127.0.0.1:0", "--token-file", "/nonexistent/tokens.json"},
		{"server", "--listen", "0.0.0.0:0", "--insecure", "--token-file", "/nonexistent/tokens.json"},
	} {
		var stderr bytes.Buffer
		Main(args, io.Discard, &stderr)
		if strings.Contains(stderr.String(), "--insecure") || !strings.Contains(stderr.String(), "token file") {
			t.Errorf("ferry %v: %q; want it past the TLS check, refused for the missing token file", args, stderr.String())
		}
	}
}

var envInUsage = regexp.MustCompile(`FERRY_[A-Z0-9_]+`)

// TestSecretFlagsHideValuesInHelp sets the variable behind every secret flag (a token,
// password, secret or API key) to a sentinel and reads every command's --help: the value
// never shows, while an ordinary flag's default still does.
func TestSecretFlagsHideValuesInHelp(t *testing.T) {
	const sentinel = "s3cr3t-sentinel-value"
	var secret []string
	walk(newRoot(io.Discard, io.Discard), func(c *cobra.Command, f *pflag.Flag) {
		if secretFlag.MatchString(f.Name) {
			for _, env := range envInUsage.FindAllString(f.Usage, -1) {
				t.Setenv(env, sentinel)
				secret = append(secret, "--"+f.Name+" ("+env+")")
			}
		}
	})
	for _, want := range []string{"--token (FERRY_TOKEN)", "--temporal-api-key (FERRY_TEMPORAL_API_KEY)"} {
		if !strings.Contains(strings.Join(secret, " "), want) {
			t.Fatalf("secret flags found: %v; %s is missing (does secretFlag still match it?)", secret, want)
		}
	}
	t.Setenv("FERRY_TEMPORAL_NAMESPACE", "ordinary-default")
	var sawOrdinary bool
	var paths [][]string
	walkCmds(newRoot(io.Discard, io.Discard), nil, func(path []string) { paths = append(paths, path) })
	for _, path := range paths {
		var out bytes.Buffer
		Main(append(append([]string{}, path...), "--help"), &out, &out)
		if strings.Contains(out.String(), sentinel) {
			t.Errorf("ferry %s --help prints a secret flag's value", strings.Join(path, " "))
		}
		sawOrdinary = sawOrdinary || strings.Contains(out.String(), "ordinary-default")
	}
	if !sawOrdinary {
		t.Fatal("no help showed an ordinary flag's default: the test no longer reads defaults")
	}
	t.Logf("secret flags: %v; %d commands' help read", secret, len(paths))
}

func walk(c *cobra.Command, f func(*cobra.Command, *pflag.Flag)) {
	c.Flags().VisitAll(func(fl *pflag.Flag) { f(c, fl) })
	c.PersistentFlags().VisitAll(func(fl *pflag.Flag) { f(c, fl) })
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}

func walkCmds(c *cobra.Command, path []string, f func([]string)) {
	f(path)
	for _, sub := range c.Commands() {
		walkCmds(sub, append(append([]string{}, path...), sub.Name()), f)
	}
}
