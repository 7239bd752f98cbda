package workflows

import (
	"fmt"
	"slices"
	"strings"
)

// regionMoveKind describes the region move for the kind contract: a composite, whose
// change record is its phases' records and whose undo undoes them in reverse.
var regionMoveKind = describe(KindDef{Name: KindRegionMove, WorkflowName: "RegionMove", Workflow: RegionMove, PlanName: "PlanRegionMove", Plan: PlanRegionMove},
	typedKind[RegionMoveInput, RegionMoveSpec]{
		input: func(s RegionMoveSpec, c Common) RegionMoveInput { return RegionMoveInput{Spec: s, Common: c} },
		plan:  func(in RegionMoveInput) any { return PlanRegionMoveInput{Spec: in.Spec, Name: in.Name} },
		lock: func(in RegionMoveInput) string {
			return RegionMoveWorkflowID(in.Name, in.Spec.SourceRegion, in.Spec.TargetRegion)
		},
		summary: func(in RegionMoveInput) string {
			return fmt.Sprintf("region move %s: %s -> %s", in.Name, in.Spec.SourceRegion, in.Spec.TargetRegion)
		},
		regions: func(in RegionMoveInput) (string, []string) { return in.Spec.SourceRegion, regionMoveTargets(in.Spec) },
	})

// regionUndoRecord is the region move's change record: each phase's own report, in the
// order the phases ran.
type regionUndoRecord struct {
	Spec   RegionMoveSpec
	Phases []regionPhaseChanges
}

type regionPhaseChanges struct {
	Phase   string
	Changes Changes
}

// changes is the move's change report: every phase with something in effect.
func (w *regionMove) changes() Changes {
	var rec regionUndoRecord
	var lines []string
	for _, ph := range regionPhases(w.spec) {
		if ch, ok := w.phaseChanges[ph.name]; ok && !ch.None() {
			rec.Phases = append(rec.Phases, regionPhaseChanges{Phase: ph.name, Changes: ch})
			lines = append(lines, ph.name+": "+ch.InEffect)
		}
	}
	rec.Spec = w.spec
	return newChanges(w.owner, KindRegionMove, strings.Join(lines, "; "), rec)
}

// regionMoveTargets are the move's target region and every other region its AMI phase
// shares to, so a search by any of them finds the move.
func regionMoveTargets(s RegionMoveSpec) []string {
	targets := []string{s.TargetRegion}
	if s.AMI != nil {
		for _, r := range s.AMI.TargetRegions {
			if !slices.Contains(targets, r) {
				targets = append(targets, r)
			}
		}
	}
	return targets
}
