package cli

import (
	"fmt"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/spec"
)

// maxPageSize is the API's largest page (ListMigrationsRequest.page_size).
const maxPageSize = 500

// kindNames are the registered kinds' FerryKind values, in spec.Kinds order: help and
// validation derive from them, so a new kind appears everywhere when it is registered.
func kindNames() []string {
	names := make([]string, 0, len(spec.Kinds))
	for _, k := range spec.Kinds {
		names = append(names, k.Name)
	}
	return names
}

// stateNames are the API's migration states as the CLI writes them.
func stateNames() []string {
	var names []string
	for v := range len(ferryv1.MigrationState_name) {
		if st := ferryv1.MigrationState(v); st != ferryv1.MigrationState_MIGRATION_STATE_UNSPECIFIED {
			names = append(names, stateText(st))
		}
	}
	return names
}

type listOptions struct {
	req         ferryv1.ListMigrationsRequest
	kind, state string
	phase       string
	limit       int
	all         bool
}

func newListCmd(g *globals, f *clientFlags) *cobra.Command {
	var o listOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List migrations, newest first, page by page up to --limit (or --all)",
		Long: `Lists migrations from Temporal visibility, newest first. Every search attribute ferry sets
is a filter: --kind (FerryKind), --state (FerryState), --phase (FerryPhase, matched by the
CLI), --region (FerrySourceRegion, or one element of FerryTargetRegions; older runs by their
comma-joined FerryTargetRegion), --initiator (FerryInitiator) and --awaiting-approval
(FerryAwaitingApproval). Filters combine with AND.

Kinds: ` + strings.Join(kindNames(), ", ") + `.`,
		Example: `  ferry list
  ferry list --state awaiting-approval
  ferry list --kind ` + kindNames()[0] + ` --region eu-west-2 --all
  ferry list --initiator alice --limit 200 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			if err := o.filters(); err != nil {
				return err
			}
			found, more, err := o.fetch(cmd, c)
			if err != nil {
				return err
			}
			if isMachine(f.output) {
				return printMessage(g.stdout, f.output, &ferryv1.ListMigrationsResponse{Migrations: found})
			}
			p := newPrinter(g.stdout, f.output == "wide")
			rows := [][]string{{"ID", "KIND", "STATE", "PHASE", "INITIATOR", "STARTED"}}
			if p.wide {
				rows[0] = append(rows[0], "ENDED", "TEMPORAL UI")
			}
			for _, m := range found {
				r := []string{m.GetId(), kindText(m.GetKind()), stateText(m.GetState()), orDash(m.GetPhase()), m.GetInitiator(), p.when(m.GetStartTime())}
				if p.wide {
					r = append(r, p.when(m.GetCloseTime()), m.GetUiUrl())
				}
				rows = append(rows, r)
			}
			p.table(rows, func(row, col int, cell string) string {
				if row > 0 && col == 2 {
					return p.st.state(cell)
				}
				return cell
			})
			if more {
				fmt.Fprintf(g.stderr, "more than %d: raise --limit or use --all\n", o.limit)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.kind, "kind", "", "only this kind: "+strings.Join(kindNames(), ", "))
	fl.StringVar(&o.state, "state", "", "only this state: "+strings.Join(stateNames(), ", ")+" (blocked: a step keeps failing)")
	fl.StringVar(&o.phase, "phase", "", "only migrations in this phase or step (FerryPhase), e.g. \"shift to 25%\"")
	fl.StringVar(&o.req.Region, "region", "", "only migrations touching this region (source or target)")
	fl.StringVar(&o.req.Initiator, "initiator", "", "only migrations started by this identity")
	fl.BoolVar(&o.req.AwaitingApproval, "awaiting-approval", false, "only migrations waiting for approval")
	fl.IntVar(&o.limit, "limit", 50, "at most this many, fetched in pages of up to 500")
	fl.BoolVar(&o.all, "all", false, "every match, however many pages (ignores --limit)")
	_ = cmd.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions(kindNames(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(stateNames(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// filters turns the kind and state words into the request's enums.
func (o *listOptions) filters() error {
	if o.kind != "" {
		k, ok := spec.KindByName(o.kind)
		if !ok {
			return fmt.Errorf("--kind %q: use %s", o.kind, strings.Join(kindNames(), ", "))
		}
		o.req.Kind = k.Proto
	}
	if o.state != "" {
		v, ok := ferryv1.MigrationState_value["MIGRATION_STATE_"+enumName(o.state)]
		if !ok || v == 0 {
			return fmt.Errorf("--state %q: use %s", o.state, strings.Join(stateNames(), ", "))
		}
		o.req.State = ferryv1.MigrationState(v)
	}
	if !o.all && o.limit < 1 {
		return fmt.Errorf("--limit %d: give 1 or more, or --all", o.limit)
	}
	return nil
}

// fetch pages through the list until the limit is reached or the pages end. more says it
// stopped at the limit with matches left. --phase is matched
// here (the API has no phase filter), so pages go on until enough match.
func (o *listOptions) fetch(cmd *cobra.Command, c ferryv1connect.MigrationServiceClient) (found []*ferryv1.Migration, more bool, err error) {
	req := &o.req
	for {
		size := maxPageSize
		if !o.all && o.phase == "" {
			size = min(o.limit-len(found), maxPageSize)
		}
		req.PageSize = int32(size)
		resp, err := c.ListMigrations(cmd.Context(), connect.NewRequest(req))
		if err != nil {
			return nil, false, apiError(err)
		}
		for _, m := range resp.Msg.GetMigrations() {
			if o.phase == "" || m.GetPhase() == o.phase {
				found = append(found, m)
			}
		}
		next := resp.Msg.GetNextPageToken()
		if !o.all && len(found) >= o.limit {
			return found[:o.limit], len(found) > o.limit || next != "", nil
		}
		if next == "" {
			return found, false, nil
		}
		req.PageToken = next
	}
}
