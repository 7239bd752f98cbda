package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/proof"
)

// Signed actions. Workflow code cannot see who sent a signal or an update: anyone who can
// reach the namespace (the Temporal UI, `temporal workflow signal`) can claim any identity.
// So an approval or a resume is accepted only with a proof signed by ferry's API (package
// proof) for this migration, this gate and the identity it claims, unexpired and not used
// before; and a migration started by anyone but the API (or a ferry parent) is refused.
// Pause and rollback, the safe direction, are accepted unsigned and audited as unverified.
//
// The keys come from the worker's configuration, never from the workflow's input (whoever
// can signal can also start a workflow with their own key): an interceptor hands them to the
// workflow's context and a SideEffect records them once per run. A worker configured with
// no keys (the SDK's test environment, the e2e tests that drive Temporal directly) checks
// nothing, as ferry did before signing; `ferry worker` refuses to start that way unless told
// to. Runs started before signing existed keep their old rules (GetVersion "signed-actions").

// ErrNotStartedByAPI is a run whose start carries no valid proof of ferry's API.
const ErrNotStartedByAPI = "NotStartedByAPI"

// trustKey is the workflow-context key of the worker's trusted keys.
type trustKey struct{}

// TrustInterceptor hands keys (the public keys of the API's signing keys) to every workflow
// the worker runs.
func TrustInterceptor(keys proof.Keys) interceptor.WorkerInterceptor {
	return &trustInterceptor{keys: keys}
}

type trustInterceptor struct {
	interceptor.WorkerInterceptorBase
	keys proof.Keys
}

func (t *trustInterceptor) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &trustInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, keys: t.keys}
}

type trustInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	keys proof.Keys
}

func (t *trustInbound) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	return t.Next.ExecuteWorkflow(workflow.WithValue(ctx, trustKey{}, t.keys), in)
}

// trust is a run's verification state.
type trust struct {
	keys proof.Keys
	// nonces are the proofs already used in this chain.
	nonces []string
}

// loadTrust records the worker's keys for this run (nil trust: a run from before signing).
func (s *Steering) loadTrust(ctx workflow.Context) {
	if workflow.GetVersion(ctx, "signed-actions", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	keys := proof.Keys{}
	err := workflow.SideEffect(ctx, func(ctx workflow.Context) any {
		k, _ := ctx.Value(trustKey{}).(proof.Keys)
		return k
	}).Get(&keys)
	t := &trust{keys: keys}
	if err != nil || t.keys == nil {
		t.keys = proof.Keys{}
	}
	s.trust = t
}

// verifyStart refuses a run the API did not start: one with no parent (a phase is started
// by its verified parent) and not continued from an earlier run of its chain, whose start
// proof does not name this migration and this input.
func (s *Steering) verifyStart(ctx workflow.Context, p *proof.Proof, digest string) error {
	info := workflow.GetInfo(ctx)
	if !s.trust.enforced() || info.ParentWorkflowExecution != nil || info.ContinuedExecutionRunID != "" {
		return nil
	}
	// The start time is the server's record of when the API started it: a worker that comes
	// up later still accepts the start.
	c, err := p.Verify(s.trust.keys, info.WorkflowStartTime)
	switch {
	case err != nil:
	case c.Action != proof.ActionStart:
		err = fmt.Errorf("the proof is for %q, not a start", c.Action)
	case c.Migration != info.WorkflowExecution.ID:
		err = fmt.Errorf("the proof is for migration %s", c.Migration)
	case c.InputHash != digest:
		err = errors.New("the input differs from the one the API checked (spec, approvals or initiator changed, or the API and the worker run different ferry versions)")
	}
	if err == nil {
		return nil
	}
	msg := "refused: this migration was not started through ferry's API: " + err.Error() + "; start it with `ferry start` or the API, which check the approval policy"
	s.Audit(ctx, SystemIdentity, "start refused", msg, "")
	return temporal.NewNonRetryableApplicationError(msg, ErrNotStartedByAPI, nil)
}

// checkProof checks req's proof for action at gate (empty: any) on this migration: the
// signature and expiry, the action, the identity, that it names this run (directly, or as
// the target of an action sent to its parent) and that it was not used before. target is
// the workflow id the action is for when the parent forwards it (the running phase).
func (s *Steering) checkProof(req ActionRequest, action, gate, target string) error {
	t := s.trust
	if !t.enforced() {
		return nil
	}
	c, err := req.Proof.Verify(t.keys, s.now())
	if err != nil {
		return fmt.Errorf("%s refused: %w; send it through ferry's API (`ferry %s`), which signs it for the person it authenticates", action, err, action)
	}
	self, parent := s.self, s.parent
	switch {
	case c.Action != action:
		return fmt.Errorf("%s refused: the proof is for %q", action, c.Action)
	case c.Identity != req.Identity:
		return fmt.Errorf("%s refused: the proof is %s's, not %s's", action, c.Identity, req.Identity)
	case action == proof.ActionApprove && !slices.Contains(c.Roles, "approver"):
		return fmt.Errorf("%s refused: %s does not hold the approver role", action, c.Identity)
	case target != "" && (c.Migration != self || c.Target != target):
		return fmt.Errorf("%s refused: the proof is for %s, not for %s of %s", action, describeTarget(c), target, self)
	case target == "" && !(c.Migration == self && (c.Target == "" || c.Target == self)) &&
		// Sent to the parent: an approval must name this phase; a resume of the parent
		// resumes its running phase too.
		!(c.Migration == parent && parent != "" && (c.Target == self || action != proof.ActionApprove)):
		return fmt.Errorf("%s refused: the proof is for %s, not this migration (%s)", action, describeTarget(c), self)
	case gate != "" && c.Gate != "" && c.Gate != gate:
		return fmt.Errorf("%s refused: the proof approves %q, but %q awaits approval", action, c.Gate, gate)
	case action == proof.ActionApprove && target == "" && c.Gate == "":
		return fmt.Errorf("%s refused: the proof names no gate", action)
	case slices.Contains(t.nonces, c.Nonce):
		return fmt.Errorf("%s refused: this proof was used already", action)
	}
	return nil
}

// useProof records a proof's nonce once its action was applied.
func (s *Steering) useProof(req ActionRequest) {
	if s.trust != nil && req.Proof != nil {
		s.trust.nonces = append(s.trust.nonces, req.Proof.Claims.Nonce)
	}
}

// unverified marks the audit identity of an action that carries no valid proof (pause and
// rollback are taken anyway: the safe direction), so the trail never shows a claimed
// identity as a verified one.
func (s *Steering) unverified(req ActionRequest, action string) string {
	if !s.trust.enforced() || s.checkProof(req, action, "", "") == nil {
		return req.Identity
	}
	if req.Identity == "" {
		return "(unverified)"
	}
	return req.Identity + " (unverified)"
}

// enforced reports whether the run checks proofs: it was started since signing existed and
// its worker trusts keys.
func (t *trust) enforced() bool { return t != nil && len(t.keys) > 0 }

func describeTarget(c proof.Claims) string {
	if c.Target != "" && c.Target != c.Migration {
		return c.Target + " (via " + c.Migration + ")"
	}
	return c.Migration
}

// StartDigest is the input digest a start proof names: the input's JSON without the proof
// itself and without a continued run's state, with keys sorted (the API computes it on
// the input it builds, the workflow on the input it decoded).
func StartDigest(in any) string {
	b, err := json.Marshal(in)
	if err != nil {
		return "unencodable: " + err.Error()
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return "not an object: " + err.Error()
	}
	delete(m, "StartProof")
	delete(m, "Continued")
	return proof.InputDigest(m)
}
