package mongosim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Fault mirrors the sandbox control API's fault.
type Fault struct {
	ID string `json:"id"`
	// Target is "mongo:<set>:<port>" or "mongo:<set>:*"; <set> is the cluster's ID.
	Target string `json:"target"`
	// Kind is one of "down", "partition", "lag", "slow-sync", "command-error".
	Kind string `json:"kind"`
	// Rate is the initial-sync slowdown factor for "slow-sync" (default 10), and the
	// share of matching commands a "command-error" fails (default 1).
	Rate float64 `json:"rate,omitempty"`
	// LatencyMs is the added replication lag for "lag".
	LatencyMs int `json:"latencyMs,omitempty"`
	// Command is the command a "command-error" fails, e.g. "replSetReconfig".
	Command string `json:"command,omitempty"`
	// Code is the error code a "command-error" answers (default 13, Unauthorized).
	Code int `json:"code,omitempty"`
	// After is how many matching commands a "command-error" lets through first.
	After int `json:"after,omitempty"`
	// Count is how many times a "command-error" fires (0: every time while applied).
	Count int `json:"count,omitempty"`
}

// Fault kinds.
const (
	FaultDown      = "down"
	FaultPartition = "partition"
	FaultLag       = "lag"
	FaultSlowSync  = "slow-sync"
	// FaultCommandError makes the targeted members answer Command with error Code
	// ({ok: 0, errmsg, code, codeName}) instead of running it: from the (After+1)-th
	// matching command on, Count times (0: every time), at Rate.
	FaultCommandError = "command-error"
)

// FaultError is a refused fault; Field names the offending field as the sandbox control
// API does (target, kind, rate, latencyMs, command, code, after, count, id).
type FaultError struct {
	Field string
	Msg   string
}

func (e *FaultError) Error() string { return "fault " + e.Field + ": " + e.Msg }

