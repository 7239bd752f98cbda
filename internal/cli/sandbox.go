package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/sandbox/control"
)

func newSandboxCmd(g *globals) *cobra.Command {
	var addr, topo string
	var fast bool
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run the simulated cloud alone, and inject faults into a running one",
		Long: `Without a subcommand, runs the sandbox on its own: simulated AWS (EC2, Route 53,
CloudWatch) over the real AWS protocols, regional apps with simulated client traffic, and
MongoDB replica sets over the real wire protocol, seeded from a topology file (default: the
built-in marketplace, see examples/sandbox-topology.yaml). ferry dev runs the same sandbox.

Point any AWS client at it:  aws --endpoint-url http://127.0.0.1:4566 ec2 describe-images --region eu-west-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := g.logger()
			sb, err := startDevSandbox(cmd.Context(), log, addr, topo, fast)
			if err != nil {
				return err
			}
			defer sb.stop()
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ferry sandbox is up")
			sb.describe(tw)
			_ = tw.Flush()
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", envOr("FERRY_SANDBOX_ADDR", "127.0.0.1:4566"), "address for AWS, apps and control (FERRY_SANDBOX_ADDR)")
	cmd.Flags().StringVar(&topo, "topology", envOr("FERRY_TOPOLOGY", ""), "topology file (FERRY_TOPOLOGY); default: built-in marketplace")
	cmd.Flags().BoolVar(&fast, "fast", false, "millisecond timings (copies, INSYNC, elections) for scripted rehearsals")

	url := envOr("FERRY_SANDBOX_URL", "http://127.0.0.1:4566")
	cmd.PersistentFlags().StringVar(&url, "url", url, "sandbox control endpoint for the subcommands (FERRY_SANDBOX_URL)")
	client := func() *control.Client {
		return &control.Client{BaseURL: url, HTTPClient: &http.Client{Timeout: 10 * time.Second}}
	}
	cmd.AddCommand(newFaultCmd(g, client), newCallsCmd(g, client), newTrafficCmd(g, client))
	return cmd
}

func newFaultCmd(g *globals, client func() *control.Client) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fault",
		Short: "Add, list and clear injected faults (GameDays)",
	}
	var f control.Fault
	add := &cobra.Command{
		Use:   "add TARGET KIND",
		Short: "Inject a fault",
		Long: `Targets and kinds:
  aws:ec2:CopyImage | aws:ec2:* | aws:route53:* | aws:*   throttle, error, denied, latency
  aws:ec2:mutating | aws:route53:mutating                 (every call that changes state:
                                                           all but Describe*, Get*, List*)
  app:<region>                                            unhealthy, error, latency
  mongo:<set>:<port> | mongo:<set>:*                      down, partition, lag, slow-sync,
                                                          command-error

<set> is the replica set's id: its name, unless the topology gives the set an id (two
sets may share a name, e.g. two rs0, but not an id). A name several sets share is refused.

throttle and error are transient (a retry may succeed); denied is AWS's permission error,
which no retry fixes: EC2 answers UnauthorizedOperation, Route 53 and CloudWatch
AccessDenied (HTTP 403). command-error makes the members answer --command with MongoDB
error --code (default 13, Unauthorized) instead of running it. On an app, unhealthy fails
its /healthz too (Route 53 health checks see it and DNS fails over), while error fails
only the clients' requests at --rate (a bad release: only the error-rate gates see it).

