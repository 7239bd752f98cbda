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
	"region-move":        "AMI share, MongoDB primary move and DNS shift as child workflows, with approvals between",
	"database-cutover":   "switch a MySQL / MariaDB primary behind a maintenance page",
	"broker-move":        "move RabbitMQ producers and consumers to another broker in drain order",
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

// processExamples are the examples of the commands that run ferry's processes, kept here by
// command path rather than in their files (dev.go, process.go, keys.go, sandbox.go), which
// other changes edit often; a command that sets its own Example keeps it.
var processExamples = map[string]string{
	"ferry dev": `  ferry dev
  ferry dev --data-dir /tmp/ferry --listen 127.0.0.1:9080 --ui-port -1`,
	"ferry worker": `  ferry worker --temporal-address temporal.internal:7233 --temporal-namespace ferry --trust-keys "$(ferry keys public --key api.key)"
  ferry worker --aws-endpoint http://127.0.0.1:4566     # against the sandbox`,
	"ferry server": `  ferry server --temporal-address temporal.internal:7233 --token-file tokens.json --signing-key api.key
  ferry server --listen 0.0.0.0:8443 --tls-cert api.pem --tls-key api-key.pem --client-ca clients-ca.pem`,
	"ferry keys":          "  ferry keys generate --out api.key > api.pub",
	"ferry keys generate": "  ferry keys generate --out api.key > api.pub",
	"ferry keys public":   "  ferry keys public --key api.key",
	"ferry sandbox": `  ferry sandbox
  aws --endpoint-url http://127.0.0.1:4566 ec2 describe-images --region eu-west-1`,
	"ferry sandbox calls":       "  ferry sandbox calls --service route53 --operation ChangeResourceRecordSets",
	"ferry sandbox traffic":     "  ferry sandbox traffic",
	"ferry sandbox fault":       "  ferry sandbox fault add app:eu-west-2 error --rate 0.2\n  ferry sandbox fault list\n  ferry sandbox fault clear",
	"ferry sandbox fault list":  "  ferry sandbox fault list",
	"ferry sandbox fault clear": "  ferry sandbox fault clear",
}

// addBuiltinExamples gives cobra's own help and completion commands examples too, so
// every command's help shows one. They are made now (cobra adds them lazily on Execute).
func addBuiltinExamples(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" {
			c.Example = processExamples[c.CommandPath()]
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
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
