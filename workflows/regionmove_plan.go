package workflows

import (
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

const regionPlanHashVersion = "ferry/region-move/plan/v2"

// PlanRegionMove is the dry run: it runs each phase's plan workflow as a child (each reads
// only) and returns one plan with every step of every phase in order, the approvals
// between phases, the window waits and one hash over the children's hashes and the spec.
func PlanRegionMove(ctx workflow.Context, in PlanRegionMoveInput) (Plan, error) {
	rp, err := planRegionMove(ctx, in.Spec, in.Name, workflow.GetInfo(ctx).WorkflowExecution.ID)
	return rp.Plan, err
}

// regionPlan is the combined plan and each phase's own hash (to pin the children).
type regionPlan struct {
	Plan   Plan
	Hashes map[string]string
	// children are "phase=hash" in phase order, what the move's own hash covers.
	children []string
}

// regionPhase is one phase of a region move: a run of another kind, described by its kind
// contract, so the move composes kinds without knowing their insides.
type regionPhase struct {
	name   string
	kind   *KindDef
	spec   any  // the phase's spec, the kind's own type
	window bool // waits for the maintenance window before it begins
}

// regionPhases lists the phases a spec runs, in order: the copies first (the new region
// needs its images), then the primary, then the traffic.
func regionPhases(spec RegionMoveSpec) []regionPhase {
	var ps []regionPhase
	if spec.AMI != nil {
		ps = append(ps, regionPhase{name: PhaseAMIShare, kind: amiShareKind, spec: *spec.AMI})
	}
	if spec.Mongo != nil {
		ps = append(ps, regionPhase{name: PhaseMongoPrimaryMove, kind: mongoPrimaryMoveKind, spec: *spec.Mongo, window: spec.Window != nil})
	}
	if spec.DNS != nil {
		ps = append(ps, regionPhase{name: PhaseDNSShift, kind: dnsShiftKind, spec: *spec.DNS, window: spec.Window != nil})
	}
	return ps
}

// input is the phase's run input with the common fields c.
func (ph regionPhase) input(c Common) any { return ph.kind.NewInput(ph.spec, c) }

// id is the id of the child that runs (or undoes) the phase: the phase's own resource lock,
// so the locks of the single migrations hold for the region move too.
func (ph regionPhase) id() string { return ph.kind.LockID(ph.input(Common{})) }

func planRegionMove(ctx workflow.Context, spec RegionMoveSpec, name, parentID string) (regionPlan, error) {
	phases := regionPhases(spec)
	if len(phases) == 0 {
		return regionPlan{}, temporal.NewNonRetryableApplicationError("a region move needs at least one phase (amiShare, mongoPrimaryMove or dnsShift)", ErrRegionNoPhase, nil)
	}
	rp := regionPlan{
		Plan:   Plan{ID: RegionMoveWorkflowID(name, spec.SourceRegion, spec.TargetRegion), Kind: KindRegionMove},
		Hashes: map[string]string{},
	}
	// The children plan in parallel: each only reads, and a region move waits for the
	// slowest anyway.
	futs := make([]workflow.ChildWorkflowFuture, len(phases))
	for i, ph := range phases {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            parentID + "/plan/" + ph.name,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_TERMINATE,
			WorkflowRunTimeout:    5 * time.Minute,
			StaticSummary:         fmt.Sprintf("plan %s of region move %s (read-only)", ph.name, name),
		})
		futs[i] = workflow.ExecuteChildWorkflow(cctx, ph.kind.PlanName, ph.kind.PlanInput(ph.input(Common{})))
	}
	var hashes []string
	rp.Plan.Observations = append(rp.Plan.Observations, fmt.Sprintf("move %s -> %s: %d phase(s)", spec.SourceRegion, spec.TargetRegion, len(phases)))
	for i, ph := range phases {
		var p Plan
		if err := futs[i].Get(ctx, &p); err != nil {
			return regionPlan{}, err
		}
		rp.Hashes[ph.name] = p.Hash
		rp.Plan.Resources = append(rp.Plan.Resources, p.Resources...)
		hashes = append(hashes, ph.name+"="+p.Hash)
		for _, st := range regionGateSteps(spec, i, ph) {
			rp.Plan.Steps = append(rp.Plan.Steps, PlannedStep{Name: st.name, Description: st.desc, NeedsApproval: st.approval})
		}
		for _, st := range p.Steps {
			st.Name = ph.name + ": " + st.Name
			rp.Plan.Steps = append(rp.Plan.Steps, st)
		}
		for _, o := range p.Observations {
			rp.Plan.Observations = append(rp.Plan.Observations, ph.name+": "+o)
		}
		rp.Plan.Observations = append(rp.Plan.Observations, fmt.Sprintf("%s: runs as child %s (plan %s)", ph.name, ph.id(), p.Hash))
	}
	rp.Plan.Observations = append(rp.Plan.Observations,
		"on failure or rollback: undo every phase that changed anything, the failed one included, in reverse (traffic back to "+spec.SourceRegion+", then the primary, then the copies)",
		"not covered yet: launching instances from the copied AMIs, decommissioning "+spec.SourceRegion)
	rp.Plan.Hash = RegionMovePlanHash(spec, hashes)
	rp.children = hashes
	return rp, nil
}

// regionGate is a step the region move itself holds before a phase begins.
type regionGate struct {
	kind     string // "approve", "window" or "gate"
	name     string
	desc     string
	approval bool
}

// regionGateSteps lists what the move checks before phase i begins: an approval between
// phases, the maintenance window, and for the traffic shift the state the earlier phases
// must have left.
func regionGateSteps(spec RegionMoveSpec, i int, ph regionPhase) []regionGate {
	var gs []regionGate
	if i > 0 && spec.ApproveBetweenPhases {
		gs = append(gs, regionGate{kind: "approve", name: "approve " + ph.name, approval: true,
			desc: fmt.Sprintf("approval before phase %d (%s) begins", i+1, ph.name)})
	}
	if ph.window {
		gs = append(gs, regionGate{kind: "window", name: "window " + ph.name,
			desc: fmt.Sprintf("begin %s only inside the maintenance window %s", ph.name, windowText(*spec.Window))})
	}
	if ph.name == PhaseDNSShift && (spec.AMI != nil || spec.Mongo != nil) {
		gs = append(gs, regionGate{kind: "gate", name: "gate " + ph.name,
			desc: "begin the traffic shift only when " + dnsPreconditionText(spec)})
	}
	return gs
}

func dnsPreconditionText(spec RegionMoveSpec) string {
	var parts []string
	if spec.Mongo != nil {
		parts = append(parts, "the MongoDB primary is verified in "+spec.TargetRegion)
	}
	if spec.AMI != nil {
		parts = append(parts, "the copied AMIs are available in "+spec.TargetRegion)
	}
	return strings.Join(parts, " and ")
}

// RegionMovePlanHash hashes the parent spec and the children's plan hashes (each of which
// covers its spec and the state it read).
func RegionMovePlanHash(spec RegionMoveSpec, childHashes []string) string {
	return PlanHash(regionPlanHashVersion, struct {
		Spec     RegionMoveSpec
		Children []string
	}{spec, childHashes})
}
