package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/internal/apiclient"
	"github.com/ferryhq/ferry/server"
)

// clientFlags are shared by every command that talks to the API.
type clientFlags struct {
	apiCA, apiCert, apiKey string
	api                    string
	token                  string
	as                     string
	dataDir                string
	output                 string
	context                string
	// tokenFile comes from the context (there is no flag: --token or FERRY_TOKEN give the
	// token itself, --data-dir ferry dev's tokens).
	tokenFile string
}

func (f *clientFlags) bind(cmd *cobra.Command) {
	p := cmd.PersistentFlags()
	p.StringVar(&f.api, "api", envOr("FERRY_API", "http://127.0.0.1:8080"), "ferry API base URL (FERRY_API); default: the context's")
	p.StringVar(&f.token, "token", envOr("FERRY_TOKEN", ""), "bearer token (FERRY_TOKEN); default: the context's, else the local token `ferry dev` wrote")
	p.StringVar(&f.as, "as", envOr("FERRY_AS", "operator"), "with ferry dev's local tokens: act as operator, approver, or a GameDay player: alice, bob, carol (FERRY_AS)")
	p.StringVar(&f.dataDir, "data-dir", envOr("FERRY_DATA_DIR", ".ferry"), "where ferry dev keeps its local tokens (FERRY_DATA_DIR); given, it wins over the context")
	p.StringVar(&f.apiCA, "api-ca", envOr("FERRY_API_CA", ""), "CA bundle to verify an https API (FERRY_API_CA)")
	p.StringVar(&f.apiCert, "api-cert", envOr("FERRY_API_CERT", ""), "client certificate for an mTLS API; replaces the token (FERRY_API_CERT)")
	p.StringVar(&f.apiKey, "api-cert-key", envOr("FERRY_API_CERT_KEY", ""), "key of --api-cert (FERRY_API_CERT_KEY)")
	p.StringVar(&f.context, "context", envOr("FERRY_CONTEXT", ""), "context from the config file (FERRY_CONTEXT); default: the current one")
	p.StringVarP(&f.output, "output", "o", envOr("FERRY_OUTPUT", "text"), "output format: text, wide, json or yaml (FERRY_OUTPUT)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return contextNames(), cobra.ShellCompDirectiveNoFileComp
	})
}

// given reports whether a flag was set on the command line or through its variable: those
// win over the context.
func given(cmd *cobra.Command, flag, env string) bool {
	if fl := cmd.Flag(flag); fl != nil && fl.Changed {
		return true
	}
	return os.Getenv(env) != ""
}

// applyContext fills what neither a flag nor a FERRY_* variable gave from the context.
func (f *clientFlags) applyContext(cmd *cobra.Command) error {
	cfg, _, err := loadConfig()
	if err != nil {
		return err
	}
	c, err := cfg.current(f.context)
	if err != nil || c == nil {
		return err
	}
	fill := func(flag, env string, dst *string, v string) {
		if v != "" && !given(cmd, flag, env) {
			*dst = v
		}
	}
	fill("api", "FERRY_API", &f.api, c.API)
	fill("api-ca", "FERRY_API_CA", &f.apiCA, c.CA)
	fill("api-cert", "FERRY_API_CERT", &f.apiCert, c.Cert)
	fill("api-cert-key", "FERRY_API_CERT_KEY", &f.apiKey, c.CertKey)
	// A token given in any form (flag, variable, a data directory of ferry dev's) wins
	// over the context's credentials as a whole.
	if !given(cmd, "token", "FERRY_TOKEN") && !given(cmd, "data-dir", "FERRY_DATA_DIR") {
		f.token, f.tokenFile = c.Token, c.TokenFile
	}
	return nil
}

// resolveToken picks FERRY_TOKEN / --token, else the context's token or token file, else
// the local dev token for --as.
func (f *clientFlags) resolveToken() (string, error) {
	if f.token != "" {
		return f.token, nil
	}
	path := f.tokenFile
	if path == "" {
		path = server.DevTokenFile(f.dataDir)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no token: set FERRY_TOKEN or --token, use a context (`ferry config get-contexts`), or run `ferry dev` (%s is missing)", path)
	}
	return tokenFromFile(path, b, f.as)
}

