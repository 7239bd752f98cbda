package cli

import "github.com/spf13/cobra"

// specCommands are the commands that take a spec file (plan, start).
func specCommands(g *globals, f *clientFlags) []*cobra.Command { return nil }
