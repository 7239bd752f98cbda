package mongosim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Member states as replSetGetStatus reports them.
type memberState int

const (
	stateStartup   memberState = 0
	statePrimary   memberState = 1
	stateSecondary memberState = 2
	stateStartup2  memberState = 5
	stateArbiter   memberState = 7
	stateDown      memberState = 8
	stateRemoved   memberState = 10
)

func (s memberState) String() string {
	switch s {
	case stateStartup:
		return "STARTUP"
	case statePrimary:
		return "PRIMARY"
	case stateSecondary:
		return "SECONDARY"
	case stateStartup2:
		return "STARTUP2"
	case stateArbiter:
		return "ARBITER"
	case stateDown:
		return "(not reachable/healthy)"
	case stateRemoved:
		return "REMOVED"
	}
	return "UNKNOWN"
}

// Cluster is one simulated replica set.
type Cluster struct {
	opts   Options
	timing Timing
	log    *slog.Logger

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every state change
	closed   bool
	done     chan struct{}
	wg       sync.WaitGroup
	nodes    []*node
	term     int64
	lastTS   bson.Timestamp
	election *election
	// noPrimarySince is when the set last lost its writable primary; zero while one exists.
	noPrimarySince time.Time
	// primaryLostSince is when the majority side last saw a primary; elections
	// are called ElectionTimeout after it.
	primaryLostSince time.Time
	takeover         takeoverState
	lastPrimary      string // host of the last primary that lost its role
	// replicaSetID is settings.replicaSetId, drawn at start; replSetReconfig refuses to
	// change it, so it names this set for its whole life.
	replicaSetID bson.ObjectID
	events       []Event
	faults       map[string]Fault
	cmdFaults    []*cmdFault // the command-error ones among faults, in order applied
	onFaultFired func(id string)
	nextConnID   int64
}

type takeoverState struct {
	candidate *node
	since     time.Time
}

// node is one simulated mongod: its own config, oplog, data and view of the others.
type node struct {
	c      *Cluster
	idx    int
	host   string
	port   int
	region string
	spec   MemberSpec

	ln     net.Listener
	conns  map[net.Conn]struct{}
	stopCh chan struct{} // closed when the process stops

	up          bool
	partitioned bool
	processID   bson.ObjectID
	tvCounter   int64
	startedAt   time.Time

	cfg   *replConfig
	cfgAt time.Time // when this node installed cfg
	state memberState

	syncStart time.Time

	oplog []opEntry
	data  *store
	txns  map[txnKey]struct{}

	addedLag time.Duration
	syncMult float64

	stepDownUntil     time.Time
	frozenUntil       time.Time
	stepdownPending   bool
	electionDate      time.Time
	primaryTerm       int64 // term in which this node last became primary
	lostMajoritySince time.Time
	downSince         time.Time
}

