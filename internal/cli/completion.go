package cli

import (
	"context"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// completeIDs completes a migration id by asking the API (through the same flags, variables
// and context as the command), newest first. Shells call it on every Tab, so it gives up
// quickly and completes nothing rather than hang or print an error into the prompt.
func (f *clientFlags) completeIDs(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := f.client(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := c.ListMigrations(ctx, connect.NewRequest(&ferryv1.ListMigrationsRequest{PageSize: maxPageSize}))
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var ids []string
	for _, m := range resp.Msg.GetMigrations() {
		if strings.HasPrefix(m.GetId(), toComplete) {
			// "id<TAB>description" shows the kind and state next to the id in zsh and fish.
			ids = append(ids, m.GetId()+"\t"+kindText(m.GetKind())+", "+stateText(m.GetState()))
		}
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}

// completeSpecFiles offers YAML and JSON files for -f.
func completeSpecFiles(cmd *cobra.Command) {
	_ = cmd.RegisterFlagCompletionFunc("file", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"yaml", "yml", "json"}, cobra.ShellCompDirectiveFilterFileExt
	})
}
