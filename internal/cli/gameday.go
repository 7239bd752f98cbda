package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// `ferry gameday`: GameDays (issue 23): plan checks a scenario offline; run, status,
// detect, mitigate, stop and report go through the API (gameday_run.go).
func newGameDayCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gameday",
		Short: "GameDays: inject faults on purpose, score time to detect and recover, get the report",
		Long: `A GameDay breaks the sandbox on purpose: announced ("informed") or drawn in secret from a
pool with a seed ("hidden"), while teams watch the steady state and, optionally, a
migration runs. Players press detect and mitigate when they notice and act; ferry measures
time to detect, mitigate and recover and the failed client requests from the sandbox's own
records, scores each experiment and team, and writes a report (HTML with timelines, and
JSON). Scenarios are YAML like specs (examples/gameday-informed.yaml,
examples/gameday-hidden.yaml). A GameDay runs against the sandbox only (` + "`ferry dev`" + `).`,
		Example: `  ferry gameday plan -f examples/gameday-informed.yaml
  ferry gameday run -f examples/gameday-informed.yaml --watch
  ferry gameday detect gameday/region-move-under-fire --as alice --note "5xx on eu-west-2"
  ferry gameday report gameday/region-move-under-fire -o reports/`,
	}
	f := &clientFlags{}
	cmd.AddCommand(newGameDayPlanCmd(g))
	for _, c := range gameDayAPICommands(g, f) {
		f.bind(c)
		cmd.AddCommand(c)
	}
	return cmd
}

func newGameDayPlanCmd(g *globals) *cobra.Command {
	var file string
	var seed int64
	var reveal bool
	cmd := &cobra.Command{
		Use:   "plan -f SCENARIO",
		Short: "Check a GameDay scenario and print its schedule (a hidden one's draw only with --reveal)",
		Long: `Validates a scenario without injecting anything: every problem is named with its field
and fix. For an informed GameDay it prints the experiments and when each starts and ends;
for a hidden one, the number drawn and the pool, and the draw itself only with --reveal
(the villains' view: the same seed always draws the same faults). --seed overrides the
scenario's seed.`,
		Example: `  ferry gameday plan -f examples/gameday-informed.yaml
  ferry gameday plan -f examples/gameday-hidden.yaml --reveal
  ferry gameday plan -f examples/gameday-hidden.yaml --seed 7 --reveal`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, gd, err := loadScenario(cmd, file, seed)
			if err != nil {
				return err
			}
			printGameDayPlan(g, gd, reveal)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the scenario file (YAML or JSON)")
	cmd.Flags().Int64Var(&seed, "seed", 0, "hidden GameDay: draw with this seed instead of the scenario's")
	cmd.Flags().BoolVar(&reveal, "reveal", false, "hidden GameDay: show the drawn faults (the villains' view)")
	return cmd
}

// loadScenario reads and validates the scenario file (nothing is sent anywhere before a
// bad one is named), with --seed, when given, replacing a hidden game's seed.
func loadScenario(cmd *cobra.Command, file string, seed int64) (*ferryv1.GameDayScenario, workflows.GameDaySpec, error) {
	if file == "" {
		return nil, workflows.GameDaySpec{}, fmt.Errorf("-f SCENARIO is required, e.g. -f examples/gameday-informed.yaml")
	}
	s, err := spec.ParseGameDayFile(file)
	if err != nil {
		return nil, workflows.GameDaySpec{}, err
	}
	if cmd.Flags().Changed("seed") && s.GetPool() != nil {
		s.Pool.Seed = seed
	}
	gd, err := spec.GameDay(s)
	if err != nil {
		return nil, gd, fmt.Errorf("scenario %s: %w", file, err)
	}
	return s, gd, nil
}

func printGameDayPlan(g *globals, gd workflows.GameDaySpec, reveal bool) {
	w := g.stdout
	fmt.Fprintf(w, "GameDay %q (%s)\n", gd.Name, gd.Mode)
	for _, t := range gd.Teams {
		fmt.Fprintf(w, "  team %-12s %v\n", t.Name, t.Members)
	}
	regions := "every region"
	if len(gd.Regions) > 0 {
		regions = fmt.Sprint(gd.Regions)
	}
	fmt.Fprintf(w, "  steady state: client error rate <= %.1f%% in %s\n", 100*gd.MaxErrorRate, regions)
	if gd.MigrationKind != "" {
		fmt.Fprintf(w, "  migration during the game: %s\n", gd.MigrationKind)
	}
	if gd.Mode == workflows.GameDayHidden && !reveal {
		fmt.Fprintf(w, "\n%d fault(s) drawn from a pool of %d with seed %d; hidden (--reveal shows them)\n", len(gd.Experiments), gd.PoolSize, gd.Seed)
		return
	}
	if gd.Mode == workflows.GameDayHidden {
		fmt.Fprintf(w, "\ndrawn: %d of %d with seed %d, one after another\n", len(gd.Experiments), gd.PoolSize, gd.Seed)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tEXPERIMENT\tFAULT\tSTARTS\tENDS")
	var end time.Duration
	for i, e := range gd.Experiments {
		start := e.StartAfter
		if gd.Mode == workflows.GameDayHidden {
			start += end // hidden draws run one after another
		}
		stop := start + e.Duration
		end = stop
		fault := fmt.Sprintf("%s %s rate %g", e.Fault.Target, e.Fault.Kind, e.Fault.Rate)
		if e.Fault.LatencyMs > 0 {
			fault += fmt.Sprintf(" %dms", e.Fault.LatencyMs)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t+%s\t+%s\n", i+1, e.Name, fault, start, stop)
	}
	_ = tw.Flush()
}
