package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/proof"
	"github.com/ferryhq/ferry/server"
)

// newKeysCmd manages the API's signing key: the API signs every start and action with it,
// and workers accept only what a key they trust signed (docs/security.md).
func newKeysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create the API's signing key and print its public key for workers",
		Long: `The API signs every start and every approval, resume, pause and rollback with its signing
key; workers trust only the public keys they are given (--trust-keys), so an approval sent
around the API (the Temporal UI, temporal workflow signal) is refused.

  ferry keys generate --out signing.key     # once, on the API's host
  ferry server --signing-key signing.key ...
  ferry worker --trust-keys $(ferry keys public --key signing.key) ...

To rotate: generate a new key, give workers both public keys (--trust-keys old,new), move
the API to the new key, and drop the old one from the workers once no migration started or
approved with it is still waiting (proofs expire within 5 minutes; starts are checked once).`,
	}
	var out string
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Write a new signing key (mode 0600) and print its public key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required: the file to write the private key to")
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s exists; refusing to overwrite a signing key (move it away to replace it)", out)
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, []byte(proof.EncodePrivate(priv)), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "wrote %s (key id %s); give workers its public key:\n", out, proof.KeyID(pub))
			fmt.Fprintln(g.stdout, proof.EncodePublic(pub))
			return nil
		},
	}
	gen.Flags().StringVar(&out, "out", "", "file to write the private key to")
	var keyFile string
	pub := &cobra.Command{
		Use:   "public",
		Short: "Print the public key of a signing key, for workers' --trust-keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyFile == "" {
				return errors.New("--key is required: the signing key file")
			}
			k, err := server.LoadSigningKey(keyFile)
			if err != nil {
				return err
			}
			p, _ := k.Public().(ed25519.PublicKey)
			fmt.Fprintln(g.stdout, proof.EncodePublic(p))
			return nil
		},
	}
	pub.Flags().StringVar(&keyFile, "key", envOr("FERRY_SIGNING_KEY", ""), "signing key file (FERRY_SIGNING_KEY)")
	cmd.AddCommand(gen, pub)
	return cmd
}