// tokenFromFile reads a token file: ferry dev's tokens.json (a token per profile, picked by
// as) or a bare token.
func tokenFromFile(path string, b []byte, as string) (string, error) {
	trimmed := strings.TrimSpace(string(b))
	if !strings.HasPrefix(trimmed, "{") {
		if trimmed == "" {
			return "", fmt.Errorf("token file %s is empty", path)
		}
		return trimmed, nil
	}
	var file struct {
		Tokens []struct {
			Token   string `json:"token"`
			Profile string `json:"profile"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		return "", fmt.Errorf("parse %s: %w", path, err)
	}
	var profiles []string
	for _, t := range file.Tokens {
		if t.Profile == as {
			return t.Token, nil
		}
		profiles = append(profiles, t.Profile)
	}
	if as != "operator" && as != "approver" {
		return "", fmt.Errorf("--as %q: use one of %s (operator, approver, or a GameDay player)", as, strings.Join(profiles, ", "))
	}
	return "", fmt.Errorf("%s has no %s token", path, as)
}

// client builds the API client from the flags, variables and context of cmd.
func (f *clientFlags) client(cmd *cobra.Command) (ferryv1connect.MigrationServiceClient, error) {
	hc, token, err := f.connection(cmd)
	if err != nil {
		return nil, err
	}
	return apiclient.New(hc, f.api, token, false), nil
}

// gameDayClient is client for the GameDay service.
func (f *clientFlags) gameDayClient(cmd *cobra.Command) (ferryv1connect.GameDayServiceClient, error) {
	hc, token, err := f.connection(cmd)
	if err != nil {
		return nil, err
	}
	return apiclient.NewGameDay(hc, f.api, token), nil
}

// connection resolves the HTTP client (TLS) and the token from the flags, variables and
// context of cmd.
func (f *clientFlags) connection(cmd *cobra.Command) (*http.Client, string, error) {
	if err := checkOutput(f.output); err != nil {
		return nil, "", err
	}
	if err := f.applyContext(cmd); err != nil {
		return nil, "", err
	}
	hc := &http.Client{}
	if f.apiCA != "" || f.apiCert != "" {
		tc, err := apiclient.TLSConfig(f.apiCA, f.apiCert, f.apiKey)
		if err != nil {
			return nil, "", err
		}
		hc.Transport = &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	}
	token := ""
	if f.apiCert == "" {
		var err error
		if token, err = f.resolveToken(); err != nil {
			return nil, "", err
		}
	}
	return hc, token, nil
}

func addClientCommands(root *cobra.Command, g *globals) {
	f := &clientFlags{}
	group := []*cobra.Command{
		newGetCmd(g, f), newListCmd(g, f), newWatchCmd(g, f),
		newActionCmd(g, f, "approve", "Approve the gate a migration waits at (four-eyes: not its initiator)"),
		newActionCmd(g, f, "rollback", "Roll a migration back to where it started"),
		newActionCmd(g, f, "pause", "Hold a migration before its next change"),
		newActionCmd(g, f, "resume", "Continue a paused migration"),
		newActionCmd(g, f, "cancel", "Stop a migration where it is, without undoing changes"),
	}
	group = append(group, specCommands(g, f)...)
	for _, c := range group {
		f.bind(c)
		root.AddCommand(c)
	}
}

func newGetCmd(g *globals, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a migration: state, steps, the kind's view (weights, copies, members, phases), approvals, audit",
		Example: `  ferry get dns/shop.example./www.shop.example./A
  ferry get region/shop/eu-west-1/eu-west-2 -o wide     # phases with each child's view inline
  ferry get mongo/rs0 -o yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			resp, err := c.GetMigration(cmd.Context(), connect.NewRequest(&ferryv1.GetMigrationRequest{Id: args[0]}))
			if err != nil {
				return apiError(err)
			}
			m := resp.Msg.GetMigration()
			if isMachine(f.output) {
				return printMessage(g.stdout, f.output, m)
			}
			p := newPrinter(g.stdout, f.output == "wide")
			// A region move's phases are child migrations: fetched here so the tree shows
			// each one's own view; one that cannot be read is shown by its state alone.
			p.child = func(id string) *ferryv1.Migration {
				r, err := c.GetMigration(cmd.Context(), connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
				if err != nil {
					return nil
				}
				return r.Msg.GetMigration()
			}
			p.migration(m)
			return nil
		},
	}
}

func newWatchCmd(g *globals, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a migration live; exits non-zero if it fails or rolls back",
		Example: `  ferry watch dns/shop.example./www.shop.example./A
  ferry watch ami/ami-0123456789abcdef0/eu-west-2 -o json    # one JSON document per change`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			return watch(cmd.Context(), g.stdout, f.output, c, args[0])
		},
	}
}

