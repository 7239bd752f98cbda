// Package proof is what ferry's API vouches for, signed so a workflow can check it: an
// approval or a resume by a person the API authenticated, at one gate of one migration,
// until an expiry; and a migration's start, with the input the API checked against its
// policy. Workflows verify proofs in workflow code (ed25519 is deterministic) against the
// public keys of the worker's configuration, so anyone who can signal a workflow or start
// one in the namespace (the Temporal UI, `temporal workflow signal`) still cannot approve
// as someone else, nor start a migration with a policy of their own.
//
// The package is pure (no clock, no I/O but key files): workflows import it.
package proof

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Actions a proof vouches for.
const (
	ActionApprove  = "approve"
	ActionResume   = "resume"
	ActionPause    = "pause"
	ActionRollback = "rollback"
	ActionStart    = "start"
)

// Claims are what the API vouches for.
type Claims struct {
	Action string
	// Migration is the workflow id the API was asked to act on; Target is the workflow id
	// that takes the action, when another (a region move's running phase).
	Migration string
	Target    string `json:",omitempty"`
	// Gate is the approval gate (the step name) an approval is for.
	Gate     string `json:",omitempty"`
	Identity string
	Roles    []string `json:",omitempty"`
	// InputHash is a start's input digest (InputDigest).
	InputHash string `json:",omitempty"`
	Expires   time.Time
	// Nonce makes each proof unique, so a workflow can refuse one used before.
	Nonce string
}

// Proof is signed claims.
type Proof struct {
	Claims    Claims
	KeyID     string
	Signature []byte
}

// payload is what is signed: a domain tag and the claims' JSON (encoding/json writes a
// struct's fields in order, so the encoding is canonical).
func payload(c Claims) []byte {
	b, _ := json.Marshal(c) // plain strings, a slice and a time: always encodes
	return append([]byte("ferry-proof-v1\n"), b...)
}

// Sign signs c with priv.
func Sign(priv ed25519.PrivateKey, c Claims) Proof {
	pub, _ := priv.Public().(ed25519.PublicKey)
	return Proof{Claims: c, KeyID: KeyID(pub), Signature: ed25519.Sign(priv, payload(c))}
}

// Errors of Verify.
var (
	ErrUnsigned   = errors.New("not signed by ferry's API")
	ErrUnknownKey = errors.New("signed by a key this worker does not trust")
	ErrBadSig     = errors.New("signature does not match")
	ErrExpired    = errors.New("expired")
)

// Verify checks p's signature against keys and its expiry against now (the workflow's
// clock), and returns its claims.
func (p *Proof) Verify(keys Keys, now time.Time) (Claims, error) {
	if p == nil || len(p.Signature) == 0 {
		return Claims{}, ErrUnsigned
	}
	pub, ok := keys[p.KeyID]
	if !ok {
		return Claims{}, fmt.Errorf("%w (key %s)", ErrUnknownKey, p.KeyID)
	}
	if !ed25519.Verify(pub, payload(p.Claims), p.Signature) {
		return Claims{}, ErrBadSig
	}
	if !now.Before(p.Claims.Expires) {
		return Claims{}, fmt.Errorf("%w at %s", ErrExpired, p.Claims.Expires.UTC().Format(time.RFC3339))
	}
	return p.Claims, nil
}

// Keys are the public keys a worker trusts, by key id. More than one during a rotation.
type Keys map[string]ed25519.PublicKey

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// keyPrefix marks ferry's text form of a public key.
const keyPrefix = "ed25519:"

// EncodePublic is a public key's text form, "ed25519:<base64>", as flags and files hold it.
func EncodePublic(pub ed25519.PublicKey) string {
	return keyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParseKeys parses public keys in text form (comma- or space-separated lists allowed).
func ParseKeys(texts ...string) (Keys, error) {
	keys := Keys{}
	for _, text := range texts {
		for _, f := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
			b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(f, keyPrefix))
			if !strings.HasPrefix(f, keyPrefix) || err != nil || len(b) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("public key %q: want %s followed by the base64 of a %d-byte Ed25519 key (`ferry keys generate` prints one)", short(f), keyPrefix, ed25519.PublicKeySize)
			}
			keys[KeyID(b)] = b
		}
	}
	return keys, nil
}

// IDs lists the keys' ids, sorted.
func (k Keys) IDs() []string {
	ids := make([]string, 0, len(k))
	for id := range k {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// EncodePrivate is a private key's text form (its seed), for a key file.
func EncodePrivate(priv ed25519.PrivateKey) string {
	return "ed25519-private:" + base64.StdEncoding.EncodeToString(priv.Seed()) + "\n"
}

// ParsePrivate reads a private key's text form.
func ParsePrivate(text string) (ed25519.PrivateKey, error) {
	t := strings.TrimSpace(text)
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(t, "ed25519-private:"))
	if !strings.HasPrefix(t, "ed25519-private:") || err != nil || len(b) != ed25519.SeedSize {
		return nil, errors.New("not a ferry signing key: want ed25519-private: followed by the base64 of a 32-byte seed (`ferry keys generate` writes one)")
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// InputDigest is the digest a start proof names: SHA-256 of the JSON of what the API
// checked (the spec, the approval policy, who started it), so a start with another spec
// or a weaker policy does not match.
func InputDigest(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "unencodable: " + err.Error()
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func short(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}
