package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/proof"
)

// `ferry keys generate` writes a key only its owner reads and prints the public key that
// `ferry keys public` prints again; it never overwrites a key.
func TestKeysGenerateAndPublic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	var out, errb bytes.Buffer
	if code := Main([]string{"keys", "generate", "--out", path}, &out, &errb); code != 0 {
		t.Fatalf("generate: %s", errb.String())
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	pub := strings.TrimSpace(out.String())
	if _, err := proof.ParseKeys(pub); err != nil {
		t.Fatalf("printed %q: %v", pub, err)
	}
	out.Reset()
	if code := Main([]string{"keys", "public", "--key", path}, &out, io.Discard); code != 0 || strings.TrimSpace(out.String()) != pub {
		t.Fatalf("public: %q, want %q", out.String(), pub)
	}
	errb.Reset()
	if code := Main([]string{"keys", "generate", "--out", path}, io.Discard, &errb); code == 0 || !strings.Contains(errb.String(), "refusing to overwrite") {
		t.Fatalf("overwrote a key: %s", errb.String())
	}
}

// A worker must be told whom to trust: without --trust-keys it refuses to start, naming the
// fix, unless --allow-unsigned says otherwise; a malformed key is named.
func TestWorkerNeedsTrustKeys(t *testing.T) {
	for args, want := range map[string]string{
		"":                          "--trust-keys $(ferry keys public",
		"--trust-keys ed25519:AAAA": "--trust-keys: public key",
		"--trust-keys ed25519:AAAA --allow-unsigned": "--trust-keys",
	} {
		var errb bytes.Buffer
		argv := append([]string{"worker", "--temporal-address", "127.0.0.1:1"}, strings.Fields(args)...)
		if code := Main(argv, io.Discard, &errb); code == 0 || !strings.Contains(errb.String(), want) {
			t.Errorf("ferry worker %s: %q, want %q", args, errb.String(), want)
		}
	}
}

// The API server needs its signing key.
func TestServerNeedsSigningKey(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(tokens, []byte(`{"tokens":[{"token":"tok-alice-operator-0001","identity":"alice","roles":["operator"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	code := Main([]string{"server", "--listen", "127.0.0.1:0", "--token-file", tokens}, io.Discard, &errb)
	if code == 0 || !strings.Contains(errb.String(), "--signing-key is required") || !strings.Contains(errb.String(), "ferry keys generate") {
		t.Fatalf("exit %d: %q", code, errb.String())
	}
}
