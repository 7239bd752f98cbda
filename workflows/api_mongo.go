package workflows

import "time"

// --- MongoDB primary move (contract) -------------------------------------------------------

// MongoPrimaryMoveWorkflowID derives the workflow id from the replica set, so two moves of
// one set can never run at once.
func MongoPrimaryMoveWorkflowID(replicaSet string) string { return "mongo/" + replicaSet }

// MongoProgress is the MongoDB-specific part of Progress.
type MongoProgress struct {
	Primary          string
	Members          []MongoMemberProgress
	ReconfigsPlanned int
	ReconfigsApplied int
	ConfigVersion    int64
}

// MongoMemberProgress is one member as the move sees it.
type MongoMemberProgress struct {
	Host     string
	Region   string
	State    string
	Priority float64
	Votes    int
	Lag      time.Duration
}

// MongoSecretRef points at a secret the worker resolves (an environment variable or a
// file), so the secret itself never enters workflow inputs or history.
type MongoSecretRef struct {
	Env  string
	File string
}

// MongoPriorities are the final member priorities of a move.
type MongoPriorities struct {
	TargetFirst float64 // the preferred primary: first target-region member
	TargetRest  float64
	SourceFirst float64 // first source-region member in config order
	SourceRest  float64
}

// MongoMoveSpec is the validated, normalised MongoDB primary move spec (built from the
// proto by package spec). It holds no observed state: the workflow reads that.
type MongoMoveSpec struct {
	URI        string // seed list, no credentials
	ReplicaSet string
	Username   string
	Password   MongoSecretRef
	TLS        bool
	TLSCAFile  string
	RegionTag  string
	// SourceRegion and TargetRegion are values of the RegionTag member tag.
	SourceRegion string
	TargetRegion string
	// NewMembers are host:port of the members to add in the target region, in order; the
	// first is the preferred primary.
	NewMembers      []string
	Priorities      MongoPriorities
	MaxLag          time.Duration
	CatchUpPeriod   time.Duration
	TakeoverTimeout time.Duration
	// SkipPrimaryApproval moves the primary without waiting for approval.
	SkipPrimaryApproval bool
	// DemoteSource sets the source members' priorities to 0 after the move (gated).
	DemoteSource bool
	// RemoveSource removes the source members after demoting them (gated).
	RemoveSource bool
}

// MongoPrimaryMoveInput starts a MongoDB primary move.
type MongoPrimaryMoveInput struct {
	Spec MongoMoveSpec
	Common
}

// PlanMongoPrimaryMoveInput asks for a MongoDB primary move plan (a dry run).
type PlanMongoPrimaryMoveInput struct {
	Spec MongoMoveSpec
}

// MongoPrimaryMoveResult is how a MongoDB primary move ended.
type MongoPrimaryMoveResult struct {
	Outcome
	Primary string
}
