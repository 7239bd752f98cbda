package mongosim

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Fault mirrors the sandbox control API's fault.
type Fault struct {
	ID string `json:"id"`
	// Target is "mongo:<set>:<port>" or "mongo:<set>:*".
	Target string `json:"target"`
	// Kind is one of "down", "partition", "lag", "slow-sync".
	Kind string `json:"kind"`
	// Rate is the initial-sync slowdown factor for "slow-sync" (default 10).
	Rate float64 `json:"rate,omitempty"`
	// LatencyMs is the added replication lag for "lag".
	LatencyMs int `json:"latencyMs,omitempty"`
}

// Fault kinds.
const (
	FaultDown      = "down"
	FaultPartition = "partition"
	FaultLag       = "lag"
	FaultSlowSync  = "slow-sync"
)

var errNoMember = errors.New("no such member")

// StopMember shuts a member down: its listener and connections close, the
// others see it DOWN and it casts no votes. Data and config survive.
func (c *Cluster) StopMember(host string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodeByHost(host)
	if n == nil {
		return fmt.Errorf("stop %s: %w", host, errNoMember)
	}
	if !n.up {
		return nil
	}
	c.stopMemberLocked(n)
	return nil
}

func (c *Cluster) stopMemberLocked(n *node) {
	if n.state == statePrimary {
		if c.primaryLocked() == n {
			c.noPrimarySince = time.Now()
			c.primaryLostSince = time.Now()
			c.lastPrimary = n.host
		}
		c.recordLocked(Event{Kind: EventStepDown, Member: n.host, StepDown: &StepDownEvent{Reason: "shutdown"}})
	}
	n.stopLocked()
	if n.state == statePrimary {
		n.state = stateSecondary
	}
	c.recordLocked(Event{Kind: EventMemberState, Member: n.host, Message: "process stopped"})
	c.log.Info("member stopped", "member", n.host)
	c.topologyChangedLocked()
}

func (n *node) stopLocked() {
	n.up = false
	n.downSince = time.Now()
	n.stepdownPending = false
	_ = n.ln.Close()
	for conn := range n.conns {
		_ = conn.Close()
	}
	close(n.stopCh)
}

// RestartMember starts a stopped member on its old port. It comes back as a
// SECONDARY that catches up (rolling back first if its history diverged) or,
// if it was still in initial sync, starts initial sync again.
func (c *Cluster) RestartMember(host string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodeByHost(host)
	if n == nil {
		return fmt.Errorf("restart %s: %w", host, errNoMember)
	}
	if n.up || c.closed {
		return nil
	}
	ln, err := net.Listen("tcp", n.host)
	if err != nil {
		return fmt.Errorf("restart %s: %w", host, err)
	}
	n.ln = ln
	n.reset()
	n.frozenUntil, n.stepDownUntil = time.Time{}, time.Time{}
	c.serve(n)
	c.recordLocked(Event{Kind: EventMemberState, Member: n.host, Message: "process restarted"})
	c.log.Info("member restarted", "member", n.host)
	if n.state == stateStartup2 {
		c.startInitialSyncLocked(n, time.Now())
	}
	c.topologyChangedLocked()
	return nil
}

// Partition isolates a live member from the others (clients still reach it).
// A partitioned primary steps down once it has not seen a majority for ElectionTimeout.
func (c *Cluster) Partition(host string, on bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodeByHost(host)
	if n == nil {
		return fmt.Errorf("partition %s: %w", host, errNoMember)
	}
	n.partitioned = on
	c.topologyChangedLocked()
	return nil
}

// SetLag adds replication lag to a member on top of Timing.ReplicationLag.
func (c *Cluster) SetLag(host string, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodeByHost(host)
	if n == nil {
		return fmt.Errorf("set lag %s: %w", host, errNoMember)
	}
	n.addedLag = d
	c.bumpLocked()
	return nil
}

