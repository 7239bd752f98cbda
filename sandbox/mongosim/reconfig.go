package mongosim

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

const (
	maxMembers       = 50
	maxVotingMembers = 7

	codeMaxTimeMSExpired             = 50
	codeCurrentConfigNotCommittedYet = 308
)

func init() {
	codeNames[codeMaxTimeMSExpired] = "MaxTimeMSExpired"
	codeNames[codeCurrentConfigNotCommittedYet] = "CurrentConfigNotCommittedYet"
}

// replConfig is a replica set config document. Installed configs are never
// mutated, so members can share one pointer.
type replConfig struct {
	ID                                 string
	Version                            int
	Term                               int64
	ProtocolVersion                    int64
	WriteConcernMajorityJournalDefault bool
	Members                            []memberConfig
	Settings                           bson.D
	ReplicaSetID                       bson.ObjectID
}

type memberConfig struct {
	ID                 int
	Host               string
	ArbiterOnly        bool
	BuildIndexes       bool
	Hidden             bool
	Priority           float64
	Tags               map[string]string
	SecondaryDelaySecs int64
	Votes              int
}

func (c *replConfig) member(host string) *memberConfig {
	for i := range c.Members {
		if c.Members[i].Host == host {
			return &c.Members[i]
		}
	}
	return nil
}

func (c *replConfig) voters() []string {
	var out []string
	for _, m := range c.Members {
		if m.Votes == 1 {
			out = append(out, m.Host)
		}
	}
	return out
}

func (c *replConfig) majority() int { return len(c.voters())/2 + 1 }

// newer orders configs the way mongod does since 4.4: by (version, term).
func (c *replConfig) newer(o *replConfig) bool {
	if o == nil {
		return true
	}
	if c.Version != o.Version {
		return c.Version > o.Version
	}
	return c.Term > o.Term
}

func (c *replConfig) versionTerm() string {
	return fmt.Sprintf("{version: %d, term: %d}", c.Version, c.Term)
}

func defaultSettings(t Timing) bson.D {
	return bson.D{
		{Key: "chainingAllowed", Value: true},
		{Key: "heartbeatIntervalMillis", Value: int32(2000)},
		{Key: "heartbeatTimeoutSecs", Value: int32(10)},
		{Key: "electionTimeoutMillis", Value: int32(t.ElectionTimeout.Milliseconds())},
		{Key: "catchUpTimeoutMillis", Value: int32(-1)},
		{Key: "catchUpTakeoverDelayMillis", Value: int32(30000)},
		{Key: "getLastErrorModes", Value: bson.D{}},
		{Key: "getLastErrorDefaults", Value: bson.D{{Key: "w", Value: int32(1)}, {Key: "wtimeout", Value: int32(0)}}},
	}
}