--after K lets the first K matching calls (or commands) through, so the fault fires on
call K+1 and later; with --count N it fires N times, then goes away. A MongoDB fault other
than command-error is a state (a member down): it takes --duration, not --after/--count.`,
		Example: `  ferry sandbox fault add app:eu-west-2 unhealthy --rate 1
  ferry sandbox fault add aws:route53:* throttle --rate 0.3
  ferry sandbox fault add mongo:rs0:27018 down

  # Deny the third state-changing EC2 call, and every one after it:
  ferry sandbox fault add aws:ec2:mutating denied --after 2

  # Deny the next Route 53 change once:
  ferry sandbox fault add aws:route53:ChangeResourceRecordSets denied --count 1

  # Fail the second replSetReconfig on any member of rs0, once, as unauthorized (13):
  ferry sandbox fault add mongo:rs0:* command-error --command replSetReconfig --after 1 --count 1

  # Every replSetStepDown sent to one member fails with code 103:
  ferry sandbox fault add mongo:rs0:27017 command-error --command replSetStepDown --code 103`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.Target, f.Kind = args[0], args[1]
			out, err := client().AddFault(cmd.Context(), f)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "added fault %s: %s %s\n", out.ID, out.Target, out.Kind)
			return nil
		},
	}
	add.Flags().Float64Var(&f.Rate, "rate", 1, "share of requests (or commands) hit, 0..1 (slow-sync: slowdown factor)")
	add.Flags().IntVar(&f.LatencyMs, "latency-ms", 0, "added latency (latency) or replication lag (lag)")
	add.Flags().IntVar(&f.Count, "count", 0, "expire after firing this many times (0: no limit)")
	add.Flags().IntVar(&f.After, "after", 0, "let this many matching calls through untouched before the fault fires")
	add.Flags().StringVar(&f.Command, "command", "", "command-error: the MongoDB command to fail, e.g. replSetReconfig")
	add.Flags().IntVar(&f.Code, "code", 0, "command-error: the MongoDB error code to answer (0: 13, Unauthorized)")
	add.Flags().Float64Var(&f.DurationSec, "duration", 0, "expire after this many seconds (0: no limit)")
	add.Flags().StringVar(&f.Owner, "owner", "", "label the fault with who injected it (e.g. a GameDay's id), so list and clear --owner find it")
	var owner string

	list := &cobra.Command{
		Use:   "list",
		Short: "List active faults",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var faults []control.Fault
			var err error
			if cmd.Flags().Changed("owner") {
				faults, err = client().ListFaultsOf(cmd.Context(), owner)
			} else {
				faults, err = client().ListFaults(cmd.Context())
			}
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTARGET\tKIND\tRATE\tLATENCY\tAFTER\tLEFT\tFIRED\tOWNER")
			for _, f := range faults {
				kind, left := f.Kind, "-"
				if f.Command != "" {
					code := f.Code
					if code == 0 {
						code = 13
					}
					kind = fmt.Sprintf("%s %s/%d", f.Kind, f.Command, code)
				}
				if f.Count > 0 {
					left = fmt.Sprint(f.Remaining)
				}
				who := f.Owner
				if who == "" {
					who = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%g\t%dms\t%d\t%s\t%d\t%s\n", f.ID, f.Target, kind, f.Rate, f.LatencyMs, f.After, left, f.Fired, who)
			}
			return tw.Flush()
		},
	}
	clear := &cobra.Command{
		Use:   "clear [ID]",
		Short: "Remove one fault, one owner's faults (--owner), or all of them",
		Example: `  ferry sandbox fault clear f-3f9a1c2b7d4e
  ferry sandbox fault clear --owner gameday/informed-1
  ferry sandbox fault clear`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 1 && cmd.Flags().Changed("owner"):
				return fmt.Errorf("give a fault id or --owner, not both")
			case len(args) == 1:
				return client().DeleteFault(cmd.Context(), args[0])
			case cmd.Flags().Changed("owner"):
				return client().ClearFaultsOf(cmd.Context(), owner)
			}
			return client().ClearFaults(cmd.Context())
		},
	}
	list.Flags().StringVar(&owner, "owner", "", "only the faults with this owner label")
	clear.Flags().StringVar(&owner, "owner", "", "only the faults with this owner label; others stay")
	cmd.AddCommand(add, list, clear)
	return cmd
}

func newCallsCmd(g *globals, client func() *control.Client) *cobra.Command {
	var filter control.CallFilter
	cmd := &cobra.Command{
		Use:   "calls",
		Short: "Print the sandbox's record of mutating AWS calls (JSON lines)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			calls, err := client().Calls(cmd.Context(), filter)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(g.stdout)
			for _, c := range calls {
				if err := enc.Encode(c); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&filter.Service, "service", "", "ec2, route53 or cloudwatch")
	cmd.Flags().StringVar(&filter.Operation, "operation", "", "e.g. CopyImage, ChangeResourceRecordSets")
	return cmd
}

func newTrafficCmd(g *globals, client func() *control.Client) *cobra.Command {
	return &cobra.Command{
		Use:   "traffic",
		Short: "Show what the simulated clients see per region (rate, error rate)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := client().Traffic(cmd.Context())
			if err != nil {
				return err
			}
			regions := make([]string, 0, len(t.Regions))
			for r := range t.Regions {
				regions = append(regions, r)
			}
			sort.Strings(regions)
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "REGION\tREQ/S\tERROR RATE\tTOTAL\tERRORS\t(window %gs)\n", t.WindowSec)
			for _, r := range regions {
				rt := t.Regions[r]
				fmt.Fprintf(tw, "%s\t%.1f\t%.3f\t%d\t%d\t\n", r, rt.RequestsPerSec, rt.ErrorRate, rt.Total, rt.Errors)
			}
			return tw.Flush()
		},
	}
}