func faultErr(field, format string, args ...any) *FaultError {
	return &FaultError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// cmdFault is an applied command-error fault and what it has done so far.
type cmdFault struct {
	f      Fault
	hosts  map[string]bool
	passed int // matching commands let through because of After
	fired  int
}

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
	if parts[1] != c.opts.ID {
		return nil, fmt.Errorf("target %q: set %q is not %q", target, parts[1], c.opts.ID)
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

// ApplyFault validates and applies f; a refusal is a *FaultError naming the bad field.
func (c *Cluster) ApplyFault(f Fault) error {
	if f.ID == "" {
		return faultErr("id", "required")
	}
	c.mu.Lock()
	if _, dup := c.faults[f.ID]; dup {
		c.mu.Unlock()
		return faultErr("id", "%q already applied", f.ID)
	}
	c.mu.Unlock()
	nodes, err := c.targets(f.Target)
	if err != nil {
		return faultErr("target", "%v", err)
	}
	if f.Kind != FaultCommandError {
		// The request-shaped fields mean nothing for a fault that is a state.
		switch {
		case f.Command != "":
			return faultErr("command", "applies to %s faults only, not %q", FaultCommandError, f.Kind)
		case f.Code != 0:
			return faultErr("code", "applies to %s faults only, not %q", FaultCommandError, f.Kind)
		case f.After != 0:
			return faultErr("after", "applies to %s faults only, not %q", FaultCommandError, f.Kind)
		case f.Count != 0:
			return faultErr("count", "applies to %s faults only, not %q", FaultCommandError, f.Kind)
		}
	}
	switch f.Kind {
	case FaultDown, FaultPartition:
	case FaultLag:
		if f.LatencyMs <= 0 {
			return faultErr("latencyMs", "%d: must be positive for lag", f.LatencyMs)
		}
	case FaultSlowSync:
		if f.Rate < 0 {
			return faultErr("rate", "%v: must be positive for slow-sync", f.Rate)
		}
		if f.Rate == 0 {
			f.Rate = 10
		}
	case FaultCommandError:
		switch {
		case f.Command == "":
			return faultErr("command", "required for %s (e.g. replSetReconfig)", FaultCommandError)
		case handlers[f.Command] == nil:
			return faultErr("command", "%q: the simulator serves no such command, so the fault could never fire", f.Command)
		case f.Code < 0 || f.Code > math.MaxInt32:
			return faultErr("code", "%d: want a MongoDB error code between 1 and %d (0: 13, Unauthorized)", f.Code, math.MaxInt32)
		case f.After < 0:
			return faultErr("after", "%d: must not be negative", f.After)
		case f.Count < 0:
			return faultErr("count", "%d: must not be negative", f.Count)
		case f.Rate < 0 || f.Rate > 1:
			return faultErr("rate", "%v: want a share of commands between 0 and 1 (0: 1)", f.Rate)
		}
		if f.Code == 0 {
			f.Code = codeUnauthorized
		}
		if f.Rate == 0 {
			f.Rate = 1
		}
	default:
		return faultErr("kind", "%q: want down, partition, lag, slow-sync or command-error", f.Kind)
	}
	for _, n := range nodes {
		if err := c.applyFaultTo(n, f, true); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.faults[f.ID] = f
	if f.Kind == FaultCommandError {
		cf := &cmdFault{f: f, hosts: map[string]bool{}}
		for _, n := range nodes {
			cf.hosts[n.host] = true
		}
		c.cmdFaults = append(c.cmdFaults, cf)
	}
	fc := f
	c.recordLocked(Event{Kind: EventFault, Fault: &fc})
	c.mu.Unlock()
	c.log.Info("fault applied", "id", f.ID, "kind", f.Kind, "target", f.Target)
	return nil
}

// OnFaultFired sets fn to be told each time a command-error fault fires, before the
// failing reply is sent and without the cluster's lock held (so fn may clear the fault).
// The sandbox uses it to keep its fault registry's counts.
func (c *Cluster) OnFaultFired(fn func(id string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onFaultFired = fn
}

// commandFaultLocked applies the command-error faults to one command served by n: each
// matching fault counts it, and the first that fires answers it. It returns the error
// to answer (nil: run the command) and the ids of the faults that fired.
func (c *Cluster) commandFaultLocked(n *node, req *request) (*cmdError, []string) {
	var answer *cmdError
	var fired []string
	for _, cf := range c.cmdFaults {
		f := cf.f
		if f.Command != req.name || !cf.hosts[n.host] {
			continue
		}
		if cf.passed < f.After {
			cf.passed++
			continue
		}
		if f.Count > 0 && cf.fired >= f.Count {
			continue
		}
		if f.Rate < 1 && rand.Float64() >= f.Rate {
			continue
		}
		cf.fired++
		fired = append(fired, f.ID)
		ce := commandFaultError(f, req)
		fc := f
		c.recordLocked(Event{Kind: EventFault, Member: n.host, Fault: &fc,
			Message: fmt.Sprintf("fired %d of %s: %s answered %s (%d)", cf.fired, countText(f.Count), req.name, codeName(ce.Code), ce.Code)})
		c.log.Info("fault fired", "id", f.ID, "kind", f.Kind, "member", n.host, "command", req.name, "code", ce.Code)
		if answer == nil {
			answer = ce
		}
	}
	return answer, fired
}

func countText(n int) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

// commandFaultError is mongod's answer to a command the fault refuses.
func commandFaultError(f Fault, req *request) *cmdError {
	code := int32(f.Code)
	db := req.db
	if db == "" {
		db = "admin"
	}
	if code == codeUnauthorized {
		return errf(code, "not authorized on %s to execute command { %s: ... } (sandbox fault %s)", db, req.name, f.ID)
	}
	return errf(code, "%s failed: %s (sandbox fault %s)", req.name, codeName(code), f.ID)
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
		c.cmdFaults = slices.DeleteFunc(c.cmdFaults, func(cf *cmdFault) bool { return cf.f.ID == id })
	}
	c.mu.Unlock()
	if !ok {
		return faultErr("id", "%q not applied", id)
	}
	nodes, err := c.targets(f.Target)
	if err != nil {
		return faultErr("target", "%v", err)
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
