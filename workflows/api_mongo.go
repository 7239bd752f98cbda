package workflows

import (
	"slices"
	"strings"
	"time"
)

// --- MongoDB primary move (contract) -------------------------------------------------------

// MongoPrimaryMoveWorkflowID names a move by the replica set's name and its lowest seed
// host ("mongo/rs0@db1.example:27017"): the name alone made every company's set named rs0
// one id. Two spellings of one set's seed list can give two ids; the lock on the set's
// replicaSetId (locks.go) still lets only one of them run.
func MongoPrimaryMoveWorkflowID(replicaSet, uri string) string {
	if h := lowestSeed(uri); h != "" {
		return "mongo/" + replicaSet + "@" + h
	}
	return "mongo/" + replicaSet
}

// lowestSeed is the lowest host of a mongodb:// URI's seed list, lower-cased, without
// credentials; "" when there is none.
func lowestSeed(uri string) string {
	rest, ok := strings.CutPrefix(uri, "mongodb://")
	if !ok {
		rest, ok = strings.CutPrefix(uri, "mongodb+srv://")
	}
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	hosts := strings.Split(strings.ToLower(rest), ",")
	slices.Sort(hosts)
	return hosts[0]
}

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
