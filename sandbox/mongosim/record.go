package mongosim

import (
	"slices"
	"time"
)

// Event kinds.
const (
	EventReconfig     = "reconfig"
	EventElection     = "election"
	EventStepDown     = "stepdown"
	EventRollback     = "rollback"
	EventFault        = "fault"
	EventFaultCleared = "fault-cleared"
	EventMemberState  = "member-state"
)

// Event is one recorded happening, judged later by tests and chaos runs.
type Event struct {
	Seq      int            `json:"seq"`
	Time     time.Time      `json:"time"`
	Kind     string         `json:"kind"`
	Member   string         `json:"member,omitempty"`
	Message  string         `json:"message,omitempty"`
	Reconfig *ReconfigEvent `json:"reconfig,omitempty"`
	Election *ElectionEvent `json:"election,omitempty"`
	StepDown *StepDownEvent `json:"stepDown,omitempty"`
	Rollback *RollbackEvent `json:"rollback,omitempty"`
	Fault    *Fault         `json:"fault,omitempty"`
}

// ReconfigEvent is one accepted replSetReconfig.
type ReconfigEvent struct {
	OldVersion int            `json:"oldVersion"`
	NewVersion int            `json:"newVersion"`
	Force      bool           `json:"force,omitempty"`
	By         string         `json:"by"`               // member that ran it (the primary unless forced)
	Client     string         `json:"client,omitempty"` // remote address of the connection
	Added      []string       `json:"added,omitempty"`
	Removed    []string       `json:"removed,omitempty"`
	Changed    []MemberChange `json:"changed,omitempty"`
	// VotingChanges counts voters added, removed or flipped: the safe-reconfig rule keeps it <= 1.
	VotingChanges int `json:"votingChanges"`
}

// MemberChange is a member whose votes or priority changed.
type MemberChange struct {
	Host        string  `json:"host"`
	OldVotes    int     `json:"oldVotes"`
	NewVotes    int     `json:"newVotes"`
	OldPriority float64 `json:"oldPriority"`
	NewPriority float64 `json:"newPriority"`
}

// ElectionEvent is one election, won or lost.
type ElectionEvent struct {
	Term     int64  `json:"term"`
	Winner   string `json:"winner,omitempty"` // empty: nobody won
	Previous string `json:"previous,omitempty"`
	// Reason: "stepdown", "priority takeover", "no primary".
	Reason     string `json:"reason"`
	DurationMs int64  `json:"durationMs"`
	// NoWritablePrimaryMs is how long the set had no writable primary before this win.
	NoWritablePrimaryMs int64 `json:"noWritablePrimaryMs"`
	Votes               int   `json:"votes"`
	VotesNeeded         int   `json:"votesNeeded"`
}

// StepDownEvent is a primary giving up its role.
type StepDownEvent struct {
	Reason string `json:"reason"` // "replSetStepDown", "priority takeover", "lost majority", "shutdown"
	Forced bool   `json:"forced,omitempty"`
	// Failed is set when replSetStepDown refused (no electable secondary caught up).
	Failed bool   `json:"failed,omitempty"`
	Error  string `json:"error,omitempty"`
}

// RollbackEvent is a member discarding writes its new sync source never had.
type RollbackEvent struct {
	SyncSource  string         `json:"syncSource"`
	CommonPoint string         `json:"commonPoint,omitempty"`
	Entries     int            `json:"entries"`
	Ops         []RolledBackOp `json:"ops,omitempty"` // first 100
}

// RolledBackOp names one lost oplog entry.
type RolledBackOp struct {
	Op   string `json:"op"`
	NS   string `json:"ns"`
	ID   string `json:"id,omitempty"`
	TS   string `json:"ts"`
	Term int64  `json:"term"`
}

func (c *Cluster) recordLocked(e Event) {
	e.Seq = len(c.events) + 1
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	c.events = append(c.events, e)
}

// Events returns a copy of the record so far.
func (c *Cluster) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}
