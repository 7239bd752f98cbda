package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/mongosim"
	"github.com/ferryhq/ferry/sandbox/topology"
)

// MongoSets runs the topology's simulated replica sets and routes "mongo:<set>:..." faults
// to the right one. It implements MongoFaulter.
//
// Sets are told apart by their id (topology.ReplicaSet.Key: the id, or the name when the
// set has none), never by name alone: real companies have many sets named rs0, and ferry
// is rehearsed with two at once.
type MongoSets struct {
	clusters map[string]*mongosim.Cluster // by set id
	order    []string                     // set ids in topology order
	mu       sync.Mutex
	// faultSet remembers which set (id) took each fault, so clearing finds it again.
	faultSet map[string]string
}

// StartMongo starts every replica set of the topology. Fast uses millisecond timings.
func StartMongo(ctx context.Context, t *topology.Topology, fast bool, logger *slog.Logger) (*MongoSets, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &MongoSets{clusters: map[string]*mongosim.Cluster{}, faultSet: map[string]string{}}
	for _, rs := range t.Mongo.ReplicaSets {
		id := rs.Key()
		if _, dup := m.clusters[id]; dup {
			// The second would replace the first in every lookup and leave it running. A
			// parsed topology never gets here (Validate refuses it); one built in code may.
			_ = m.Close()
			return nil, fmt.Errorf("replica set id %q is in the topology twice (a set without an id goes by its name %q); give one of them its own id, e.g. id: %s-b", id, rs.Name, id)
		}
		c, err := mongosim.Start(ctx, clusterOptions(rs, fast, logger))
		if err != nil {
			_ = m.Close()
			return nil, fmt.Errorf("start replica set %s: %w", id, err)
		}
		m.clusters[id] = c
		m.order = append(m.order, id)
	}
	return m, nil
}

// clusterOptions is the simulator's view of one topology set.
func clusterOptions(rs topology.ReplicaSet, fast bool, logger *slog.Logger) mongosim.Options {
	timing := mongosim.DefaultTiming()
	if fast {
		timing = mongosim.FastTiming()
	}
	if rs.ElectionTime > 0 && !fast {
		timing.ElectionTime = rs.ElectionTime.D()
	}
	if rs.Lag > 0 && !fast {
		timing.ReplicationLag = rs.Lag.D()
	}
	if rs.InitialSyncPerMiB > 0 && !fast {
		timing.InitialSyncPerMiB = rs.InitialSyncPerMiB.D()
	}
	opts := mongosim.Options{SetName: rs.Name, ID: rs.Key(), Timing: timing, DataSizeMiB: rs.DataSizeMiB, Logger: logger}
	for _, mem := range rs.Members {
		// Priority and votes left out of the topology mean mongod's defaults (1 and 1),
		// which mongosim takes from a zero spec.
		spec := mongosim.MemberSpec{Port: mem.Port, Region: mem.Region, InConfig: mem.InConfig, Priority: mem.Priority}
		if mem.Votes != nil {
			spec.Votes = *mem.Votes
		} else if mem.Priority > 0 {
			spec.Votes = 1
		}
		opts.Members = append(opts.Members, spec)
	}
	return opts
}

// Cluster returns a replica set by id, or by name when exactly one set has that name; nil
// when there is none or the name is shared (see Lookup for why).
func (m *MongoSets) Cluster(key string) *mongosim.Cluster {
	c, _ := m.Lookup(key)
	return c
}

// Lookup returns a replica set by id; a name stands for the set only when no set has it as
// its id and exactly one set carries it. The error says which sets exist, or which ids a
// shared name could mean.
func (m *MongoSets) Lookup(key string) (*mongosim.Cluster, error) {
	id, err := m.resolve(key)
	if err != nil {
		return nil, err
	}
	return m.clusters[id], nil
}

// resolve turns a set id or an unambiguous name into the set's id.
func (m *MongoSets) resolve(key string) (string, error) {
	if _, ok := m.clusters[key]; ok {
		return key, nil
	}
	var named []string
	for _, id := range m.order {
		if m.clusters[id].SetName() == key {
			named = append(named, id)
		}
	}
	switch len(named) {
	case 0:
		return "", fmt.Errorf("no replica set %q in this sandbox (have %s)", key, strings.Join(m.order, ", "))
	case 1:
		return named[0], nil
	}
	return "", fmt.Errorf("%d replica sets are named %q (ids %s); name one by its id", len(named), key, strings.Join(named, ", "))
}

// IDs lists the replica sets' ids in topology order.
func (m *MongoSets) IDs() []string { return slices.Clone(m.order) }

// Names is IDs, kept for callers written before sets had ids: it returns ids, which
// Cluster takes; a set's name is Cluster(id).SetName().
func (m *MongoSets) Names() []string { return m.IDs() }

// ApplyFault forwards a "mongo:<set>:<port|*>" fault to its replica set; <set> is the set's
// id, or a name only one set has. A name several sets share is refused: guessing would hit
// the wrong company's rs0.
func (m *MongoSets) ApplyFault(f control.Fault) error {
	parts := strings.SplitN(f.Target, ":", 3)
	if len(parts) != 3 || parts[0] != "mongo" {
		return &control.FieldError{Field: "target", Message: fmt.Sprintf("%q: mongo targets look like mongo:<set>:<port> or mongo:<set>:*", f.Target)}
	}
	id, err := m.resolve(parts[1])
	if err != nil {
		return &control.FieldError{Field: "target", Message: fmt.Sprintf("%s: %v", f.Target, err)}
	}
	// The simulator knows its set by id only, so a target naming the set gets its id; the
	// registry still lists the target as given.
	target := "mongo:" + id + ":" + parts[2]
	err = m.clusters[id].ApplyFault(mongosim.Fault{ID: f.ID, Target: target, Kind: f.Kind, Rate: f.Rate, LatencyMs: f.LatencyMs,
		Command: f.Command, Code: f.Code, After: f.After, Count: f.Count})
	var fe *mongosim.FaultError
	if errors.As(err, &fe) {
		return &control.FieldError{Field: fe.Field, Message: fe.Msg}
	}
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.faultSet[f.ID] = id
	m.mu.Unlock()
	return nil
}

// OnFaultFired tells fn each time a command-error fault fires in any replica set (see
// mongosim.Cluster.OnFaultFired); Start wires it to the fault registry's Fire.
func (m *MongoSets) OnFaultFired(fn func(id string)) {
	for _, c := range m.clusters {
		c.OnFaultFired(fn)
	}
}

// ClearFault removes a fault applied earlier.
func (m *MongoSets) ClearFault(id string) error {
	m.mu.Lock()
	set, ok := m.faultSet[id]
	delete(m.faultSet, id)
	m.mu.Unlock()
	if !ok {
		return nil
	}
	return m.clusters[set].ClearFault(id)
}

// Events returns each replica set's record of reconfigs, elections, step-downs, rollbacks
// and faults, by set id.
func (m *MongoSets) Events() any {
	out := make(map[string][]mongosim.Event, len(m.clusters))
	for id, c := range m.clusters {
		out[id] = c.Events()
	}
	return out
}

// Close stops every member.
func (m *MongoSets) Close() error {
	var errs []error
	for _, c := range m.clusters {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
