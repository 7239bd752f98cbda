package workflows

import (
	"time"

	"github.com/ferryhq/ferry/activities"
	"github.com/ferryhq/ferry/proof"
	"github.com/ferryhq/ferry/sandbox/gameday"
)

// --- GameDay (contract) ---------------------------------------------------------------------
//
// A GameDay's validated scenario (issue 23). Package spec builds it from the scenario file
// (spec.GameDay), drawing a hidden GameDay's experiments from its pool with its seed, so
// the run carries exactly the faults it will inject.

// GameDay modes.
const (
	GameDayInformed = "informed"
	GameDayHidden   = "hidden"
)

// GameDaySpec is the validated, normalised scenario.
type GameDaySpec struct {
	Name  string
	Mode  string
	Teams []GameDayTeam
	// SteadyState: the watched regions' client error rate at most MaxErrorRate.
	Regions      []string
	MaxErrorRate float64
	// Migration is the migration to run during the game, as protojson of its spec (""
	// for none), and MigrationKind its kind.
	Migration     string `json:",omitempty"`
	MigrationKind string `json:",omitempty"`
	// Experiments run in order; a hidden GameDay's are the draw (PoolSize candidates,
	// Seed), each starting StartAfter after the previous one ended.
	Experiments []GameDayExperiment
	PoolSize    int   `json:",omitempty"`
	Seed        int64 `json:",omitempty"`
	// Record is the weighted record the game charts: the migration's DNS record when it
	// has one (a DNS shift, a region move's traffic phase).
	Record *activities.RecordRef `json:",omitempty"`
}

// TeamOf returns the team identity belongs to ("" for none).
func (s GameDaySpec) TeamOf(identity string) string {
	for _, t := range s.Teams {
		for _, m := range t.Members {
			if m == identity {
				return t.Name
			}
		}
	}
	return ""
}

// GameDayTeam is a named group of identities.
type GameDayTeam struct {
	Name    string
	Members []string
}

// GameDayExperiment is one fault and its timing.
type GameDayExperiment struct {
	Name       string
	Fault      GameDayFault
	StartAfter time.Duration
	Duration   time.Duration
}

// GameDayFault is a sandbox fault (sandbox/control.Fault's fields a scenario may set).
type GameDayFault struct {
	Target    string
	Kind      string
	Rate      float64
	LatencyMs int    `json:",omitempty"`
	Command   string `json:",omitempty"`
	Code      int    `json:",omitempty"`
}

// Workflow type, query and updates of a GameDay.
const (
	GameDayWorkflowName = "GameDay"
	// QueryGameDay returns a GameDayRun.
	QueryGameDay = "gameday"
	// UpdateGameDayPress records a person's detect or mitigate (GameDayPressRequest).
	UpdateGameDayPress = "gameday-press"
	// UpdateGameDayStop stops the game and clears its faults (GameDayPressRequest with
	// action stop).
	UpdateGameDayStop = "gameday-stop"
)

// GameDay press actions, as proofs name them.
const (
	PressDetect   = "gameday-detect"
	PressMitigate = "gameday-mitigate"
	PressStop     = "gameday-stop"
)

// GameDay states.
const (
	GameDayRunning   = "running"
	GameDayCompleted = "completed"
	GameDayStopped   = "stopped"
)

// GameDayWorkflowID is a game's workflow id: games of the same scenario run one at a time
// (two would inject into the same sandbox and blur each other's measurements).
func GameDayWorkflowID(name string) string { return "gameday/" + slug(name) }

// GameDayInput starts a GameDay.
type GameDayInput struct {
	Spec GameDaySpec
	// MigrationID is the migration under test, started by the API with the game.
	MigrationID string `json:",omitempty"`
	StartedBy   string
	StartProof  *proof.Proof `json:",omitempty"`
}

// GameDayPressRequest is a person's detect, mitigate or stop, through the API.
type GameDayPressRequest struct {
	Action   string
	Identity string
	Note     string
	Proof    *proof.Proof `json:",omitempty"`
}

// GameDayPress is a press as the game recorded it.
type GameDayPress struct {
	Time     time.Time
	Action   string // detect | mitigate
	Identity string
	Team     string
	Note     string `json:",omitempty"`
}

// GameDayRun is a game's record: its state, each experiment's times and records, the
// presses, the migration's end. It is the query's answer and the workflow's result; the
// report (package gamereport) is computed from it.
type GameDayRun struct {
	ID          string
	Spec        GameDaySpec
	State       string
	StartedBy   string
	Started     time.Time
	Ended       time.Time `json:",omitzero"`
	StoppedBy   string    `json:",omitempty"`
	MigrationID string    `json:",omitempty"`
	Experiments []ExperimentRun
	Presses     []GameDayPress
	// Weights of the charted record at the start and at the end (Route 53's answer).
	StartWeights map[string]int64      `json:",omitempty"`
	EndWeights   map[string]int64      `json:",omitempty"`
	Migration    *gameday.MigrationEnd `json:",omitempty"`
	// Notes are what went wrong in the game itself (a fault the sandbox refused...).
	Notes []string `json:",omitempty"`
}

// Experiment states.
const (
	ExperimentPending    = "pending"
	ExperimentInjected   = "injected"
	ExperimentRecovering = "recovering"
	ExperimentDone       = "done"
	ExperimentSkipped    = "skipped"
)

// ExperimentRun is one experiment's record.
type ExperimentRun struct {
	Name    string
	Fault   GameDayFault
	State   string
	FaultID string    `json:",omitempty"`
	Start   time.Time `json:",omitzero"` // the sandbox's clock at injection
	End     time.Time `json:",omitzero"` // cleared
	// Steady is when the game saw the steady state back (zero: it did not, in time).
	Steady  time.Time        `json:",omitzero"`
	Records *gameday.Records `json:",omitempty"`
}
