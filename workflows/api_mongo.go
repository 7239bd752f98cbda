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
