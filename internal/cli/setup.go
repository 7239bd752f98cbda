package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/internal/clustersetup"
	"github.com/ferryhq/ferry/internal/temporalconn"
)

// newSetupCmd prepares a Temporal cluster for ferry: the same code `ferry dev` runs
// against its embedded server, so a production cluster gets exactly what ferry dev has.
func newSetupCmd(g *globals) *cobra.Command {
	var (
		conn      temporalconn.Options
		retention time.Duration
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Prepare a Temporal cluster for ferry: namespace, search attributes, feature checks",
		Long: `Creates the namespace when it does not exist (with --retention; an existing namespace's
retention is reported, not changed), registers ferry's search attributes with their types
(FerryTargetRegions is a KeywordList: one element per target region), and checks that the
server is recent enough and has workflow updates enabled. It reads before it writes: run it
as often as you like; a second run changes nothing and says so. A search attribute already
registered with another type is an error naming the fix (a type cannot change under one name).

Run it once per cluster and namespace before the first ferry server and workers; their
/readyz fails until the namespace and attributes are in place. ferry dev runs the same code.`,
		Example: `  ferry setup --temporal-address temporal.internal:7233 --temporal-namespace ferry
  ferry setup --temporal-address my-ns.a1b2c.tmprl.cloud:7233 --temporal-namespace my-ns.a1b2c \
    --temporal-tls --temporal-api-key "$TEMPORAL_API_KEY"
  FERRY_TEMPORAL_ADDRESS=127.0.0.1:7233 ferry setup --retention 168h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if retention < 24*time.Hour {
				return fmt.Errorf("--retention %s: Temporal keeps closed workflows at least a day; give 24h or more (default 720h)", retention)
			}
			conn.Identity = defaultIdentity("setup")
			c, err := temporalconn.Dial(conn, g.logger())
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "ferry setup: %s, namespace %s\n", conn.Address, conn.Namespace)
			_, err = clustersetup.Run(ctx, c, clustersetup.Options{
				Namespace: conn.Namespace,
				Retention: retention,
				Progress:  func(line string) { fmt.Fprintln(out, "  "+line) },
			})
			return err
		},
	}
	addTemporalFlags(cmd, &conn)
	cmd.Flags().DurationVar(&retention, "retention", envDuration("FERRY_SETUP_RETENTION", 30*24*time.Hour), "how long closed migrations are kept, when the namespace is created (FERRY_SETUP_RETENTION)")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	return cmd
}
