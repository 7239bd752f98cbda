package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/proof"
)

// KindDef is the kind contract: everything the worker, the server and a composite
// migration (the region move, later the fleet) need to know about one migration kind,
// described once. None of them switches on kind; they look the descriptor up.
//
// The functions take the kind's own types (its input, its spec) as any, because the
// composites carry them opaquely; each kind's file asserts its own type.
//
// The other half of a kind's description, building its input from the proto spec, lives in
// package spec (spec.Kinds), because spec imports this package and not the reverse.
type KindDef struct {
	// Name is the FerryKind search attribute's value, e.g. "dns-shift".
	Name string
	// WorkflowName and Workflow are the migration's workflow, registered under the stable
	// name (renaming a Go function must not rename a workflow type in running histories).
	WorkflowName string
	Workflow     any
	// PlanName and Plan are the read-only dry run.
	PlanName string
	Plan     any
	// LockID is the resource lock for a run of input in: the workflow id, computed from the
	// resource's identity, so two migrations of one resource can never run at once.
	LockID func(in any) string
	// PlanInput is the plan workflow's input for a run of input in.
	PlanInput func(in any) any
	// NewInput builds the workflow's input from the kind's spec (the spec struct, not a
	// pointer) and the common fields; composites use it for their phases.
	NewInput func(spec any, c Common) any
	// Summary is one line for the Temporal UI and lists.
	Summary func(in any) string
	// Regions are the source and target regions, for the search attributes.
	Regions func(in any) (source string, targets []string)
}

// typedKind is a kind's functions in its own types: In its input, S its spec. describe
// turns them into the KindDef's any-typed functions, so a wrong type is a compile error in
// the kind's file, not a panic in a composite.
type typedKind[In, S any] struct {
	input   func(S, Common) In
	plan    func(In) any
	lock    func(In) string
	summary func(In) string
	regions func(In) (source string, targets []string)
}

// describe completes d (names and workflows) with t's functions.
func describe[In, S any](d KindDef, t typedKind[In, S]) *KindDef {
	d.LockID = func(in any) string { return t.lock(in.(In)) }
	d.PlanInput = func(in any) any { return t.plan(in.(In)) }
	d.NewInput = func(spec any, c Common) any {
		s, _ := spec.(S) // nil for an undo run, whose spec travels in its change record
		return t.input(s, c)
	}
	d.Summary = func(in any) string { return t.summary(in.(In)) }
	d.Regions = func(in any) (string, []string) { return t.regions(in.(In)) }
	return &d
}

// UndoInput is the input that makes the kind's workflow undo ch, a change report an
// earlier run of the same kind made, instead of migrating. The undo runs as the kind's own
// workflow under ch.ID (the resource lock), so it holds the lock while it works.
func (k *KindDef) UndoInput(ch Changes, c Common) any {
	c.Undo = &ch
	c.PlanHash = ""
	return k.NewInput(nil, c)
}

// kinds is the registry: adding a kind is one descriptor in its own file and one line here.
var kinds = []*KindDef{dnsShiftKind, amiShareKind, mongoPrimaryMoveKind, regionMoveKind, dbCutoverKind, brokerMoveKind}

// Kinds lists every migration kind.
func Kinds() []*KindDef { return slices.Clone(kinds) }

