package cli

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// newConfigCmd manages the contexts in the config file (see config.go).
func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Manage contexts: named APIs with their credentials, in $XDG_CONFIG_HOME/ferry/config.yaml",
		Long: `A context names a ferry API and how to authenticate to it (a token, a token file, or a
client certificate, with the CA that verifies the API). The current context applies to
every command; --context or FERRY_CONTEXT picks another for one command, and flags and
FERRY_* variables still win over what a context says. ` + "`ferry dev`" + ` writes a context named
dev. The file is FERRY_CONFIG if set.`,
		Example: `  ferry config get-contexts
  ferry config set-context prod --api https://ferry.example.com --token-file ~/.ferry-prod-token --ca ca.pem
  ferry config use-context prod`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newUseContextCmd(g), newGetContextsCmd(g), newSetContextCmd(g))
	return cmd
}

func newUseContextCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "use-context NAME",
		Short:   "Make a context the current one",
		Example: "  ferry config use-context dev",
		Args:    cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return contextNames(), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			if _, ok := cfg.find(args[0]); !ok {
				return fmt.Errorf("no context %q in %s: add it with `ferry config set-context %s --api URL ...`", args[0], path, args[0])
			}
			cfg.CurrentContext = args[0]
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "current context: %s\n", args[0])
			return nil
		},
	}
}

func newGetContextsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "get-contexts",
		Short:   "List the contexts; * marks the current one",
		Example: "  ferry config get-contexts",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, _, err := loadConfig()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "CURRENT\tNAME\tAPI\tAUTH")
			for _, c := range cfg.Contexts {
				cur := ""
				if c.Name == cfg.CurrentContext {
					cur = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cur, c.Name, c.API, authText(c))
			}
			return tw.Flush()
		},
	}
}

// authText says how a context authenticates without printing a secret.
func authText(c ferryContext) string {
	switch {
	case c.Cert != "":
		return "client certificate " + c.Cert
	case c.TokenFile != "":
		return "token file " + c.TokenFile
	case c.Token != "":
		return "token (in the config file)"
	}
	return "none"
}

func newSetContextCmd(g *globals) *cobra.Command {
	var x ferryContext
	var use bool
	cmd := &cobra.Command{
		Use:   "set-context NAME",
		Short: "Add a context or change the fields given of an existing one",
		Example: `  ferry config set-context staging --api https://ferry.staging.example.com --token-file ~/.ferry/staging-token
  ferry config set-context prod --api https://ferry.example.com --ca ca.pem --cert me.pem --cert-key me-key.pem --use`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			c, ok := cfg.find(args[0])
			if !ok {
				c = &ferryContext{Name: args[0]}
			}
			// Only the flags given change a field, so one credential can be rotated alone.
			set := func(flag string, dst *string, v string) {
				if cmd.Flags().Changed(flag) {
					*dst = v
				}
			}
			// Files are kept as absolute paths: the context is used from any directory.
			file := func(flag string, dst *string, v string) error {
				if !cmd.Flags().Changed(flag) || v == "" {
					set(flag, dst, v)
					return nil
				}
				abs, err := filepath.Abs(v)
				*dst = abs
				return err
			}
			set("api", &c.API, x.API)
			set("token", &c.Token, x.Token)
			for _, f := range []struct {
				flag string
				dst  *string
				v    string
			}{{"token-file", &c.TokenFile, x.TokenFile}, {"ca", &c.CA, x.CA}, {"cert", &c.Cert, x.Cert}, {"cert-key", &c.CertKey, x.CertKey}} {
				if err := file(f.flag, f.dst, f.v); err != nil {
					return err
				}
			}
			cfg.upsert(*c)
			if use || cfg.CurrentContext == "" {
				cfg.CurrentContext = c.Name
			}
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "context %s saved in %s\n", c.Name, path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&x.API, "api", "", "ferry API base URL")
	f.StringVar(&x.Token, "token", "", "bearer token, kept in the config file (prefer --token-file)")
	f.StringVar(&x.TokenFile, "token-file", "", "file holding the bearer token, or ferry dev's tokens.json")
	f.StringVar(&x.CA, "ca", "", "CA bundle that verifies an https API")
	f.StringVar(&x.Cert, "cert", "", "client certificate for an mTLS API")
	f.StringVar(&x.CertKey, "cert-key", "", "key of --cert")
	f.BoolVar(&use, "use", false, "also make it the current context")
	return cmd
}

// contextNames completes context names; an unreadable config completes nothing.
func contextNames() []string {
	cfg, _, err := loadConfig()
	if err != nil {
		return nil
	}
	var names []string
	for _, c := range cfg.Contexts {
		names = append(names, c.Name)
	}
	return names
}
