package workflows

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/ferryhq/ferry/proof"
)

// The test environment's workflow id: the migration a proof must name.
const testMigration = "default-test-workflow-id"

// signer is ferry's API in these tests: it signs claims with its key, which the worker
// trusts through TrustInterceptor.
type signer struct {
	priv ed25519.PrivateKey
	keys proof.Keys
	n    int
}

func newSigner(t *testing.T) *signer {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return &signer{priv: priv, keys: proof.Keys{proof.KeyID(pub): pub}}
}

// sign is an approval by identity at gate of migration, valid for a minute of test time
// from start.
func (sg *signer) sign(action, migration, gate, identity string, expires time.Time) *proof.Proof {
	sg.n++
	p := proof.Sign(sg.priv, proof.Claims{Action: action, Migration: migration, Gate: gate, Identity: identity,
		Roles: []string{"approver"}, Expires: expires, Nonce: fmt.Sprintf("n%d", sg.n)})
	return &p
}

// trusting is a harness whose worker trusts sg's key.
func trusting(t *testing.T, sg *signer) *harness {
	h := newHarness(t)
	h.env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{TrustInterceptor(sg.keys)}})
	return h
}

// signedStart is in with the API's start proof.
func (sg *signer) signedStart(in DNSShiftInput, at time.Time) DNSShiftInput {
	p := proof.Sign(sg.priv, proof.Claims{Action: proof.ActionStart, Migration: testMigration, Identity: in.Initiator,
		InputHash: StartDigest(in), Expires: at.Add(5 * time.Minute), Nonce: "start"})
	in.StartProof = &p
	return in
}

func approvalInput() DNSShiftInput {
	spec := testSpec()
	spec.Percents = []int{50, 100}
	spec.ApproveAfter = []bool{true, false}
	return input(spec)
}

// Forged and misused approvals never approve: a raw signal claiming bob with no proof, a
// proof for another migration, for another gate, of another person, expired, or a good
// proof sent twice. Each refusal is in the audit trail; only the good proof approves.
func TestSignedApprovals(t *testing.T) {
	sg := newSigner(t)
	h := trusting(t, sg)
	start := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	h.env.SetStartTime(start)
	in := sg.signedStart(approvalInput(), start)
	gate := "shift to 50%"
	exp := start.Add(time.Hour)
	send := func(req ActionRequest) { h.env.SignalWorkflow(SignalApprove, req) }
	var refused, identities []string
	var good *updateOutcome
	h.at(2*time.Minute, func() {
		require.Equal(t, StateAwaitingApproval, h.progress().State)
		send(ActionRequest{Identity: "bob", Reason: "forged"})
		send(ActionRequest{Identity: "bob", Proof: sg.sign(proof.ActionApprove, "dns/other", gate, "bob", exp)})
		send(ActionRequest{Identity: "bob", Proof: sg.sign(proof.ActionApprove, testMigration, "shift to 100%", "bob", exp)})
		send(ActionRequest{Identity: "bob", Proof: sg.sign(proof.ActionApprove, testMigration, gate, "carol", exp)})
		send(ActionRequest{Identity: "bob", Proof: sg.sign(proof.ActionApprove, testMigration, gate, "bob", start.Add(time.Minute))})
		send(ActionRequest{Identity: "bob", Proof: sg.sign(proof.ActionResume, testMigration, gate, "bob", exp)})
		forgedKey := newSigner(t)
		send(ActionRequest{Identity: "bob", Proof: forgedKey.sign(proof.ActionApprove, testMigration, gate, "bob", exp)})
	})
	h.at(3*time.Minute, func() {
		p := h.progress()
		require.Equal(t, StateAwaitingApproval, p.State, "no forged approval approved")
		require.Empty(t, p.PendingApproval.ApprovedBy)
		for _, e := range p.Audit {
			if e.Action == "approve refused" {
				refused = append(refused, e.Reason)
				identities = append(identities, e.Identity)
			}
		}
		good = h.update(UpdateApprove, "bob")
		// The update carries no proof: the API's would. Send bob's real, signed approval.
	})
	h.at(4*time.Minute, func() {
		h.env.SignalWorkflow(SignalApprove, ActionRequest{Identity: "bob", Proof: sg.sign(proof.ActionApprove, testMigration, gate, "bob", exp)})
	})
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, StateCompleted, res.State, res.Message)
	requireRejected(t, good, "not signed by ferry's API")
	want := []string{"not signed by ferry's API", "for dns/other", `approves "shift to 100%"`, "the proof is carol's", "expired",
		`the proof is for "resume"`, "does not trust"}
	require.Len(t, refused, len(want), "%q", refused)
	for i, w := range want {
		require.Contains(t, refused[i], w)
	}
	// The trail marks a claimed identity no valid proof backs; the proof for the wrong gate
	// is the API's word for bob, refused for the gate, not for who he is.
	u := "bob (unverified)"
	require.Equal(t, []string{u, u, "bob", u, u, u, u}, identities)
}

