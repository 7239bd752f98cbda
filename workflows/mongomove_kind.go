package workflows

import (
	"fmt"

	"github.com/ferryhq/ferry/activities"
)

// mongoPrimaryMoveKind describes the MongoDB primary move for the kind contract.
var mongoPrimaryMoveKind = describe(KindDef{Name: KindMongoPrimaryMove, WorkflowName: "MongoPrimaryMove", Workflow: MongoPrimaryMove, PlanName: "PlanMongoPrimaryMove", Plan: PlanMongoPrimaryMove},
	typedKind[MongoPrimaryMoveInput, MongoMoveSpec]{
		input: func(s MongoMoveSpec, c Common) MongoPrimaryMoveInput {
			return MongoPrimaryMoveInput{Spec: s, Common: c}
		},
		plan: func(in MongoPrimaryMoveInput) any { return PlanMongoPrimaryMoveInput{Spec: in.Spec} },
		lock: func(in MongoPrimaryMoveInput) string {
			return MongoPrimaryMoveWorkflowID(in.Spec.ReplicaSet, in.Spec.URI)
		},
		summary: func(in MongoPrimaryMoveInput) string {
			return fmt.Sprintf("MongoDB primary move %s: %s -> %s", in.Spec.ReplicaSet, in.Spec.SourceRegion, in.Spec.TargetRegion)
		},
		regions: func(in MongoPrimaryMoveInput) (string, []string) {
			return in.Spec.SourceRegion, []string{in.Spec.TargetRegion}
		},
	})

// mongoUndoRecord is the MongoDB move's change record: the config members and the primary
// it found. Its undo plans from the set as it is then back to these, so it needs no list of
// the reconfigs in between.
type mongoUndoRecord struct {
	Spec    MongoMoveSpec
	Members []activities.MongoMember
	Primary string
}

// changes reports what the move has changed: nothing until a reconfig or step-down was
// sent, and nothing once the recorded config is restored.
func (w *mongoMove) changes() Changes {
	inEffect := ""
	if w.attempted && !w.restored {
		inEffect = fmt.Sprintf("replica set %s at config v%d with primary %s (before the move: primary %s; %s)",
			w.spec.ReplicaSet, w.version, orDash(w.primary), orDash(w.originalPrimary), activities.DescribeMembers(w.original))
	}
	return newChanges(w.owner, KindMongoPrimaryMove, inEffect, mongoUndoRecord{Spec: w.spec, Members: w.original, Primary: w.originalPrimary})
}
