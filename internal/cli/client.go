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
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

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
}

func (f *clientFlags) bind(cmd *cobra.Command) {
	p := cmd.PersistentFlags()
	p.StringVar(&f.api, "api", envOr("FERRY_API", "http://127.0.0.1:8080"), "ferry API base URL (FERRY_API)")
	p.StringVar(&f.token, "token", envOr("FERRY_TOKEN", ""), "bearer token (FERRY_TOKEN); default: the local token `ferry dev` wrote")
	p.StringVar(&f.as, "as", envOr("FERRY_AS", "operator"), "with ferry dev's local tokens: act as operator or approver (FERRY_AS)")
	p.StringVar(&f.dataDir, "data-dir", envOr("FERRY_DATA_DIR", ".ferry"), "where ferry dev keeps its local tokens (FERRY_DATA_DIR)")
	p.StringVar(&f.apiCA, "api-ca", envOr("FERRY_API_CA", ""), "CA bundle to verify an https API (FERRY_API_CA)")
	p.StringVar(&f.apiCert, "api-cert", envOr("FERRY_API_CERT", ""), "client certificate for an mTLS API; replaces the token (FERRY_API_CERT)")
	p.StringVar(&f.apiKey, "api-cert-key", envOr("FERRY_API_CERT_KEY", ""), "key of --api-cert (FERRY_API_CERT_KEY)")
	p.StringVarP(&f.output, "output", "o", envOr("FERRY_OUTPUT", "text"), "output format: text or json (FERRY_OUTPUT)")
}

// resolveToken picks FERRY_TOKEN / --token, else the local dev token for --as.
func (f *clientFlags) resolveToken() (string, error) {
	if f.token != "" {
		return f.token, nil
	}
	path := server.DevTokenFile(f.dataDir)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no token: set FERRY_TOKEN or --token, or run `ferry dev` here so %s exists", path)
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
	if f.as != "operator" && f.as != "approver" {
		return "", fmt.Errorf("--as %q: use operator or approver", f.as)
	}
	for _, t := range file.Tokens {
		if t.Profile == f.as {
			return t.Token, nil
		}
	}
	return "", fmt.Errorf("%s has no %s token", path, f.as)
}

func (f *clientFlags) client() (ferryv1connect.MigrationServiceClient, error) {
	if f.output != "text" && f.output != "json" {
		return nil, fmt.Errorf("-o %q: use text or json", f.output)
	}
	hc := &http.Client{}
	if f.apiCA != "" || f.apiCert != "" {
		tc, err := apiclient.TLSConfig(f.apiCA, f.apiCert, f.apiKey)
		if err != nil {
			return nil, err
		}
		hc.Transport = &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	}
	token := ""
	if f.apiCert == "" {
		var err error
		if token, err = f.resolveToken(); err != nil {
			return nil, err
		}
	}
	return apiclient.New(hc, f.api, token, false), nil
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
		Short: "Show a migration: state, steps, weights, approvals, audit trail",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			resp, err := c.GetMigration(cmd.Context(), connect.NewRequest(&ferryv1.GetMigrationRequest{Id: args[0]}))
			if err != nil {
				return apiError(err)
			}
			return printMigration(g.stdout, f.output, resp.Msg.GetMigration())
		},
	}
}

func newListCmd(g *globals, f *clientFlags) *cobra.Command {
	req := &ferryv1.ListMigrationsRequest{}
	var kind, state string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List migrations, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kind != "" {
				v, ok := ferryv1.MigrationKind_value["MIGRATION_KIND_"+enumName(kind)]
				if !ok {
					return fmt.Errorf("--kind %q: use dns-shift", kind)
				}
				req.Kind = ferryv1.MigrationKind(v)
			}
			if state != "" {
				v, ok := ferryv1.MigrationState_value["MIGRATION_STATE_"+enumName(state)]
				if !ok {
					return fmt.Errorf("--state %q: use running, awaiting-approval, paused, blocked, rolling-back, completed, rolled-back, failed or cancelled", state)
				}
				req.State = ferryv1.MigrationState(v)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			resp, err := c.ListMigrations(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return apiError(err)
			}
			if f.output == "json" {
				return printJSON(g.stdout, resp.Msg)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tSTATE\tPHASE\tINITIATOR\tSTARTED")
			for _, m := range resp.Msg.GetMigrations() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.GetId(), kindText(m.GetKind()), stateText(m.GetState()),
					m.GetPhase(), m.GetInitiator(), m.GetStartTime().AsTime().Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "only this kind (dns-shift)")
	cmd.Flags().StringVar(&state, "state", "", "only this state (running, awaiting-approval, blocked, ...): blocked lists migrations whose step keeps failing")
	cmd.Flags().StringVar(&req.Region, "region", "", "only migrations touching this region")
	cmd.Flags().StringVar(&req.Initiator, "initiator", "", "only migrations started by this identity")
	cmd.Flags().BoolVar(&req.AwaitingApproval, "awaiting-approval", false, "only migrations waiting for approval")
	cmd.Flags().Int32Var(&req.PageSize, "limit", 50, "at most this many (1..500)")
	return cmd
}

func newWatchCmd(g *globals, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a migration live; exits non-zero if it fails or rolls back",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
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
	var last *ferryv1.Migration
	for stream.Receive() {
		m := stream.Msg().GetMigration()
		if output == "json" {
			if err := printJSON(w, m); err != nil {
				return err
			}
		} else {
			printWatchLine(w, m, last)
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
		Use:   verb + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
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

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