// A good proof is good once: a second approver gate cannot be passed by sending the first
// approver's proof again, even under another identity's name.
func TestSignedApprovalUsedOnce(t *testing.T) {
	sg := newSigner(t)
	h := trusting(t, sg)
	start := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	h.env.SetStartTime(start)
	in := approvalInput()
	in.Approvals = ApprovalPolicy{RequiredApprovers: 2}
	in = sg.signedStart(in, start)
	bob := sg.sign(proof.ActionApprove, testMigration, "shift to 50%", "bob", start.Add(time.Hour))
	h.at(2*time.Minute, func() { h.env.SignalWorkflow(SignalApprove, ActionRequest{Identity: "bob", Proof: bob}) })
	h.at(3*time.Minute, func() { h.env.SignalWorkflow(SignalApprove, ActionRequest{Identity: "bob", Proof: bob}) })
	h.at(4*time.Minute, func() {
		p := h.progress()
		require.Equal(t, []string{"bob"}, p.PendingApproval.ApprovedBy)
		h.signal(SignalRollback, "bob", "give up")
	})
	res, err := h.run(in)
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
}

// A run the API did not start (no proof, another input than the one signed, a proof for
// another migration) is refused before it reads or changes anything.
func TestStartNeedsTheAPIsProof(t *testing.T) {
	sg := newSigner(t)
	start := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	weaker := sg.signedStart(approvalInput(), start)
	weaker.Spec.ApproveAfter = []bool{false, false} // the approval the API's policy asked for, removed
	other := approvalInput()
	p := proof.Sign(sg.priv, proof.Claims{Action: proof.ActionStart, Migration: "dns/other", InputHash: StartDigest(other),
		Expires: start.Add(time.Minute), Nonce: "x"})
	other.StartProof = &p
	for name, in := range map[string]DNSShiftInput{"unsigned": approvalInput(), "changed input": weaker, "other migration": other} {
		t.Run(name, func(t *testing.T) {
			h := trusting(t, sg)
			h.env.SetStartTime(start)
			_, err := h.run(in)
			require.Error(t, err)
			require.True(t, HasErrorType(err, ErrNotStartedByAPI), "%v", err)
			require.Zero(t, h.preflights, "refused before reading anything")
			require.Empty(t, h.sent())
		})
	}
	t.Run("signed", func(t *testing.T) {
		h := trusting(t, sg)
		h.env.SetStartTime(start)
		in := sg.signedStart(approvalInput(), start)
		in.Spec.ApproveAfter = []bool{false, false}
		in = sg.signedStart(in, start)
		res, err := h.run(in)
		require.NoError(t, err)
		require.Equal(t, StateCompleted, res.State)
	})
}

