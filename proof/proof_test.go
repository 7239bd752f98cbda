package proof

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

func key(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestSignVerify(t *testing.T) {
	pub, priv := key(t)
	otherPub, otherPriv := key(t)
	keys, err := ParseKeys(EncodePublic(pub) + "," + EncodePublic(otherPub))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	c := Claims{Action: ActionApprove, Migration: "dns/a", Gate: "shift to 50%", Identity: "bob", Roles: []string{"approver"}, Expires: now.Add(time.Minute), Nonce: "n1"}
	p := Sign(priv, c)
	got, err := p.Verify(keys, now)
	if err != nil || got.Identity != "bob" {
		t.Fatalf("verify: %v %+v", err, got)
	}
	// Rotation: a proof by the second trusted key verifies too.
	if _, err := ptr(Sign(otherPriv, c)).Verify(keys, now); err != nil {
		t.Fatalf("second key: %v", err)
	}
	for name, tc := range map[string]struct {
		p    *Proof
		now  time.Time
		want error
	}{
		"unsigned":       {&Proof{Claims: c}, now, ErrUnsigned},
		"nil":            {nil, now, ErrUnsigned},
		"expired":        {&p, now.Add(time.Minute), ErrExpired},
		"identity":       {tamper(p, func(c *Claims) { c.Identity = "mallory" }), now, ErrBadSig},
		"gate":           {tamper(p, func(c *Claims) { c.Gate = "shift to 100%" }), now, ErrBadSig},
		"migration":      {tamper(p, func(c *Claims) { c.Migration = "dns/b" }), now, ErrBadSig},
		"expiry":         {tamper(p, func(c *Claims) { c.Expires = c.Expires.Add(time.Hour) }), now, ErrBadSig},
		"untrusted key":  {ptr(Sign(func() ed25519.PrivateKey { _, k := key(t); return k }(), c)), now, ErrUnknownKey},
		"key id swapped": {&Proof{Claims: c, KeyID: KeyID(otherPub), Signature: p.Signature}, now, ErrBadSig},
	} {
		if _, err := tc.p.Verify(keys, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

func tamper(p Proof, f func(c *Claims)) *Proof {
	f(&p.Claims)
	return &p
}

func ptr(p Proof) *Proof { return &p }

func TestKeyText(t *testing.T) {
	pub, priv := key(t)
	back, err := ParsePrivate(EncodePrivate(priv))
	if err != nil || !back.Equal(priv) {
		t.Fatalf("private round trip: %v", err)
	}
	keys, err := ParseKeys(EncodePublic(pub))
	if err != nil || !keys[KeyID(pub)].Equal(pub) {
		t.Fatalf("public round trip: %v", err)
	}
	for _, bad := range []string{"abc", "ed25519:!!!", "ed25519:AAAA"} {
		if _, err := ParseKeys(bad); err == nil {
			t.Errorf("ParseKeys(%q) accepted", bad)
		}
	}
	if _, err := ParsePrivate("ed25519:" + EncodePublic(pub)); err == nil {
		t.Error("a public key parsed as private")
	}
}
