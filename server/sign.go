package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/ferryhq/ferry/proof"
	"github.com/ferryhq/ferry/workflows"
)

// The API signs what it vouches for (package proof): each start it checked against the
// approval policy, and each action with the identity and roles it authenticated. Workers
// that trust its public key accept nothing else (workflows/steer_trust.go).

// proofTTL is how long a proof is good for: long enough for a slow worker to pick up the
// update, short enough that one copied from a history is useless soon.
const proofTTL = 5 * time.Minute

// signer signs with the server's key; a nil signer signs nothing (workers then must not
// trust any key, as in tests that drive Temporal directly).
type signer struct{ key ed25519.PrivateKey }

func (s signer) sign(c proof.Claims) *proof.Proof {
	if s.key == nil {
		return nil
	}
	c.Expires = time.Now().Add(proofTTL)
	c.Nonce = uuid.NewString()
	p := proof.Sign(s.key, c)
	return &p
}

// signStart returns the start's input with its start proof, as the workflow decodes it.
func (s signer) signStart(id, initiator string, in any) (any, error) {
	p := s.sign(proof.Claims{Action: proof.ActionStart, Migration: id, Identity: initiator, InputHash: workflows.StartDigest(in)})
	if p == nil {
		return in, nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("encode input: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("encode input: %w", err)
	}
	m["StartProof"] = p
	return m, nil
}

// actionProof signs action on migration id for p: for an approval, the gate that waits for
// it, on the migration or, on a region move holding no gate of its own, on its running
// phase (the proof then names the phase, which is where the move forwards it).
func (s *migrationService) actionProof(ctx context.Context, id, action, step string, p Principal) *proof.Proof {
	c := proof.Claims{Action: action, Migration: id, Identity: p.Identity, Roles: p.Roles, Gate: step}
	if action == proof.ActionApprove && step == "" {
		c.Target, c.Gate = s.pendingGate(ctx, id)
	}
	return s.signer.sign(c)
}

// pendingGate is the gate waiting on migration id, or on its running phase: the phase's id
// (the target) and the gate's step. Unknown (no worker answers): empty, and the workflow
// refuses the approval, saying why.
func (s *migrationService) pendingGate(ctx context.Context, id string) (target, gate string) {
	p, err := s.progress(ctx, id)
	if err != nil {
		return "", ""
	}
	if p.PendingApproval != nil {
		return "", p.PendingApproval.Step
	}
	for _, ph := range p.Phases {
		if ph.State != workflows.PhaseRunning || ph.MigrationID == "" {
			continue
		}
		if cp, err := s.progress(ctx, ph.MigrationID); err == nil && cp.PendingApproval != nil {
			return ph.MigrationID, cp.PendingApproval.Step
		}
	}
	return "", ""
}