// Pause and rollback, the safe direction, are taken without a proof, audited as unverified.
func TestUnsignedPauseIsAuditedUnverified(t *testing.T) {
	sg := newSigner(t)
	h := trusting(t, sg)
	start := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	h.env.SetStartTime(start)
	h.at(30*time.Second, func() { h.signal(SignalPause, "mallory", "from the Temporal UI") })
	h.at(5*time.Minute, func() { h.signal(SignalRollback, "mallory", "from the Temporal UI") })
	res, err := h.run(sg.signedStart(approvalInput(), start))
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, res.State)
	v, err := h.env.QueryWorkflow(QueryProgress)
	require.NoError(t, err)
	var p Progress
	require.NoError(t, v.Get(&p))
	var who []string
	for _, e := range p.Audit {
		if e.Action == "pause" || e.Action == "rollback" {
			who = append(who, e.Identity)
		}
	}
	require.Equal(t, []string{"mallory (unverified)", "mallory (unverified)"}, who, strings.Join(who, ", "))
}

// Every proof wrong in one field or two (action, migration, target, gate, identity, role,
// expiry, key, signature), sent both as a signal and as an update, leaves the gate
// unapproved; the right proof then approves.
func TestForgedApprovalCombinationsNeverApprove(t *testing.T) {
	sg := newSigner(t)
	other := newSigner(t)
	h := trusting(t, sg)
	start := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	h.env.SetStartTime(start)
	gate := "shift to 50%"
	type combo struct {
		action, migration, target, gate, identity string
		approver, fresh, trusted, intact          bool
	}
	// Every field wrong alone (each wrong value), then every pair of fields wrong together.
	good := combo{proof.ActionApprove, testMigration, "", gate, "bob", true, true, true, true}
	wrongs := []func(c *combo){
		func(c *combo) { c.action = proof.ActionResume }, func(c *combo) { c.action = proof.ActionStart },
		func(c *combo) { c.migration = "dns/other" }, func(c *combo) { c.target = "dns/other" },
		func(c *combo) { c.gate = "shift to 100%" }, func(c *combo) { c.gate = "" },
		func(c *combo) { c.identity = "carol" }, func(c *combo) { c.approver = false },
		func(c *combo) { c.fresh = false }, func(c *combo) { c.trusted = false }, func(c *combo) { c.intact = false },
	}
	var combos []combo
	for i := range wrongs {
		for j := i; j < len(wrongs); j++ {
			c := good
			wrongs[i](&c)
			wrongs[j](&c)
			combos = append(combos, c)
		}
	}
	request := func(c combo) ActionRequest {
		key := sg
		if !c.trusted {
			key = other
		}
		roles := []string{"viewer"}
		if c.approver {
			roles = []string{"approver"}
		}
		exp := start.Add(time.Hour)
		if !c.fresh {
			exp = start.Add(time.Minute)
		}
		key.n++
		p := proof.Sign(key.priv, proof.Claims{Action: c.action, Migration: c.migration, Target: c.target, Gate: c.gate,
			Identity: c.identity, Roles: roles, Expires: exp, Nonce: fmt.Sprintf("c%d", key.n)})
		if !c.intact {
			p.Signature[0] ^= 1
		}
		return ActionRequest{Identity: "bob", Proof: &p}
	}
	var outcomes []*updateOutcome
	h.at(2*time.Minute, func() {
		for _, c := range combos {
			h.env.SignalWorkflow(SignalApprove, request(c))
			r := request(c)
			o := &updateOutcome{}
			h.env.UpdateWorkflow(UpdateApprove, "", &testsuite.TestUpdateCallback{
				OnReject: func(err error) { o.rejected = err }, OnAccept: func() { o.accepted = true }, OnComplete: func(any, error) {},
			}, r)
			outcomes = append(outcomes, o)
		}
	})
	var approvedBy []string
	h.at(3*time.Minute, func() {
		approvedBy = h.progress().PendingApproval.ApprovedBy
		h.env.SignalWorkflow(SignalApprove, ActionRequest{Identity: "bob", Proof: sg.sign(proof.ActionApprove, testMigration, gate, "bob", start.Add(time.Hour))})
	})
	res, err := h.run(sg.signedStart(approvalInput(), start))
	require.NoError(t, err)
	require.Empty(t, approvedBy, "no forged combination approved")
	for i, o := range outcomes {
		require.False(t, o.accepted, "update %+v was accepted", combos[i])
	}
	require.Equal(t, StateCompleted, res.State, "the one right proof approves")
	t.Logf("%d forged combinations, each as a signal and an update, refused", len(combos))
}
