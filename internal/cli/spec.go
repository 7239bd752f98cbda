package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/spec"
)

// specCommands are the commands that take a spec file (plan, start).
func specCommands(g *globals, f *clientFlags) []*cobra.Command {
	return []*cobra.Command{newPlanCmd(g, f), newStartCmd(g, f)}
}

// readSpec parses a spec file locally, so a typo is reported with its field before any
// request is sent; the server validates again.
func readSpec(file string) (*ferryv1.MigrationSpec, error) {
	if file == "" {
		return nil, errors.New("-f FILE is required: a migration spec in YAML or JSON (see examples/)")
	}
	return spec.ParseFile(file)
}

func newPlanCmd(g *globals, f *clientFlags) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "plan -f SPEC",
		Short: "Dry run: read the current state and print every step a migration would take",
		Long: `Reads the current state of every resource the spec touches (read-only calls, made by a
worker) and prints every step that would run, the waits and approvals, and a plan hash.
Start with --plan-hash to refuse to run if the state has drifted since.`,
		Example: `  ferry plan -f examples/dns-shift.yaml
  ferry plan -f examples/region-move.yaml -o json | jq -r .planHash`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := readSpec(file)
			if err != nil {
				return err
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			resp, err := c.PlanMigration(cmd.Context(), connect.NewRequest(&ferryv1.PlanMigrationRequest{Spec: s}))
			if err != nil {
				return apiError(err)
			}
			if isMachine(f.output) {
				return printMessage(g.stdout, f.output, resp.Msg)
			}
			p := resp.Msg
			fmt.Fprintf(g.stdout, "plan for %s (%s)\n\n", p.GetId(), kindText(p.GetKind()))
			if len(p.GetObservations()) > 0 {
				fmt.Fprintln(g.stdout, "current state:")
				for _, o := range p.GetObservations() {
					fmt.Fprintf(g.stdout, "  %s\n", o)
				}
				fmt.Fprintln(g.stdout)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tSTEP\tWHAT\tWAIT\tAPPROVAL")
			for i, st := range p.GetSteps() {
				approval := ""
				if st.GetNeedsApproval() {
					approval = "required"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, st.GetName(), st.GetDescription(), st.GetWait().AsDuration(), approval)
			}
			_ = tw.Flush()
			fmt.Fprintf(g.stdout, "\nplan hash: %s\nstart it:  ferry start -f %s --plan-hash %s\n", p.GetPlanHash(), file, p.GetPlanHash())
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "migration spec (YAML or JSON)")
	completeSpecFiles(cmd)
	return cmd
}

func newStartCmd(g *globals, f *clientFlags) *cobra.Command {
	var file, planHash, key string
	var follow bool
	cmd := &cobra.Command{
		Use:   "start -f SPEC",
		Short: "Start a migration (optionally pinned to a plan hash) and optionally watch it",
		Example: `  ferry start -f examples/dns-shift.yaml --watch
  ferry start -f examples/ami-share.yaml --plan-hash 3f9c... --idempotency-key change-4711`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := readSpec(file)
			if err != nil {
				return err
			}
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			resp, err := c.StartMigration(cmd.Context(), connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: s, PlanHash: planHash, IdempotencyKey: key}))
			if err != nil {
				return apiError(err)
			}
			m := resp.Msg.GetMigration()
			if isMachine(f.output) && !follow {
				return printMessage(g.stdout, f.output, m)
			}
			fmt.Fprintf(g.stdout, "started %s\n", m.GetId())
			if m.GetUiUrl() != "" {
				fmt.Fprintf(g.stdout, "temporal ui: %s\n", m.GetUiUrl())
			}
			if !follow {
				fmt.Fprintf(g.stdout, "watch it:    ferry watch %s\n", m.GetId())
				return nil
			}
			return watch(cmd.Context(), g.stdout, f.output, c, m.GetId())
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "migration spec (YAML or JSON)")
	cmd.Flags().StringVar(&planHash, "plan-hash", "", "refuse to run if the plan computed now differs (from `ferry plan`)")
	cmd.Flags().StringVar(&key, "idempotency-key", "", "retries with the same key start at most one migration")
	completeSpecFiles(cmd)
	cmd.Flags().BoolVar(&follow, "watch", false, "follow the migration until it ends (exit non-zero unless it completes)")
	return cmd
}