// SetSyncMultiplier slows (or speeds) a member's initial sync by factor m.
func (c *Cluster) SetSyncMultiplier(host string, m float64) error {
	if m <= 0 {
		return fmt.Errorf("sync multiplier %v: must be positive", m)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodeByHost(host)
	if n == nil {
		return fmt.Errorf("set sync multiplier %s: %w", host, errNoMember)
	}
	n.syncMult = m
	return nil
}

// targets resolves a fault target to members.
func (c *Cluster) targets(target string) ([]*node, error) {
	parts := strings.Split(target, ":")
	if len(parts) != 3 || parts[0] != "mongo" {
		return nil, fmt.Errorf("target %q: want mongo:<set>:<port> or mongo:<set>:*", target)
	}
	if parts[1] != c.opts.SetName {
		return nil, fmt.Errorf("target %q: set %q is not %q", target, parts[1], c.opts.SetName)
	}
	if parts[2] == "*" {
		return c.nodes, nil
	}
	port, err := strconv.Atoi(parts[2])
	if err != nil {
		return nil, fmt.Errorf("target %q: bad port: %w", target, err)
	}
	for _, n := range c.nodes {
		if n.port == port {
			return []*node{n}, nil
		}
	}
	return nil, fmt.Errorf("target %q: no member on port %d", target, port)
}

// ApplyFault validates and applies f; the error names the bad field.
func (c *Cluster) ApplyFault(f Fault) error {
	if f.ID == "" {
		return errors.New("fault id: required")
	}
	c.mu.Lock()
	if _, dup := c.faults[f.ID]; dup {
		c.mu.Unlock()
		return fmt.Errorf("fault id %q: already applied", f.ID)
	}
	c.mu.Unlock()
	nodes, err := c.targets(f.Target)
	if err != nil {
		return fmt.Errorf("fault target: %w", err)
	}
	switch f.Kind {
	case FaultDown, FaultPartition:
	case FaultLag:
		if f.LatencyMs <= 0 {
			return fmt.Errorf("fault latencyMs %d: must be positive for lag", f.LatencyMs)
		}
	case FaultSlowSync:
		if f.Rate < 0 {
			return fmt.Errorf("fault rate %v: must be positive for slow-sync", f.Rate)
		}
		if f.Rate == 0 {
			f.Rate = 10
		}
	default:
		return fmt.Errorf("fault kind %q: want down, partition, lag or slow-sync", f.Kind)
	}
	for _, n := range nodes {
		if err := c.applyFaultTo(n, f, true); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.faults[f.ID] = f
	fc := f
	c.recordLocked(Event{Kind: EventFault, Fault: &fc})
	c.mu.Unlock()
	c.log.Info("fault applied", "id", f.ID, "kind", f.Kind, "target", f.Target)
	return nil
}

func (c *Cluster) applyFaultTo(n *node, f Fault, on bool) error {
	switch f.Kind {
	case FaultDown:
		if on {
			return c.StopMember(n.host)
		}
		return c.RestartMember(n.host)
	case FaultPartition:
		return c.Partition(n.host, on)
	case FaultLag:
		d := time.Duration(f.LatencyMs) * time.Millisecond
		if !on {
			d = 0
		}
		return c.SetLag(n.host, d)
	case FaultSlowSync:
		m := f.Rate
		if !on {
			m = 1
		}
		return c.SetSyncMultiplier(n.host, m)
	}
	return nil
}

// ClearFault undoes a fault applied with ApplyFault.
func (c *Cluster) ClearFault(id string) error {
	c.mu.Lock()
	f, ok := c.faults[id]
	if ok {
		delete(c.faults, id)
	}
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("fault id %q: not applied", id)
	}
	nodes, err := c.targets(f.Target)
	if err != nil {
		return fmt.Errorf("fault target: %w", err)
	}
	for _, n := range nodes {
		if err := c.applyFaultTo(n, f, false); err != nil {
			return err
		}
	}
	c.mu.Lock()
	fc := f
	c.recordLocked(Event{Kind: EventFaultCleared, Fault: &fc})
	c.mu.Unlock()
	return nil
}

// Faults lists the faults in force.
func (c *Cluster) Faults() []Fault {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Fault, 0, len(c.faults))
	for _, f := range c.faults {
		out = append(out, f)
	}
	return out
}
