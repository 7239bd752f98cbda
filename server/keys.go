package server

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ferryhq/ferry/proof"
)

// SigningKeyFile is the signing key's file name in `ferry dev`'s data directory.
const SigningKeyFile = "signing.key"

// LoadSigningKey reads the API's signing key from path (`ferry keys generate` writes one).
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	k, err := proof.ParsePrivate(string(b))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

// EnsureSigningKey loads dir's signing key, creating it (mode 0600) on first use, so a
// `ferry dev` restarted on the same data directory keeps the key its running migrations'
// worker trusts.
func EnsureSigningKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, SigningKeyFile)
	k, err := LoadSigningKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	_, k, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(proof.EncodePrivate(k)), 0o600); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return k, nil
}

// PublicKeys is the key ring of k's public key, for a worker in the same process.
func PublicKeys(k ed25519.PrivateKey) proof.Keys {
	pub, _ := k.Public().(ed25519.PublicKey)
	return proof.Keys{proof.KeyID(pub): pub}
}