// Start listens on every member's port and starts the simulation loop. The
// first InConfig member with the highest priority starts as PRIMARY.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.SetName == "" {
		opts.SetName = "rs0"
	}
	if opts.ID == "" {
		opts.ID = opts.SetName
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if len(opts.Members) == 0 {
		return nil, errors.New("mongosim: no members")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		opts:    opts,
		timing:  opts.Timing.withDefaults(),
		log:     opts.Logger.With("component", "mongosim", "set", opts.SetName),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
		faults:  map[string]Fault{},
		term:    1,
		// Random, as replSetInitiate makes it: two sets named rs0 still differ here.
		replicaSetID: bson.NewObjectID(),
	}
	if opts.ID != opts.SetName {
		c.log = c.log.With("id", opts.ID)
	}
	var lc net.ListenConfig
	for i, spec := range opts.Members {
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(opts.Host, strconv.Itoa(spec.Port)))
		if err != nil {
			c.closeListeners()
			return nil, fmt.Errorf("listen member %d: %w", i, err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		n := &node{
			c: c, idx: i, spec: spec, region: spec.Region, port: port,
			host:     net.JoinHostPort(opts.Host, strconv.Itoa(port)),
			ln:       ln,
			syncMult: 1,
		}
		n.reset()
		c.nodes = append(c.nodes, n)
	}
	if err := c.initialConfig(); err != nil {
		c.closeListeners()
		return nil, err
	}
	for _, n := range c.nodes {
		c.serve(n)
	}
	c.wg.Add(1)
	go c.loop()
	c.log.Info("replica set started", "uri", c.URI(), "primary", c.Primary())
	return c, nil
}

// reset gives a (re)started process a fresh identity; config, oplog and data
// survive a restart like they do on disk.
func (n *node) reset() {
	n.up = true
	n.processID = bson.NewObjectID()
	n.tvCounter = 0
	n.startedAt = time.Now()
	n.conns = map[net.Conn]struct{}{}
	n.stopCh = make(chan struct{})
	if n.data == nil {
		n.data = newStore()
		n.txns = map[txnKey]struct{}{}
	}
}

func (c *Cluster) initialConfig() error {
	cfg := &replConfig{ID: c.opts.SetName, Version: 1, Term: c.term, ProtocolVersion: 1,
		WriteConcernMajorityJournalDefault: true, Settings: defaultSettings(c.timing), ReplicaSetID: c.replicaSetID}
	var primary *node
	for _, n := range c.nodes {
		if !n.spec.InConfig {
			continue
		}
		m := memberConfig{ID: len(cfg.Members), Host: n.host, BuildIndexes: true, Priority: n.spec.Priority, Votes: n.spec.Votes,
			Tags: map[string]string{}}
		if n.spec.Priority == 0 && n.spec.Votes == 0 {
			m.Priority, m.Votes = 1, 1
		}
		if m.Votes < 0 {
			m.Votes = 0
		}
		for k, v := range n.spec.Tags {
			m.Tags[k] = v
		}
		if n.region != "" {
			m.Tags["region"] = n.region
		}
		cfg.Members = append(cfg.Members, m)
		if primary == nil || m.Priority > cfg.member(primary.host).Priority {
			primary = n
		}
	}
	if primary == nil {
		return errors.New("mongosim: no member is InConfig")
	}
	if err := validateConfig(cfg); err != nil {
		return fmt.Errorf("mongosim: initial config: %w", err)
	}
	now := time.Now()
	for _, n := range c.nodes {
		if cfg.member(n.host) == nil {
			continue
		}
		n.cfg, n.cfgAt = cfg, now
		n.state = stateSecondary
	}
	if primary.cfg.member(primary.host).Priority <= 0 {
		return errors.New("mongosim: no electable InConfig member")
	}
	primary.state = statePrimary
	primary.electionDate = now
	primary.primaryTerm = c.term
	// A new set starts its oplog with a no-op, as replSetInitiate does.
	c.appendLocal(primary, opEntry{Op: "n", Doc: mustMarshal(bson.D{{Key: "msg", Value: "initiating set"}})})
	for _, n := range c.nodes {
		if n != primary && n.inSet() {
			n.oplog = slices.Clone(primary.oplog)
			n.rebuild()
		}
	}
	return nil
}

// Hosts lists every member's host:port, in Options.Members order.
func (c *Cluster) Hosts() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.host
	}
	return out
}

// URI is a replica-set connection string naming the initial members.
func (c *Cluster) URI() string {
	var hosts []string
	for _, n := range c.nodes {
		if n.spec.InConfig {
			hosts = append(hosts, n.host)
		}
	}
	return "mongodb://" + strings.Join(hosts, ",") + "/?replicaSet=" + c.opts.SetName
}

// DirectURI connects to one member only, whatever its state.
func DirectURI(host string) string { return "mongodb://" + host + "/?directConnection=true" }

// SetName is the replica set's name.
func (c *Cluster) SetName() string { return c.opts.SetName }

// ID is what the sandbox tells the set apart by (Options.ID; its name unless set).
func (c *Cluster) ID() string { return c.opts.ID }

// ReplicaSetID is the set's settings.replicaSetId as replSetGetConfig reports it: drawn at
// random when the set starts and never changed, so a test can tell which of two
// same-named sets a client really reached.
func (c *Cluster) ReplicaSetID() bson.ObjectID { return c.replicaSetID }

// Primary is the host of the writable primary, or "" while there is none.
func (c *Cluster) Primary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.primaryLocked(); p != nil {
		return p.host
	}
	return ""
}

// primaryLocked is the primary of the highest term; during a partition an old
// primary may still believe it leads until it notices it lost its majority.
func (c *Cluster) primaryLocked() *node {
	var p *node
	for _, n := range c.nodes {
		if n.up && n.state == statePrimary && (p == nil || n.primaryTerm > p.primaryTerm) {
			p = n
		}
	}
	return p
}