// KindByName returns the descriptor named name (a FerryKind value), or nil.
func KindByName(name string) *KindDef {
	for _, k := range kinds {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// Common is what every kind's input carries besides its spec. It is embedded in each
// input, so it encodes flat and histories written before it existed decode unchanged.
type Common struct {
	Name      string
	Reason    string
	Initiator string
	Approvals ApprovalPolicy
	// PlanHash, when set, makes the run refuse to change anything if the plan computed from
	// the state it reads now has another hash (the state drifted since `ferry plan`).
	PlanHash string
	// OnFailure says what a run that fails part-way does with what it changed:
	// OnFailureRollback (the default) undoes it; OnFailureLeave leaves it in place and
	// reports it in the failure's details (a composite that undoes its phases itself asks
	// for this, so every phase is undone one way).
	OnFailure string
	// Undo, when set, makes the run undo these changes instead of migrating.
	Undo *Changes `json:",omitempty"`
	// LockedBy, when set, is the composite that holds this run's resource locks (see
	// locks.go); the run takes none of its own.
	LockedBy string `json:",omitempty"`
	// Budgets bound retries; nil uses the defaults (see Budgets).
	Budgets *Budgets `json:",omitempty"`
	// StartProof is the API's signature over this start (StartDigest of the input): a
	// worker that trusts the API's keys refuses a first run without it (steer_trust.go).
	StartProof *proof.Proof `json:",omitempty"`
}

// Budgets are the retry budgets and hold paces of a run, so an outage can be expressed as a
// multiple of them (a 10-minute outage in production terms is 20 seconds in a test).
type Budgets struct {
	// UndoAttempt is how long one attempt at an undo step may keep retrying (Temporal's
	// schedule-to-close) before the run shows itself blocked. Default 2 minutes.
	UndoAttempt time.Duration
	// BlockedPace is how long a blocked step waits between attempts. Default 30 seconds.
	BlockedPace time.Duration
	// StepAttempt is how long one attempt at a forward step may keep retrying a retryable
	// error (the cloud is down, not the request wrong) before the run holds blocked
	// (holdThrough). Default 3 minutes.
	StepAttempt time.Duration
	// HoldBeat is how often a DNS shift's gates run while it holds (awaiting approval,
	// paused). Default the slower of its gate interval and 30 seconds.
	HoldBeat time.Duration `json:",omitempty"`
}

// budgets returns c's budgets with defaults filled in.
func (c Common) budgets() Budgets {
	b := Budgets{UndoAttempt: 2 * time.Minute, BlockedPace: 30 * time.Second, StepAttempt: 3 * time.Minute}
	if c.Budgets != nil {
		if c.Budgets.UndoAttempt > 0 {
			b.UndoAttempt = c.Budgets.UndoAttempt
		}
		if c.Budgets.BlockedPace > 0 {
			b.BlockedPace = c.Budgets.BlockedPace
		}
		if c.Budgets.StepAttempt > 0 {
			b.StepAttempt = c.Budgets.StepAttempt
		}
	}
	return b
}

// OnFailure values.
const (
	OnFailureRollback = "rollback"
	OnFailureLeave    = "leave"
)

// Changes is what one run of a kind changed, recorded as each change was made (the
// compensation next to the step), with the "before" state its kind needs to undo it. Only
// the kind that wrote Record reads it; everyone else passes it on whole, so an undo that
// runs in a new child undoes exactly what the owner did.
type Changes struct {
	// Kind names the kind whose undo applies (a FerryKind value).
	Kind string
	// ID is the migration (the resource lock) that made the changes; the undo runs under it.
	ID string
	// OwnerRunID is the first run id of the run chain that made them.
	OwnerRunID string
	// InEffect says, in one line for people, what is still changed; empty when nothing is.
	InEffect string
	// Record is the kind's own before-state and list of changes.
	Record json.RawMessage `json:",omitempty"`
}

// None reports whether nothing is in effect.
func (c Changes) None() bool { return c.InEffect == "" }

// owner identifies the run chain whose changes a run records: the workflow id (the lock)
// and the first run id. An undo run records on behalf of the run whose changes it undoes.
type owner struct{ ID, RunID string }

func ownerOf(ctx workflow.Context, undo *Changes) owner {
	if undo != nil {
		return owner{ID: undo.ID, RunID: undo.OwnerRunID}
	}
	info := workflow.GetInfo(ctx)
	return owner{ID: info.WorkflowExecution.ID, RunID: info.FirstRunID}
}

// newChanges encodes a kind's record. Records are plain structs, which always encode; if
// one ever did not, the InEffect line still tells people what to undo by hand.
func newChanges(o owner, kind, inEffect string, record any) Changes {
	ch := Changes{Kind: kind, ID: o.ID, OwnerRunID: o.RunID, InEffect: inEffect}
	if inEffect == "" {
		return ch
	}
	if b, err := json.Marshal(record); err == nil {
		ch.Record = b
	}
	return ch
}

// decodeRecord reads a kind's own record back.
func decodeRecord[T any](ch *Changes) (T, error) {
	var r T
	if err := json.Unmarshal(ch.Record, &r); err != nil {
		return r, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("undo %s: its change record cannot be read: %v", ch.ID, err), ErrPlanInvalid, err)
	}
	return r, nil
}

// Outcome is what every kind's result starts with (embedded, so it encodes flat): how the
// run ended, one line for people, and what is still changed. A composite reads any child's
// result as an Outcome.
type Outcome struct {
	State   string
	Message string
	Changes Changes
	// Failure is, for a run that failed, what failed and its root cause in one line,
	// without the "failed:" and "still in effect" a Message adds: a parent quotes it.
	Failure string `json:",omitempty"`
}

// ErrMigrationFailed is the type of the error a kind ends with when it failed part-way;
// its details hold the kind's result, whose Changes say what is still in effect.
const ErrMigrationFailed = "MigrationFailed"

// outcomeOf finds the Outcome a failed kind attached to its error, through any child
// workflow or activity envelope.
func outcomeOf(err error) (Outcome, bool) {
	var ae *temporal.ApplicationError
	for e := err; errors.As(e, &ae); e = ae.Unwrap() {
		if o, ok := detailsOutcome(ae); ok {
			return o, true
		}
		if ae.Unwrap() == nil {
			break
		}
	}
	return Outcome{}, false
}

// detailsOutcome decodes an application error's details as an Outcome. Details that came
// over the wire decode by JSON; details of an error made in this process are the original
// Go values, which the SDK assigns by reflection and which then panic on another type.
func detailsOutcome(ae *temporal.ApplicationError) (o Outcome, ok bool) {
	if !ae.HasDetails() {
		return o, false
	}
	defer func() {
		if recover() != nil {
			o, ok = Outcome{}, false
		}
	}()
	return o, ae.Details(&o) == nil && o.State != ""
}
