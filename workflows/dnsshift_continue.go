package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// The DNS shift's continue-as-new (see continue.go): where a run handed over and the
// state it hands over, so the next run of the chain goes on exactly where it stood.

// Stages of a step a run can hand over in.
const (
	// StageForward: before step Step's batch (paused before it, paused on drift, or blocked
	// on an outage); the next run sends the batch (which reads first, so a batch that went
	// in is never sent twice).
	StageForward = "forward"
	// StageDwell: step Step's weights are in force; the dwell ends at DwellEnd.
	StageDwell = "dwell"
	// StageApproval: step Step dwelled; its approval gate is open.
	StageApproval = "approval"
)

// DNSResumePoint is where in the run a DNS shift handed over to the next run.
type DNSResumePoint struct {
	Stage string
	Step  int
	// DwellEnd is when the dwell of Step ends (StageDwell); DwellFailed is a gate failure
	// seen earlier in that dwell, which a pausing shift carries to the dwell's end.
	DwellEnd    time.Time `json:",omitempty"`
	DwellFailed string    `json:",omitempty"`
	// Reread: the run was paused on drift, so after a resume the record sets are read again
	// before the batch.
	Reread bool `json:",omitempty"`
}

// DNSShiftContinued is a DNS shift's whole state, carried into the next run of its chain.
type DNSShiftContinued struct {
	Steering SteeringState
	At       DNSResumePoint
	Obs      activities.PreflightOutput
	Plan     DNSShiftPlan
	From, To int
	// StepIndex is the step whose weights are in force (-1 before the first).
	StepIndex int
	Fails     map[string]int `json:",omitempty"`
	// Inconclusive is each gate's inconclusive evaluations in a row.
	Inconclusive map[string]int `json:",omitempty"`
	Gates        []GateResult   `json:",omitempty"`
	Attempted    bool
	Applied      []dnsWeights `json:",omitempty"`
	Uncertain    bool
	Pending      string     `json:",omitempty"`
	PendingSets  dnsWeights `json:",omitempty"`
}

// snapshot is the shift's state for the next run.
func (w *dnsShift) snapshot() DNSShiftContinued {
	return DNSShiftContinued{
		Steering: w.s.snapshot(), At: w.at, Obs: w.obs, Plan: w.plan,
		From: w.from, To: w.to, StepIndex: w.step, Fails: w.fails, Inconclusive: w.inconclusive, Gates: w.result,
		Attempted: w.attempted, Applied: w.applied, Uncertain: w.uncertain,
		Pending: w.pending, PendingSets: w.pendingSets,
	}
}

// restore takes the previous run's state; the run then resumes at c.At.
func (w *dnsShift) restore(ctx workflow.Context, c *DNSShiftContinued) {
	w.s.restore(ctx, c.Steering)
	w.at, w.obs, w.plan = c.At, c.Obs, c.Plan
	w.from, w.to, w.step = c.From, c.To, c.StepIndex
	if c.Fails != nil {
		w.fails = c.Fails
	}
	if c.Inconclusive != nil {
		w.inconclusive = c.Inconclusive
	}
	w.result = c.Gates
	w.attempted, w.applied, w.uncertain = c.Attempted, c.Applied, c.Uncertain
	w.pending, w.pendingSets = c.Pending, c.PendingSets
}

// continueAsNew ends this run by starting the next of the chain with the whole state.
func (w *dnsShift) continueAsNew(ctx workflow.Context) (DNSShiftResult, error) {
	if err := w.s.handOver(ctx, w.at.Stage); err != nil {
		return DNSShiftResult{}, err
	}
	in := w.in
	c := w.snapshot()
	in.Continued = &c
	return DNSShiftResult{}, workflow.NewContinueAsNewError(ctx, dnsShiftWorkflowName, in)
}
