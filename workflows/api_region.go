package workflows

import "time"

// --- Region move (contract) ------------------------------------------------------------------

// RegionMoveWorkflowID derives the workflow id from the application's move, so one region
// move of an application runs at a time; the children hold their own resource locks.
func RegionMoveWorkflowID(name, sourceRegion, targetRegion string) string {
	return "region/" + name + "/" + sourceRegion + "/" + targetRegion
}

// Phase names of a region move, in the order they run. They name the entries of
// Progress.Phases and prefix the steps of the combined plan.
const (
	PhaseAMIShare         = "ami-share"
	PhaseMongoPrimaryMove = "mongo-primary-move"
	PhaseDNSShift         = "dns-shift"
)

// Phase states of PhaseProgress.State.
const (
	PhasePending     = "pending"
	PhaseRunning     = "running"
	PhaseCompleted   = "completed"
	PhaseRollingBack = "rolling-back"
	PhaseRolledBack  = "rolled-back"
	PhaseFailed      = "failed"
	PhaseSkipped     = "skipped"
)

// PhaseProgress is one phase of a region move as Progress reports it.
type PhaseProgress struct {
	Name string
	// MigrationID is the workflow id of the child running (or that ran) the phase: approve,
	// pause or resume it there directly, or through the parent, which forwards.
	MigrationID string
	State       string // pending, running, completed, rolling-back, rolled-back, failed, skipped
	// Detail is the child's final message, or what the phase waits for.
	Detail string
	// RollbackID is the workflow id of what undid the phase (a reverse child), if any.
	RollbackID string
}

// MaintenanceWindow is a normalised daily window: traffic and primary moves may begin only
// inside it. Start and End are "HH:MM" wall-clock times in Zone (an IANA name); End before
// Start crosses midnight. Start equal to End is refused by package spec.
type MaintenanceWindow struct {
	Start string
	End   string
	Zone  string
}

// RegionMoveSpec is the validated, normalised region move spec (built from the proto by
// package spec). A nil phase is skipped.
type RegionMoveSpec struct {
	SourceRegion string
	TargetRegion string
	AMI          *AMIShareSpec
	Mongo        *MongoMoveSpec
	DNS          *DNSShiftSpec
	// ApproveBetweenPhases opens an approval gate before every phase after the first.
	ApproveBetweenPhases bool
	// Window, when set, holds the start of the MongoDB and DNS phases until it is open.
	Window *MaintenanceWindow
}

// RegionMoveInput starts a region move.
type RegionMoveInput struct {
	Spec RegionMoveSpec
	Common
}

// PlanRegionMoveInput asks for the combined plan of a region move (a dry run).
type PlanRegionMoveInput struct {
	Spec RegionMoveSpec
	Name string
}

// RegionMoveResult is how a region move ended, phase by phase.
type RegionMoveResult struct {
	Outcome
	Phases []PhaseProgress
}

// regionWindowPollCap bounds one timer while waiting for a maintenance window, so the
// wait is re-computed (and visible) at least daily even across DST changes.
const regionWindowPollCap = 24 * time.Hour
