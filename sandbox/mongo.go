package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/mongosim"
	"github.com/ferryhq/ferry/sandbox/topology"
)

// MongoSets runs the topology's simulated replica sets and routes "mongo:<set>:..." faults
// to the right one. It implements MongoFaulter.
type MongoSets struct {
	clusters map[string]*mongosim.Cluster
	order    []string
	mu       sync.Mutex
	// faultSet remembers which set took each fault, so clearing finds it again.
	faultSet map[string]string
}

// StartMongo starts every replica set of the topology. Fast uses millisecond timings.
func StartMongo(ctx context.Context, t *topology.Topology, fast bool, logger *slog.Logger) (*MongoSets, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &MongoSets{clusters: map[string]*mongosim.Cluster{}, faultSet: map[string]string{}}
	for _, rs := range t.Mongo.ReplicaSets {
		if _, dup := m.clusters[rs.Name]; dup {
			// The second would replace the first in every lookup and leave it running.
			_ = m.Close()
			return nil, fmt.Errorf("replica set %q is in the topology twice; give each set its own name", rs.Name)
		}
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
		opts := mongosim.Options{SetName: rs.Name, Timing: timing, DataSizeMiB: rs.DataSizeMiB, Logger: logger.With("component", "mongosim", "set", rs.Name)}
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
		c, err := mongosim.Start(ctx, opts)
		if err != nil {
			_ = m.Close()
			return nil, fmt.Errorf("start replica set %s: %w", rs.Name, err)
		}
		m.clusters[rs.Name] = c
		m.order = append(m.order, rs.Name)
	}
	return m, nil
}

// Cluster returns a replica set by name.
func (m *MongoSets) Cluster(name string) *mongosim.Cluster { return m.clusters[name] }

// Names lists the replica sets in topology order.
func (m *MongoSets) Names() []string { return m.order }

// ApplyFault forwards a "mongo:<set>:<port|*>" fault to its replica set.
func (m *MongoSets) ApplyFault(f control.Fault) error {
	parts := strings.SplitN(f.Target, ":", 3)
	if len(parts) != 3 || parts[0] != "mongo" {
		return &control.FieldError{Field: "target", Message: fmt.Sprintf("%q: mongo targets look like mongo:<set>:<port> or mongo:<set>:*", f.Target)}
	}
	c, ok := m.clusters[parts[1]]
	if !ok {
		return &control.FieldError{Field: "target", Message: fmt.Sprintf("no replica set %q in this sandbox (have %s)", parts[1], strings.Join(m.order, ", "))}
	}
	err := c.ApplyFault(mongosim.Fault{ID: f.ID, Target: f.Target, Kind: f.Kind, Rate: f.Rate, LatencyMs: f.LatencyMs,
		Command: f.Command, Code: f.Code, After: f.After, Count: f.Count})
	var fe *mongosim.FaultError
	if errors.As(err, &fe) {
		return &control.FieldError{Field: fe.Field, Message: fe.Msg}
	}
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.faultSet[f.ID] = parts[1]
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
// and faults.
func (m *MongoSets) Events() any {
	out := make(map[string][]mongosim.Event, len(m.clusters))
	for name, c := range m.clusters {
		out[name] = c.Events()
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
