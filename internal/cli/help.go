package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/spec"
)

// kindBlurbs say in a few words what each kind does, for the root help. A registered kind
// missing here is still listed (by its name and spec field), so help never omits one.
var kindBlurbs = map[string]string{
	"dns-shift":          "move traffic between weighted Route 53 record sets along a schedule, with gates",
	"ami-share":          "copy AMIs to other regions and share them with accounts",
	"mongo-primary-move": "extend a MongoDB replica set into a region and move the primary there",
	"region-move":        "the phases above as child workflows, with approvals between them",
	"database-cutover":   "switch a MySQL / MariaDB primary behind a maintenance page",
}

// kindsHelp lists the registered kinds (spec.Kinds), one a line.
func kindsHelp() string {
	var b strings.Builder
	for _, k := range spec.Kinds {
		blurb := kindBlurbs[k.Name]
		if blurb == "" {
			blurb = "see docs/design.md"
		}
		fmt.Fprintf(&b, "  %-20s %s\n", k.Name, blurb)
	}
	return b.String()
}

// addBuiltinExamples gives cobra's own help and completion commands examples too, so
// every command's help shows one. They are made now (cobra adds them lazily on Execute).
func addBuiltinExamples(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "help":
			c.Example = "  ferry help list"
		case "completion":
			c.Example = `  source <(ferry completion bash)                     # this shell
  ferry completion zsh > "${fpath[1]}/_ferry"          # zsh, every shell
  ferry completion fish > ~/.config/fish/completions/ferry.fish`
			for _, sh := range c.Commands() {
				sh.Example = shellExamples[sh.Name()]
			}
		}
	}
}

var shellExamples = map[string]string{
	"bash":       "  source <(ferry completion bash)",
	"zsh":        `  ferry completion zsh > "${fpath[1]}/_ferry"`,
	"fish":       "  ferry completion fish | source",
	"powershell": "  ferry completion powershell | Out-String | Invoke-Expression",
}
