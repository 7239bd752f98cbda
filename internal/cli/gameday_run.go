package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/internal/gamereport"
)

// gameDayAPICommands are the GameDay commands that talk to the API.
func gameDayAPICommands(g *globals, f *clientFlags) []*cobra.Command {
	return []*cobra.Command{
		newGameDayRunCmd(g, f), newGameDayStatusCmd(g, f),
		newGameDayPressCmd(g, f, "detect", "Say you noticed something wrong (scored: time to detect)"),
		newGameDayPressCmd(g, f, "mitigate", "Say you acted on it (scored: time to mitigate)"),
		newGameDayPressCmd(g, f, "stop", "Stop a GameDay now: clear every fault it injected, and only those (operators)"),
		newGameDayReportCmd(g, f),
	}
}

func newGameDayRunCmd(g *globals, f *clientFlags) *cobra.Command {
	var file string
	var seed int64
	var follow bool
	cmd := &cobra.Command{
		Use:   "run -f SCENARIO",
		Short: "Start a GameDay (and its migration, if the scenario has one)",
		Long: `Checks the scenario, starts its migration through the same checks as ` + "`ferry start`" + `, then
the game: each experiment's fault is injected into the sandbox at its time, with the game's
owner label, and cleared after its duration. --watch follows the game until it ends and
prints the scorecard. Players press ` + "`ferry gameday detect`" + ` and ` + "`mitigate`" + ` meanwhile.`,
		Example: `  ferry gameday run -f examples/gameday-informed.yaml --watch
  ferry gameday run -f examples/gameday-hidden.yaml --seed 7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, err := loadScenario(cmd, file, seed)
			if err != nil {
				return err
			}
			c, err := f.gameDayClient(cmd)
			if err != nil {
				return err
			}
			r, err := c.StartGameDay(cmd.Context(), connect.NewRequest(&ferryv1.StartGameDayRequest{Scenario: s}))
			if err != nil {
				return apiError(err)
			}
			id := r.Msg.GetId()
			w := g.stdout
			fmt.Fprintf(w, "started GameDay %s: %d experiment(s)\n", id, r.Msg.GetExperiments())
			if m := r.Msg.GetMigrationId(); m != "" {
				fmt.Fprintf(w, "  migration under test: %s (ferry watch %s)\n", m, m)
			}
			if u := r.Msg.GetUiUrl(); u != "" {
				fmt.Fprintf(w, "  in the Temporal UI: %s\n", u)
			}
			fmt.Fprintf(w, "  players: ferry gameday detect %s --note \"what you saw\"   (and mitigate)\n", id)
			fmt.Fprintf(w, "  stop it: ferry gameday stop %s;  report: ferry gameday report %s\n", id, id)
			if !follow {
				return nil
			}
			return followGameDay(cmd.Context(), w, c, id)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the scenario file (YAML or JSON)")
	cmd.Flags().Int64Var(&seed, "seed", 0, "hidden GameDay: draw with this seed instead of the scenario's")
	cmd.Flags().BoolVar(&follow, "watch", false, "follow the game until it ends, then print the scorecard")
	return cmd
}

// followGameDay prints each change of the game's experiments until it ends, then the
// scorecard.
func followGameDay(ctx context.Context, w io.Writer, c ferryv1connect.GameDayServiceClient, id string) error {
	seen := map[string]bool{}
	for {
		r, err := c.GetGameDay(ctx, connect.NewRequest(&ferryv1.GetGameDayRequest{Id: id}))
		switch code := connect.CodeOf(err); {
		case err == nil:
		case code == connect.CodeDeadlineExceeded || code == connect.CodeUnavailable:
			// The game's state is read from a worker: one being replaced answers late.
			fmt.Fprintf(w, "%s  (no answer: %s; trying again)\n", time.Now().Format(time.TimeOnly), code)
			time.Sleep(2 * time.Second)
			continue
		default:
			return apiError(err)
		}
		gd := r.Msg.GetGameDay()
		for i, e := range gd.GetExperiments() {
			if key := fmt.Sprintf("%d/%s", i, e.GetState()); !seen[key] {
				seen[key] = true
				if e.GetState() != "pending" {
					fmt.Fprintf(w, "%s  experiment %d %s: %s\n", time.Now().Format(time.TimeOnly), i+1, e.GetName(), e.GetState())
				}
			}
		}
		for _, p := range gd.GetPresses() {
			if key := p.GetTime().AsTime().String() + p.GetIdentity(); !seen[key] {
				seen[key] = true
				fmt.Fprintf(w, "%s  %s (%s) pressed %s %s\n", p.GetTime().AsTime().Local().Format(time.TimeOnly), p.GetIdentity(), p.GetTeam(), p.GetAction(), p.GetNote())
			}
		}
		if gd.GetState() != "running" {
			fmt.Fprintf(w, "GameDay %s %s\n", id, gd.GetState())
			rep, err := c.GetGameDayReport(ctx, connect.NewRequest(&ferryv1.GetGameDayReportRequest{Id: id}))
			if err != nil {
				return apiError(err)
			}
			var report gamereport.Report
			if err := json.Unmarshal([]byte(rep.Msg.GetJson()), &report); err != nil {
				return fmt.Errorf("read the report: %w", err)
			}
			printScorecard(w, report)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func newGameDayStatusCmd(g *globals, f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "status ID",
		Short:   "Show a GameDay: its experiments (a hidden game's stay hidden) and the presses so far",
		Example: `  ferry gameday status gameday/region-move-under-fire`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.gameDayClient(cmd)
			if err != nil {
				return err
			}
			r, err := c.GetGameDay(cmd.Context(), connect.NewRequest(&ferryv1.GetGameDayRequest{Id: args[0]}))
			if err != nil {
				return apiError(err)
			}
			if isMachine(f.output) {
				return printMessage(g.stdout, f.output, r.Msg.GetGameDay())
			}
			printGameDayStatus(g.stdout, r.Msg.GetGameDay())
			return nil
		},
	}
}

func printGameDayStatus(w io.Writer, gd *ferryv1.GameDayStatus) {
	fmt.Fprintf(w, "GameDay %s %q (%s): %s, started by %s at %s\n", gd.GetId(), gd.GetName(), gd.GetMode(), gd.GetState(),
		gd.GetStartedBy(), gd.GetStartTime().AsTime().Local().Format(time.TimeOnly))
	if m := gd.GetMigrationId(); m != "" {
		fmt.Fprintf(w, "migration under test: %s\n", m)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tEXPERIMENT\tFAULT\tSTATE\tSTARTED\tENDED")
	clock := func(set bool, t time.Time) string {
		if !set {
			return "-"
		}
		return t.Local().Format(time.TimeOnly)
	}
	for i, e := range gd.GetExperiments() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i+1, e.GetName(), orDash(e.GetFault()), e.GetState(),
			clock(e.GetStartTime() != nil, e.GetStartTime().AsTime()), clock(e.GetEndTime() != nil, e.GetEndTime().AsTime()))
	}
	_ = tw.Flush()
	for _, p := range gd.GetPresses() {
		fmt.Fprintf(w, "%s  %s (%s) %s %s\n", p.GetTime().AsTime().Local().Format(time.TimeOnly), p.GetIdentity(), p.GetTeam(), p.GetAction(), p.GetNote())
	}
	for _, n := range gd.GetNotes() {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func newGameDayPressCmd(g *globals, f *clientFlags, action, short string) *cobra.Command {
	var note string
	examples := map[string]string{
		"detect":   `  ferry gameday detect gameday/region-move-under-fire --as alice --note "eu-west-2 answers 503"`,
		"mitigate": `  ferry gameday mitigate gameday/region-move-under-fire --as bob --note "rolled the shift back"`,
		"stop":     `  ferry gameday stop gameday/tuesday-dungeon`,
	}
	cmd := &cobra.Command{
		Use:     action + " ID",
		Short:   short,
		Example: examples[action],
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.gameDayClient(cmd)
			if err != nil {
				return err
			}
			r, err := c.PressGameDay(cmd.Context(), connect.NewRequest(&ferryv1.PressGameDayRequest{Id: args[0], Action: action, Note: note}))
			if err != nil {
				return apiError(err)
			}
			fmt.Fprintln(g.stdout, r.Msg.GetMessage())
			return nil
		},
	}
	if action != "stop" {
		cmd.Flags().StringVar(&note, "note", "", "what you saw or did, for the report (one sentence)")
	}
	return cmd
}

func newGameDayReportCmd(g *globals, f *clientFlags) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "report ID",
		Short: "Write a GameDay's report: an HTML page with timelines and the scorecard, and JSON with every number",
		Long: `Writes DIR/<game>.html (self-contained: open it anywhere, offline) and DIR/<game>.json,
and prints the scorecard. A running informed game gets a partial report; a hidden one's is
made once it has ended (it names the faults).`,
		Example: `  ferry gameday report gameday/region-move-under-fire
  ferry gameday report gameday/tuesday-dungeon --dir reports/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.gameDayClient(cmd)
			if err != nil {
				return err
			}
			r, err := c.GetGameDayReport(cmd.Context(), connect.NewRequest(&ferryv1.GetGameDayReportRequest{Id: args[0]}))
			if err != nil {
				return apiError(err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			base := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(args[0], "gameday/"), "/", "-"))
			if err := os.WriteFile(base+".html", []byte(r.Msg.GetHtml()), 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(base+".json", []byte(r.Msg.GetJson()), 0o644); err != nil {
				return err
			}
			var report gamereport.Report
			if err := json.Unmarshal([]byte(r.Msg.GetJson()), &report); err != nil {
				return fmt.Errorf("read the report: %w", err)
			}
			printScorecard(g.stdout, report)
			fmt.Fprintf(g.stdout, "\nwrote %s.html and %s.json (game %s)\n", base, base, r.Msg.GetState())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "where to write the report's two files")
	return cmd
}

func printScorecard(w io.Writer, r gamereport.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tEXPERIMENT\tTTD\tTTM\tTTR\tFAILED\tSCORE")
	for i, x := range r.Experiments {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d/%d\t%.1f\n", i+1, x.Name, gamereport.Secs(x.TTDSec), gamereport.Secs(x.TTMSec), gamereport.Secs(x.TTRSec), x.FailedRequests, x.Requests, x.Score)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "mean score %.1f, MTTD %s\n", r.MeanScore, gamereport.Secs(r.MTTDSec))
	for _, t := range r.Teams {
		fmt.Fprintf(w, "team %s: detected %d, mitigated %d, MTTD %s, score %.1f\n", t.Team, t.Detected, t.Mitigated, gamereport.Secs(t.MTTDSec), t.Score)
	}
	if m := r.Migration; m != nil {
		verdict := "good end"
		if !m.Good {
			verdict = "NOT a good end"
		}
		fmt.Fprintf(w, "migration %s: %s, %s: %s\n", m.ID, m.State, verdict, m.Why)
	}
}
