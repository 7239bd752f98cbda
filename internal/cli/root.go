// Package cli implements the ferry command: the processes (dev, worker, server, sandbox) and
// the API client commands (plan, start, get, list, watch, approve, ...).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Main runs the ferry command and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var exit *exitError
		if errors.As(err, &exit) {
			return exit.code
		}
		fmt.Fprintln(stderr, "ferry:", err)
		return 1
	}
	return 0
}

// Command is ferry's command tree, for tools that check what it accepts (the deploy
// manifests' test checks every flag and FERRY_* variable they use against it).
func Command() *cobra.Command { return newRoot(io.Discard, io.Discard) }

// exitError carries an exit code without printing anything more (the command already said
// what happened, e.g. `ferry watch` on a migration that rolled back).
type exitError struct{ code int }

func (e *exitError) Error() string { return "exit " + strconv.Itoa(e.code) }

type globals struct {
	stdout, stderr io.Writer
	logLevel       string
	logFormat      string
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "ferry",
		Short: "Run cloud migrations as durable, reversible Temporal workflows",
		Long: `ferry runs migrations as durable Temporal workflows that can be planned, approved,
paused, resumed and rolled back. The kinds of migration:

` + kindsHelp() + `
Try it with no AWS account:  ferry dev   (embedded Temporal + Web UI, sandbox cloud, worker, API)
Commands find the API through the current context (ferry config get-contexts); ferry dev
writes one named dev.`,
		Example: `  ferry dev
  ferry plan -f examples/dns-shift.yaml
  ferry start -f examples/dns-shift.yaml --watch
  ferry list --state awaiting-approval
  source <(ferry completion bash)`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", envOr("FERRY_LOG_LEVEL", "info"), "log level: debug, info, warn, error (FERRY_LOG_LEVEL)")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", envOr("FERRY_LOG_FORMAT", "text"), "log format: text, or json for a log pipeline (FERRY_LOG_FORMAT)")
	// Checked before any command runs: a typo must not silently log at another level or
	// in a format the pipeline cannot parse.
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return g.checkLogFlags() }
	root.AddCommand(
		newDevCmd(g),
		newWorkerCmd(g),
		newServerCmd(g),
		newKeysCmd(g),
		newSandboxCmd(g),
		newVersionCmd(g),
		newConfigCmd(g),
		newSetupCmd(g),
		newGameDayCmd(g),
	)
	addClientCommands(root, g)
	addBuiltinExamples(root)
	redactSecretDefaults(root)
	return root
}

// secretFlag matches flags whose value is a secret itself (not a path to one): their
// default comes from a FERRY_* variable, and --help prints defaults, so `ferry --help`
// in a shell with FERRY_TOKEN set would print the token.
var secretFlag = regexp.MustCompile(`(^|-)(token|password|secret|api-key)$`)

// redactSecretDefaults hides the defaults of secret flags in every command's help. Only
// the text shown changes; the flag still holds the variable's value.
func redactSecretDefaults(cmd *cobra.Command) {
	hide := func(f *pflag.Flag) {
		if secretFlag.MatchString(f.Name) && f.DefValue != "" {
			f.DefValue = ""
			f.Usage += " [default hidden: a secret]"
		}
	}
	cmd.Flags().VisitAll(hide)
	cmd.PersistentFlags().VisitAll(hide)
	for _, c := range cmd.Commands() {
		redactSecretDefaults(c)
	}
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(key); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// envList splits a comma-separated variable (nil when unset or empty).
func envList(key string) []string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

func (g *globals) checkLogFlags() error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", g.logLevel)
	}
	if g.logFormat != "text" && g.logFormat != "json" {
		return fmt.Errorf("--log-format %q: use text or json", g.logFormat)
	}
	return nil
}

func (g *globals) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if g.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(g.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(g.stderr, opts))
}

// envOr returns the environment variable's value, or def when it is unset. Every flag
// defaults through it so each one is also a FERRY_* variable.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, ok := os.LookupEnv(key); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func envBool(key string, def bool) bool {
	if v, ok := os.LookupEnv(key); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}

// Version is set at build time with -ldflags "-X github.com/ferryhq/ferry/internal/cli.Version=...".
var Version = "dev"

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print ferry's version",
		Example: "  ferry version",
		Args:    cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprint(g.stdout, versionText(Version, buildInfo()))
		},
	}
}

func buildInfo() *debug.BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return bi
}

// versionText is ferry's version (stamped by `make build` and the Dockerfile with
// -ldflags -X .../internal/cli.Version=...), the commit it was built from, and the versions
// of the Temporal SDK it speaks and the server `ferry dev` embeds, from the build info.
func versionText(version string, bi *debug.BuildInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ferry %s", version)
	deps := map[string]string{}
	if bi != nil {
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			fmt.Fprintf(&b, " (commit %.12s", rev)
			if settings["vcs.modified"] == "true" {
				b.WriteString(", modified")
			}
			if t := settings["vcs.time"]; t != "" {
				fmt.Fprintf(&b, ", %s", t)
			}
			b.WriteString(")")
		}
		for _, d := range bi.Deps {
			deps[d.Path] = d.Version
		}
		fmt.Fprintf(&b, "\nGo %s", strings.TrimPrefix(bi.GoVersion, "go"))
	}
	b.WriteString("\n")
	for _, m := range []struct{ name, path string }{
		{"Temporal Go SDK", "go.temporal.io/sdk"},
		{"Temporal server (ferry dev)", "go.temporal.io/server"},
	} {
		v := deps[m.path]
		if v == "" {
			v = "unknown (no build info)"
		}
		fmt.Fprintf(&b, "%s %s\n", m.name, v)
	}
	return b.String()
}