func (c *replConfig) doc() bson.D {
	members := bson.A{}
	for _, m := range c.Members {
		tags := bson.D{}
		for _, k := range sortedKeys(m.Tags) {
			tags = append(tags, bson.E{Key: k, Value: m.Tags[k]})
		}
		members = append(members, bson.D{
			{Key: "_id", Value: int32(m.ID)},
			{Key: "host", Value: m.Host},
			{Key: "arbiterOnly", Value: m.ArbiterOnly},
			{Key: "buildIndexes", Value: m.BuildIndexes},
			{Key: "hidden", Value: m.Hidden},
			{Key: "priority", Value: m.Priority},
			{Key: "tags", Value: tags},
			{Key: "secondaryDelaySecs", Value: m.SecondaryDelaySecs},
			{Key: "votes", Value: int32(m.Votes)},
		})
	}
	settings := append(slices.Clone(c.Settings), bson.E{Key: "replicaSetId", Value: c.ReplicaSetID})
	return bson.D{
		{Key: "_id", Value: c.ID},
		{Key: "version", Value: int32(c.Version)},
		{Key: "term", Value: c.Term},
		{Key: "members", Value: members},
		{Key: "protocolVersion", Value: c.ProtocolVersion},
		{Key: "writeConcernMajorityJournalDefault", Value: c.WriteConcernMajorityJournalDefault},
		{Key: "settings", Value: settings},
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func invalid(format string, args ...any) *cmdError {
	return errf(codeInvalidReplicaSetConfig, format, args...)
}

// parseConfig reads a config document as replSetReconfig receives it.
func parseConfig(raw bson.Raw, base *replConfig) (*replConfig, error) {
	cfg := &replConfig{ProtocolVersion: 1, WriteConcernMajorityJournalDefault: true, Settings: slices.Clone(base.Settings),
		ReplicaSetID: base.ReplicaSetID}
	id, ok := raw.Lookup("_id").StringValueOK()
	if !ok {
		return nil, invalid("Expected field \"_id\" to have type string")
	}
	cfg.ID = id
	v, ok := asInt64(raw.Lookup("version"))
	if !ok {
		return nil, invalid("Expected field \"version\" to have a numeric type")
	}
	if v < 1 || v > 1<<31-1 {
		return nil, invalid("version field value of %d is out of range", v)
	}
	cfg.Version = int(v)
	if pv := raw.Lookup("protocolVersion"); pv.Type != 0 {
		if p, _ := asInt64(pv); p != 1 {
			return nil, invalid("protocolVersion must be 1")
		}
	}
	if w := raw.Lookup("writeConcernMajorityJournalDefault"); w.Type != 0 {
		cfg.WriteConcernMajorityJournalDefault = truthy(w)
	}
	if s, ok := raw.Lookup("settings").DocumentOK(); ok {
		elems, _ := s.Elements()
		for _, e := range elems {
			if e.Key() == "replicaSetId" {
				if oid, ok := e.Value().ObjectIDOK(); ok && oid != base.ReplicaSetID {
					return nil, errf(codeNewReplicaSetConfigurationIncompatible,
						"New and old configurations differ in replica set ID; old was %s, and new is %s", base.ReplicaSetID.Hex(), oid.Hex())
				}
				continue
			}
			if i := indexOf(cfg.Settings, e.Key()); i >= 0 {
				cfg.Settings[i].Value = e.Value()
			} else {
				cfg.Settings = append(cfg.Settings, bson.E{Key: e.Key(), Value: e.Value()})
			}
		}
	}
	arr, ok := raw.Lookup("members").ArrayOK()
	if !ok {
		return nil, invalid("Expected field \"members\" to have type array")
	}
	vals, _ := arr.Values()
	for i, mv := range vals {
		md, ok := mv.DocumentOK()
		if !ok {
			return nil, invalid("Expected type of members.%d to be object", i)
		}
		m, err := parseMember(md, i)
		if err != nil {
			return nil, err
		}
		cfg.Members = append(cfg.Members, m)
	}
	return cfg, nil
}

func parseMember(md bson.Raw, i int) (memberConfig, error) {
	m := memberConfig{BuildIndexes: true, Votes: 1, Priority: 1, Tags: map[string]string{}}
	id, ok := asInt64(md.Lookup("_id"))
	if !ok {
		return m, invalid("members.%d: BSON field 'MemberConfig._id' is missing but a required field", i)
	}
	m.ID = int(id)
	host, ok := md.Lookup("host").StringValueOK()
	if !ok {
		return m, invalid("members.%d: BSON field 'MemberConfig.host' is missing but a required field", i)
	}
	if _, port, err := net.SplitHostPort(host); err != nil || port == "" {
		return m, errf(codeFailedToParse, "Empty host component parsing HostAndPort from \"%s\"", host)
	}
	m.Host = host
	m.ArbiterOnly = truthy(md.Lookup("arbiterOnly"))
	if m.ArbiterOnly {
		m.Priority = 0
	}
	if v := md.Lookup("buildIndexes"); v.Type != 0 {
		m.BuildIndexes = truthy(v)
	}
	m.Hidden = truthy(md.Lookup("hidden"))
	if v := md.Lookup("priority"); v.Type != 0 {
		p, ok := asFloat(v)
		if !ok {
			return m, invalid("members.%d: Expected field \"priority\" to have a numeric type", i)
		}
		m.Priority = p
	}
	if v := md.Lookup("votes"); v.Type != 0 {
		vv, ok := asInt64(v)
		if !ok {
			return m, invalid("members.%d: Expected field \"votes\" to have a numeric type", i)
		}
		m.Votes = int(vv)
	}
	if v := md.Lookup("secondaryDelaySecs"); v.Type != 0 {
		m.SecondaryDelaySecs, _ = asInt64(v)
	}
	if t, ok := md.Lookup("tags").DocumentOK(); ok {
		elems, _ := t.Elements()
		for _, e := range elems {
			s, ok := e.Value().StringValueOK()
			if !ok {
				return m, invalid("members.%d: tags must have string values", i)
			}
			m.Tags[e.Key()] = s
		}
	}
	return m, nil
}

// validateConfig applies mongod's rules for a config on its own
// (ReplSetConfig::validate and MemberConfig's constructor).
func validateConfig(cfg *replConfig) error {
	if n := len(cfg.Members); n < 1 || n > maxMembers {
		return invalid("Replica set configuration contains %d members, but must be at least 1 and no more than %d", n, maxMembers)
	}
	voters, electable := 0, 0
	for i, m := range cfg.Members {
		if m.Votes != 0 && m.Votes != 1 {
			return invalid("votes field value is %d but must be 0 or 1", m.Votes)
		}
		if m.Priority < 0 || m.Priority > 1000 {
			return invalid("priority must be between 0 and 1000")
		}
		if m.Votes == 0 && m.Priority != 0 {
			return invalid("priority must be 0 when non-voting (votes:0)")
		}
		if m.ArbiterOnly {
			if m.Votes == 0 {
				return invalid("Arbiter must vote (cannot have 0 votes)")
			}
			if m.Priority != 0 {
				return invalid("Arbiter must have priority 0")
			}
			if len(m.Tags) > 0 {
				return invalid("Cannot set tags on arbiters.")
			}
		}
		if m.Hidden && m.Priority != 0 {
			return invalid("priority must be 0 when hidden=true")
		}
		if m.SecondaryDelaySecs != 0 && m.Priority != 0 {
			return invalid("priority must be 0 when secondaryDelaySecs is used")
		}
		if !m.BuildIndexes && m.Priority != 0 {
			return invalid("priority must be 0 when buildIndexes=false")
		}
		for j := range i {
			o := cfg.Members[j]
			if o.ID == m.ID {
				return invalid("Found two member configurations with same _id field, members.%d._id == members.%d._id == %d", j, i, m.ID)
			}
			if o.Host == m.Host {
				return invalid("Found two member configurations with same host field, members.%d.host == members.%d.host == %s", j, i, m.Host)
			}
		}
		voters += m.Votes
		if m.Priority > 0 && !m.ArbiterOnly {
			electable++
		}
	}
	if voters < 1 || voters > maxVotingMembers {
		return invalid("Replica set configuration contains %d voting members, but must be at least 1 and no more than %d", voters, maxVotingMembers)
	}
	if electable == 0 {
		return invalid("Replica set configuration must contain at least one non-arbiter member with priority > 0")
	}
	return nil
}

// validateAgainst applies the rules that relate a new config to the current one.
func validateAgainst(old, cfg *replConfig, force bool) error {
	if cfg.ID != old.ID {
		return invalid("New and old configurations differ in replica set name; old was %s, and new is %s", old.ID, cfg.ID)
	}
	if !force && cfg.Version <= old.Version {
		return errf(codeNewReplicaSetConfigurationIncompatible,
			"New replica set configuration version must be greater than old, but %d is not greater than %d for replica set %s",
			cfg.Version, old.Version, old.ID)
	}
	for _, m := range cfg.Members {
		for _, o := range old.Members {
			if o.Host == m.Host && o.ID != m.ID {
				return errf(codeNewReplicaSetConfigurationIncompatible,
					"New and old configurations both have members with host of %s but in the new configuration the _id field is %d and in the old configuration it is %d for replica set %s",
					m.Host, m.ID, o.ID, old.ID)
			}
			if o.ID == m.ID && o.Host == m.Host && o.ArbiterOnly != m.ArbiterOnly {
				return errf(codeNewReplicaSetConfigurationIncompatible,
					"New and old configurations differ in the setting of the arbiterOnly field for member %s; to make this change, remove then re-add the member",
					m.Host)
			}
		}
	}
	if !force && votingDiff(old, cfg) > 1 {
		return errf(codeNewReplicaSetConfigurationIncompatible,
			"Non force replica set reconfig can only add or remove at most 1 voting member.")
	}
	return nil
}

// votingDiff is the size of the symmetric difference of the two voter sets.
func votingDiff(old, cfg *replConfig) int {
	a, b := old.voters(), cfg.voters()
	n := 0
	for _, h := range a {
		if !slices.Contains(b, h) {
			n++
		}
	}
	for _, h := range b {
		if !slices.Contains(a, h) {
			n++
		}
	}
	return n
}

func (c *Cluster) configCommitted(p *node, cfg *replConfig) bool {
	have := 0
	for _, h := range cfg.voters() {
		o := c.nodeByHost(h)
		if o == nil || !canSee(p, o) || o.cfg == nil {
			continue
		}
		if o.cfg.Version == cfg.Version && o.cfg.Term == cfg.Term {
			have++
		}
	}
	return have >= cfg.majority()
}

// quorumCheck is mongod's QuorumChecker for a reconfig: a majority of the new
// config's voters and at least one electable member must answer heartbeats.
func (c *Cluster) quorumCheck(p *node, cfg *replConfig) error {
	var responded, failed []string
	votersResponded, electable := 0, 0
	for _, m := range cfg.Members {
		o := c.nodeByHost(m.Host)
		if o == nil || !canSee(p, o) {
			reason := "Connection refused"
			if o != nil && o.up {
				reason = "Couldn't get a connection within the time limit"
			}
			failed = append(failed, fmt.Sprintf("%s failed with Error connecting to %s :: caused by :: %s", m.Host, m.Host, reason))
			continue
		}
		if m.Votes == 1 {
			votersResponded++
			responded = append(responded, m.Host)
		}
		if m.Priority > 0 {
			electable++
		}
	}
	if electable == 0 {
		return errf(codeNodeNotFound, "Quorum check failed because no electable nodes responded; at least one required for config")
	}
	if votersResponded < cfg.majority() {
		return errf(codeNodeNotFound,
			"Quorum check failed because not enough voting nodes responded; required %d but only the following %d voting nodes responded: %s; the following nodes did not respond affirmatively: %s",
			cfg.majority(), votersResponded, strings.Join(responded, ", "), strings.Join(failed, ", "))
	}
	return nil
}

func (c *Cluster) cmdReplSetGetConfig(cc *connCtx, req *request) (bson.D, error) {
	n := cc.n
	if n.cfg == nil {
		return nil, errf(codeNotYetInitialized, "no replset config has been received")
	}
	out := bson.D{{Key: "config", Value: n.cfg.doc()}}
	if truthy(req.body.Lookup("commitmentStatus")) {
		if n.state != statePrimary {
			return nil, errf(codeNotWritablePrimary, "commitmentStatus is only supported on primary.")
		}
		out = append(out, bson.E{Key: "commitmentStatus", Value: c.configCommitted(n, n.cfg)})
	}
	return out, nil
}

func maxTimeDeadline(body bson.Raw) (time.Time, bool) {
	if ms, ok := asInt64(body.Lookup("maxTimeMS")); ok && ms > 0 {
		return time.Now().Add(time.Duration(ms) * time.Millisecond), true
	}
	return time.Now().Add(24 * time.Hour), false
}

// cmdReplSetReconfig follows mongod 4.4+'s safe reconfig: wait for the
// current config to be majority committed, validate, check quorum, install,
// then wait for the new config to be majority committed.
func (c *Cluster) cmdReplSetReconfig(cc *connCtx, req *request) (bson.D, error) {
	n := cc.n
	raw, ok := req.body.Lookup("replSetReconfig").DocumentOK()
	if !ok {
		return nil, errf(codeTypeMismatch, "no configuration specified")
	}
	force := truthy(req.body.Lookup("force"))
	deadline, _ := maxTimeDeadline(req.body)
	if n.cfg == nil {
		return nil, errf(codeNotYetInitialized, "no replset config has been received")
	}
	if !force {
		if n.state != statePrimary {
			return nil, errf(codeNotWritablePrimary, "replSetReconfig should only be run on a writable PRIMARY. Current state %s;", n.state).retryable(false)
		}
		for !c.configCommitted(n, n.cfg) {
			if n.state != statePrimary {
				return nil, errf(codeNotWritablePrimary, "New config is rejected :: caused by :: Primary stepped down while waiting for replication")
			}
			if !c.waitLocked(deadline, cc.stop) {
				if c.closed || !n.up {
					return nil, errf(codeInterruptedAtShutdown, "interrupted at shutdown")
				}
				return nil, errf(codeCurrentConfigNotCommittedYet, "New config is rejected :: caused by :: operation exceeded time limit")
			}
		}
		if n.state != statePrimary {
			return nil, errf(codeNotWritablePrimary, "replSetReconfig should only be run on a writable PRIMARY. Current state %s;", n.state).retryable(false)
		}
	}
	old := n.cfg
	cfg, err := parseConfig(raw, old)
	if err != nil {
		return nil, err
	}
	if err := validateConfig(cfg); err != nil {
		return nil, err
	}
	if err := validateAgainst(old, cfg, force); err != nil {
		return nil, err
	}
	if cfg.member(n.host) == nil {
		return nil, errf(codeNodeNotFound, "No host described in new configuration with %s for replica set %s maps to this node",
			cfg.versionTerm(), cfg.ID)
	}
	if force {
		// A forced config must win over anything another node may hold.
		cfg.Version = max(cfg.Version, old.Version+10000)
		cfg.Term = -1
	} else {
		cfg.Term = c.term
		if err := c.quorumCheck(n, cfg); err != nil {
			return nil, err
		}
	}
	c.installLocked(n, cfg, old, force, cc.remote)
	if force {
		return bson.D{}, nil
	}
	for !c.configCommitted(n, cfg) {
		if n.cfg != cfg {
			break // superseded: a later config includes this one
		}
		if n.state != statePrimary {
			return nil, errf(codePrimarySteppedDown, "Reconfig finished but failed to propagate to a majority :: caused by :: Primary stepped down while waiting for replication")
		}
		if !c.waitLocked(deadline, cc.stop) {
			if c.closed || !n.up {
				return nil, errf(codeInterruptedAtShutdown, "interrupted at shutdown")
			}
			return nil, errf(codeMaxTimeMSExpired, "Reconfig finished but failed to propagate to a majority :: caused by :: operation exceeded time limit")
		}
	}
	return bson.D{}, nil
}

func (c *Cluster) installLocked(n *node, cfg, old *replConfig, force bool, client string) {
	now := time.Now()
	n.cfg, n.cfgAt = cfg, now
	ev := &ReconfigEvent{OldVersion: old.Version, NewVersion: cfg.Version, Force: force, By: n.host, Client: client,
		VotingChanges: votingDiff(old, cfg)}
	for _, m := range cfg.Members {
		o := old.member(m.Host)
		if o == nil {
			ev.Added = append(ev.Added, m.Host)
			continue
		}
		if o.Votes != m.Votes || o.Priority != m.Priority {
			ev.Changed = append(ev.Changed, MemberChange{Host: m.Host, OldVotes: o.Votes, NewVotes: m.Votes,
				OldPriority: o.Priority, NewPriority: m.Priority})
		}
	}
	for _, o := range old.Members {
		if cfg.member(o.Host) == nil {
			ev.Removed = append(ev.Removed, o.Host)
		}
	}
	c.recordLocked(Event{Kind: EventReconfig, Member: n.host, Reconfig: ev})
	c.log.Info("reconfig", "member", n.host, "oldVersion", old.Version, "newVersion", cfg.Version,
		"added", ev.Added, "removed", ev.Removed, "votingChanges", ev.VotingChanges)
	c.topologyChangedLocked()
}

// propagateConfigsLocked spreads newer configs the way heartbeats do: any
// member that holds a config for ConfigPropagation hands it to the members it
// can reach (a forced config on a secondary spreads too), and members that
// join start their initial sync.
func (c *Cluster) propagateConfigsLocked(now time.Time) {
	for {
		changed := false
		for _, src := range c.nodes {
			if !src.up || src.cfg == nil || now.Sub(src.cfgAt) < c.timing.ConfigPropagation {
				continue
			}
			for _, n := range c.nodes {
				if n == src || !canSee(src, n) || !src.cfg.newer(n.cfg) {
					continue
				}
				// Only members of the config, and members it just removed, hear of it.
				wasIn := n.inSet()
				if src.cfg.member(n.host) == nil && !wasIn {
					continue
				}
				c.installFromHeartbeatLocked(n, src.cfg, wasIn, now)
				changed = true
			}
		}
		if !changed {
			return
		}
	}
}

func (c *Cluster) installFromHeartbeatLocked(n *node, cfg *replConfig, wasIn bool, now time.Time) {
	// The new config arrived now; it travels on after another ConfigPropagation.
	n.cfg, n.cfgAt = cfg, now
	isIn := n.inSet()
	switch {
	case isIn && n.memberCfg().ArbiterOnly:
		// Arbiters vote but hold no data: no initial sync, no replication.
		c.setStateLocked(n, stateArbiter, "joined as arbiter")
	case isIn && (!wasIn || n.state == stateStartup || n.state == stateRemoved):
		c.startInitialSyncLocked(n, now)
	case !isIn && wasIn:
		if n.state == statePrimary {
			c.stepDownLocked(n, "removed from config", now, false)
		}
		c.setStateLocked(n, stateRemoved, "removed from config")
	}
	c.topologyChangedLocked()
}

// cmdReplSetInitiate exists for completeness: the simulator starts initiated,
// so only an uninitialised member could run it, and then as mongod would refuse
// (the set already has a config elsewhere).
func (c *Cluster) cmdReplSetInitiate(cc *connCtx, _ *request) (bson.D, error) {
	if cc.n.cfg != nil {
		return nil, errf(codeAlreadyInitialized, "already initialized")
	}
	return nil, errf(codeInvalidReplicaSetConfig,
		"replSetInitiate quorum check failed because not all proposed set members responded affirmatively: "+
			"this node is not empty of replica set state; add it to the existing set %s with replSetReconfig", c.opts.SetName)
}
