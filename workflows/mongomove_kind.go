package workflows

import (
	"fmt"

	"github.com/ferryhq/ferry/activities"
)

// mongoPrimaryMoveKind describes the MongoDB primary move for the kind contract.
var mongoPrimaryMoveKind = &KindDef{
	Name:         KindMongoPrimaryMove,
	WorkflowName: "MongoPrimaryMove",
	Workflow:     MongoPrimaryMove,
	PlanName:     "PlanMongoPrimaryMove",
	Plan:         PlanMongoPrimaryMove,
	LockID: func(in any) string {
		return MongoPrimaryMoveWorkflowID(in.(MongoPrimaryMoveInput).Spec.ReplicaSet)
	},
	PlanInput: func(in any) any { return PlanMongoPrimaryMoveInput{Spec: in.(MongoPrimaryMoveInput).Spec} },
	NewInput: func(spec any, c Common) any {
		s, _ := spec.(MongoMoveSpec)
		return MongoPrimaryMoveInput{Spec: s, Common: c}
	},
	Summary: func(in any) string {
		s := in.(MongoPrimaryMoveInput).Spec
		return fmt.Sprintf("MongoDB primary move %s: %s -> %s", s.ReplicaSet, s.SourceRegion, s.TargetRegion)
	},
	Regions: func(in any) (string, []string) {
		s := in.(MongoPrimaryMoveInput).Spec
		return s.SourceRegion, []string{s.TargetRegion}
	},
}

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
