package mongosim

import (
	"log/slog"
	"time"
)

// MemberSpec describes one simulated mongod.
type MemberSpec struct {
	// Port to listen on at Options.Host; 0 picks a free port.
	Port int
	// Region becomes the member's {region: ...} tag.
	Region string
	// InConfig members form the initial replica set; the others are started
	// (listening, answering hello as an uninitialised --replSet member) so a
	// migration can add them with replSetReconfig.
	InConfig bool
	// Priority and Votes of an InConfig member. Votes < 0 means 0; a zero spec
	// (Priority 0, Votes 0) is taken as the mongod default of priority 1, votes 1.
	Priority float64
	Votes    int
	// Tags beyond region.
	Tags map[string]string
}

// Timing holds every simulated duration, so the demo can look like a real
// cluster while tests run in milliseconds.
type Timing struct {
	// Tick is the step of the simulation loop.
	Tick time.Duration
	// ReplicationLag is how long after a write secondaries apply it.
	ReplicationLag time.Duration
	// InitialSyncPerMiB times Options.DataSizeMiB is the STARTUP2 duration.
	InitialSyncPerMiB time.Duration
	// InitialSyncMin is the least time an initial sync takes.
	InitialSyncMin time.Duration
	// ConfigPropagation is how long a new config takes to reach a member
	// (mongod learns it through heartbeats).
	ConfigPropagation time.Duration
	// ElectionTimeout: secondaries call an election after seeing no primary
	// this long, and a primary that cannot see a majority steps down after it.
	ElectionTimeout time.Duration
	// ElectionTime is how long an election takes; nobody is writable meanwhile.
	ElectionTime time.Duration
	// PriorityTakeoverDelay is how long a caught-up member with a higher
	// priority than the primary waits before calling a takeover election.
	PriorityTakeoverDelay time.Duration
	// MaxAwaitTime caps an awaitable hello's wait.
	MaxAwaitTime time.Duration
}

// DefaultTiming looks like a real cluster at demo speed.
func DefaultTiming() Timing {
	return Timing{
		Tick:                  50 * time.Millisecond,
		ReplicationLag:        100 * time.Millisecond,
		InitialSyncPerMiB:     10 * time.Millisecond,
		InitialSyncMin:        2 * time.Second,
		ConfigPropagation:     500 * time.Millisecond,
		ElectionTimeout:       10 * time.Second,
		ElectionTime:          2 * time.Second,
		PriorityTakeoverDelay: 5 * time.Second,
		MaxAwaitTime:          10 * time.Second,
	}
}

// FastTiming is for tests: everything happens within tens to hundreds of milliseconds.
func FastTiming() Timing {
	return Timing{
		Tick:                  5 * time.Millisecond,
		ReplicationLag:        10 * time.Millisecond,
		InitialSyncPerMiB:     time.Millisecond,
		InitialSyncMin:        100 * time.Millisecond,
		ConfigPropagation:     30 * time.Millisecond,
		ElectionTimeout:       300 * time.Millisecond,
		ElectionTime:          150 * time.Millisecond,
		PriorityTakeoverDelay: 150 * time.Millisecond,
		MaxAwaitTime:          10 * time.Second,
	}
}

func (t Timing) withDefaults() Timing {
	d := DefaultTiming()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&t.Tick, d.Tick)
	set(&t.ReplicationLag, time.Nanosecond) // zero lag is legitimate: keep it near zero
	set(&t.InitialSyncPerMiB, d.InitialSyncPerMiB)
	set(&t.ConfigPropagation, time.Nanosecond)
	set(&t.ElectionTimeout, d.ElectionTimeout)
	set(&t.ElectionTime, d.ElectionTime)
	set(&t.PriorityTakeoverDelay, d.PriorityTakeoverDelay)
	set(&t.MaxAwaitTime, d.MaxAwaitTime)
	return t
}

// Options configure a simulated replica set.
type Options struct {
	SetName string // default "rs0"
	// ID is what the sandbox tells this set apart by when several share a name: the <set>
	// of the fault targets it accepts (mongo:<id>:<port>). Default SetName.
	ID      string
	Host    string // default "127.0.0.1"
	Members []MemberSpec
	Timing  Timing // zero fields take DefaultTiming values
	// DataSizeMiB is the simulated data size that initial sync copies.
	DataSizeMiB int
	Logger      *slog.Logger
}

// DemoOptions is the laptop demo's replica set "rs0": three members in region
// source on basePort..basePort+2 (the first is primary), and two members in
// region target on basePort+3 and basePort+4, started but outside the config,
// ready to be added by a primary move. Timing is DefaultTiming.
func DemoOptions(basePort int, source, target string) Options {
	opts := Options{SetName: "rs0", Host: "127.0.0.1", Timing: DefaultTiming(), DataSizeMiB: 512}
	for i := range 3 {
		opts.Members = append(opts.Members, MemberSpec{Port: basePort + i, Region: source, InConfig: true, Priority: 1, Votes: 1})
	}
	for i := 3; i < 5; i++ {
		opts.Members = append(opts.Members, MemberSpec{Port: basePort + i, Region: target})
	}
	return opts
}