// Close stops every member and the simulation loop and waits for all their goroutines.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	for _, n := range c.nodes {
		if n.up {
			n.stopLocked()
		}
	}
	c.bumpLocked()
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

func (c *Cluster) closeListeners() {
	for _, n := range c.nodes {
		if n.ln != nil {
			_ = n.ln.Close()
		}
	}
}

// bumpLocked wakes everything waiting for a state change.
func (c *Cluster) bumpLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// topologyChangedLocked moves every live member's topologyVersion so awaitable
// hellos return and drivers re-read the topology at once.
func (c *Cluster) topologyChangedLocked() {
	for _, n := range c.nodes {
		n.tvCounter++
	}
	c.bumpLocked()
}

// waitLocked releases the lock until the next state change, the deadline, or
// shutdown; it reports false if the deadline passed or the cluster closed.
func (c *Cluster) waitLocked(deadline time.Time, extra <-chan struct{}) bool {
	ch := c.changed
	c.mu.Unlock()
	defer c.mu.Lock()
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	case <-c.done:
		return false
	case <-extra:
		return false
	}
}

func (c *Cluster) nodeByHost(host string) *node {
	for _, n := range c.nodes {
		if n.host == host {
			return n
		}
	}
	return nil
}

// canSee says whether a can exchange heartbeats with b.
func canSee(a, b *node) bool {
	if a == b {
		return a.up
	}
	return a.up && b.up && !a.partitioned && !b.partitioned
}

// memberCfg is this node's entry in its own config, nil if it has none.
func (n *node) memberCfg() *memberConfig {
	if n.cfg == nil {
		return nil
	}
	return n.cfg.member(n.host)
}

func (n *node) inSet() bool { return n.memberCfg() != nil }

// visiblePrimary is the primary as n sees it.
func (c *Cluster) visiblePrimary(n *node) *node {
	if n.state == statePrimary && n.up {
		return n
	}
	var p *node
	for _, o := range c.nodes {
		if o.state == statePrimary && canSee(n, o) && n.cfg != nil && n.cfg.member(o.host) != nil &&
			(p == nil || o.primaryTerm > p.primaryTerm) {
			p = o
		}
	}
	return p
}

func (n *node) electable(now time.Time) bool {
	m := n.memberCfg()
	return m != nil && n.up && !n.partitioned && n.state == stateSecondary && m.Priority > 0 && m.Votes == 1 &&
		!m.ArbiterOnly && now.After(n.frozenUntil) && now.After(n.stepDownUntil)
}

// MemberStatus is a member's state as the simulation knows it.
type MemberStatus struct {
	Host          string    `json:"host"`
	Region        string    `json:"region,omitempty"`
	Up            bool      `json:"up"`
	Partitioned   bool      `json:"partitioned,omitempty"`
	InConfig      bool      `json:"inConfig"`
	State         string    `json:"state"`
	Priority      float64   `json:"priority"`
	Votes         int       `json:"votes"`
	ConfigVersion int       `json:"configVersion"`
	OptimeDate    time.Time `json:"optimeDate"`
	LagMillis     int64     `json:"lagMillis"`
	OplogEntries  int       `json:"oplogEntries"`
}

// Members reports every member, in Options.Members order.
func (c *Cluster) Members() []MemberStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.primaryLocked()
	out := make([]MemberStatus, 0, len(c.nodes))
	for _, n := range c.nodes {
		ms := MemberStatus{Host: n.host, Region: n.region, Up: n.up, Partitioned: n.partitioned, State: n.state.String(),
			OplogEntries: len(n.oplog), OptimeDate: n.lastWall()}
		if !n.up {
			ms.State = stateDown.String()
		}
		if n.cfg != nil {
			ms.ConfigVersion = n.cfg.Version
		}
		// The primary's config is the set's truth about membership.
		ref := n.cfg
		if p != nil {
			ref = p.cfg
		}
		if ref != nil {
			if m := ref.member(n.host); m != nil {
				ms.InConfig, ms.Priority, ms.Votes = true, m.Priority, m.Votes
			}
		}
		if p != nil {
			ms.LagMillis = p.lastWall().Sub(n.lastWall()).Milliseconds()
		}
		out = append(out, ms)
	}
	return out
}
