package workflows

import (
	"fmt"
	"strings"

	"github.com/ferryhq/ferry/activities"
)

// dbCutoverKind describes the database cutover for the kind contract.
var dbCutoverKind = describe(KindDef{Name: KindDBCutover, WorkflowName: "DatabaseCutover", Workflow: DatabaseCutover, PlanName: "PlanDatabaseCutover", Plan: PlanDatabaseCutover},
	typedKind[DBCutoverInput, DBCutoverSpec]{
		input: func(s DBCutoverSpec, c Common) DBCutoverInput { return DBCutoverInput{Spec: s, Common: c} },
		plan:  func(in DBCutoverInput) any { return PlanDBCutoverInput{Spec: in.Spec} },
		lock: func(in DBCutoverInput) string {
			if in.Undo != nil {
				return in.Undo.ID
			}
			return DBCutoverWorkflowID(in.Spec.DBRecord.Name)
		},
		summary: func(in DBCutoverInput) string {
			return fmt.Sprintf("database cutover %s: %s -> %s", in.Spec.DBRecord.Name, in.Spec.Source, in.Spec.Target)
		},
		regions: func(in DBCutoverInput) (string, []string) { return "", nil },
	})

// dbUndoRecord is the cutover's change record, kept as each change is made: the records
// as they were and are, and how far the switch went. Its undo reads the servers before
// acting on it.
type dbUndoRecord struct {
	Spec DBCutoverSpec
	// DB and maintenance records: zone, as found, and the values they hold now.
	DBZoneID    string
	DBBefore    activities.RecordSet
	DBNow       []string
	MaintZoneID string               `json:",omitempty"`
	MaintBefore activities.RecordSet `json:",omitempty"`
	MaintNow    []string             `json:",omitempty"`
	// Frozen: a freeze was sent to the source (maybe only partly applied).
	Frozen bool
	// PromoteAttempted: a promote was sent to the target; Promoted: it answered (the
	// point of no return); ReplicatedBack: the source replicates from the target.
	PromoteAttempted bool
	Promoted         bool
	ReplicatedBack   bool
	// ReattachTarget: a switch back made the source the primary again; the target is
	// still to be made its replica.
	ReattachTarget bool `json:",omitempty"`
	// Done: the cutover completed; Restored: an undo put everything back.
	Done     bool
	Restored bool
}

func (r dbUndoRecord) maintenanceOn() bool {
	return r.MaintNow != nil && !sameValues(r.MaintNow, r.MaintBefore.Values)
}
func (r dbUndoRecord) repointed() bool {
	return r.DBNow != nil && !sameValues(r.DBNow, r.DBBefore.Values)
}
func (r dbUndoRecord) frozen() bool { return r.Frozen && !r.Restored && !r.Done && !r.Promoted }

// inEffect says in one line what the cutover changed and has not put back.
func (r dbUndoRecord) inEffect() string {
	if r.Restored {
		return ""
	}
	var parts []string
	switch {
	case r.Promoted:
		parts = append(parts, fmt.Sprintf("%s is the primary (was %s)", r.Spec.Target, r.Spec.Source))
		if r.ReplicatedBack {
			parts = append(parts, r.Spec.Source+" replicates from it")
		}
	case r.PromoteAttempted:
		parts = append(parts, fmt.Sprintf("%s frozen and %s possibly promoted", r.Spec.Source, r.Spec.Target))
	case r.Frozen:
		parts = append(parts, r.Spec.Source+" frozen (read_only, "+r.Spec.AppUser+" locked)")
	}
	if r.repointed() {
		parts = append(parts, fmt.Sprintf("%s -> %s (was %s)", r.DBBefore.Name, strings.Join(r.DBNow, ","), strings.Join(r.DBBefore.Values, ",")))
	}
	if r.maintenanceOn() {
		parts = append(parts, fmt.Sprintf("maintenance page on: %s -> %s (was %s)", r.MaintBefore.Name, strings.Join(r.MaintNow, ","), strings.Join(r.MaintBefore.Values, ",")))
	}
	return strings.Join(parts, "; ")
}

func (w *dbCutover) changes() Changes {
	return newChanges(w.owner, KindDBCutover, w.rec.inEffect(), w.rec)
}
