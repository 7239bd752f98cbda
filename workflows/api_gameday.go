package workflows

import "time"

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