// watch streams a migration until it ends and turns its outcome into the exit code.
func watch(ctx context.Context, w io.Writer, output string, c ferryv1connect.MigrationServiceClient, id string) error {
	stream, err := c.WatchMigration(ctx, connect.NewRequest(&ferryv1.WatchMigrationRequest{Id: id}))
	if err != nil {
		return apiError(err)
	}
	p := newPrinter(w, output == "wide")
	var last *ferryv1.Migration
	for stream.Receive() {
		m := stream.Msg().GetMigration()
		switch {
		case output == "yaml":
			// One YAML document per change, so a reader can split the stream.
			fmt.Fprintln(w, "---")
			if err := printYAML(w, m); err != nil {
				return err
			}
		case output == "json":
			if err := printJSON(w, m); err != nil {
				return err
			}
		default:
			p.now = time.Now()
			printWatchLine(p, m, last)
		}
		last = m
	}
	if err := stream.Err(); err != nil {
		return apiError(err)
	}
	if last == nil || last.GetCloseTime() == nil {
		return errors.New("watch ended before the migration did")
	}
	if last.GetState() != ferryv1.MigrationState_MIGRATION_STATE_COMPLETED {
		fmt.Fprintf(w, "migration %s ended %s: %s\n", id, stateText(last.GetState()), last.GetMessage())
		return &exitError{code: 2}
	}
	return nil
}

func newActionCmd(g *globals, f *clientFlags, verb, short string) *cobra.Command {
	var reason, step string
	cmd := &cobra.Command{
		Use:               verb + " ID",
		Short:             short,
		Example:           actionExamples[verb],
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			ctx, id := cmd.Context(), args[0]
			var m *ferryv1.Migration
			switch verb {
			case "approve":
				var r *connect.Response[ferryv1.ApproveStepResponse]
				if r, err = c.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id, Step: step, Comment: reason})); err == nil {
					m = r.Msg.GetMigration()
				}
			case "rollback":
				var r *connect.Response[ferryv1.RollbackMigrationResponse]
				if r, err = c.RollbackMigration(ctx, connect.NewRequest(&ferryv1.RollbackMigrationRequest{Id: id, Reason: reason})); err == nil {
					m = r.Msg.GetMigration()
				}
			case "pause":
				var r *connect.Response[ferryv1.PauseMigrationResponse]
				if r, err = c.PauseMigration(ctx, connect.NewRequest(&ferryv1.PauseMigrationRequest{Id: id, Reason: reason})); err == nil {
					m = r.Msg.GetMigration()
				}
			case "resume":
				var r *connect.Response[ferryv1.ResumeMigrationResponse]
				if r, err = c.ResumeMigration(ctx, connect.NewRequest(&ferryv1.ResumeMigrationRequest{Id: id, Reason: reason})); err == nil {
					m = r.Msg.GetMigration()
				}
			case "cancel":
				var r *connect.Response[ferryv1.CancelMigrationResponse]
				if r, err = c.CancelMigration(ctx, connect.NewRequest(&ferryv1.CancelMigrationRequest{Id: id, Reason: reason})); err == nil {
					m = r.Msg.GetMigration()
				}
			}
			if err != nil {
				return apiError(err)
			}
			return printMigration(g.stdout, f.output, m)
		},
	}
	if verb == "approve" {
		cmd.Flags().StringVar(&reason, "comment", "", "why you approve (audit trail)")
		cmd.Flags().StringVar(&step, "step", "", "the step to approve (default: the one waiting)")
	} else {
		cmd.Flags().StringVar(&reason, "reason", "", "why (audit trail)")
	}
	return cmd
}

// actionExamples show each steering command on a real-looking id.
var actionExamples = map[string]string{
	"approve": `  ferry approve dns/shop.example./www.shop.example./A --as approver --comment "error rate flat at 25%"
  ferry approve region/shop/eu-west-1/eu-west-2 --step "approve mongo-primary-move"`,
	"rollback": `  ferry rollback dns/shop.example./www.shop.example./A --reason "p99 latency up in eu-west-2"`,
	"pause":    `  ferry pause mongo/rs0 --reason "backup window"`,
	"resume":   `  ferry resume mongo/rs0 --reason "backup done"`,
	"cancel":   `  ferry cancel ami/ami-0123456789abcdef0/eu-west-2 --reason "wrong image"`,
}

// apiError keeps the server's message and drops transport noise.
func apiError(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: %s", ce.Code(), ce.Message())
	}
	return err
}

func enumName(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

func kindText(k ferryv1.MigrationKind) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k.String(), "MIGRATION_KIND_"), "_", "-"))
}

func stateText(s ferryv1.MigrationState) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(s.String(), "MIGRATION_STATE_"), "_", "-"))
}
