// Replica-set configs and statuses as the activities read, compare and edit them.

package activities

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// MongoMember is one member of a replica set config. Fields ferry never changes are
// read so the planner can respect them (an arbiter, hidden or delayed member never becomes
// primary) and are sent back untouched, because reconfigs edit the live document.
type MongoMember struct {
	ID                 int
	Host               string
	Votes              int
	Priority           float64
	Tags               map[string]string
	ArbiterOnly        bool
	Hidden             bool
	SecondaryDelaySecs int64
	BuildIndexes       bool
}

// MongoConfig is a replica set config as read.
type MongoConfig struct {
	SetName string
	// ReplicaSetID is settings.replicaSetId (hex): the set's identity, unlike its name.
	ReplicaSetID string `json:",omitempty"`
	Version      int64
	Term         int64
	Members      []MongoMember
}

// MongoMemberStatus is one member as replSetGetStatus reports it.
type MongoMemberStatus struct {
	Host          string
	State         string // PRIMARY, SECONDARY, STARTUP2, DOWN, ...
	Healthy       bool
	Lag           time.Duration // behind the primary's last write; 0 without a primary
	ConfigVersion int64
}

type rawMember struct {
	ID                 int               `bson:"_id"`
	Host               string            `bson:"host"`
	ArbiterOnly        bool              `bson:"arbiterOnly"`
	BuildIndexes       *bool             `bson:"buildIndexes"`
	Hidden             bool              `bson:"hidden"`
	Priority           *float64          `bson:"priority"`
	Tags               map[string]string `bson:"tags"`
	SecondaryDelaySecs int64             `bson:"secondaryDelaySecs"`
	Votes              *int              `bson:"votes"`
}

type rawConfig struct {
	ID       string      `bson:"_id"`
	Version  int64       `bson:"version"`
	Term     int64       `bson:"term"`
	Members  []rawMember `bson:"members"`
	Settings struct {
		ReplicaSetID bson.ObjectID `bson:"replicaSetId"`
	} `bson:"settings"`
}

func parseConfig(raw bson.Raw) (MongoConfig, error) {
	var rc rawConfig
	if err := bson.Unmarshal(raw, &rc); err != nil {
		return MongoConfig{}, fmt.Errorf("decode replica set config: %w", err)
	}
	out := MongoConfig{SetName: rc.ID, Version: rc.Version, Term: rc.Term}
	if !rc.Settings.ReplicaSetID.IsZero() {
		out.ReplicaSetID = rc.Settings.ReplicaSetID.Hex()
	}
	for _, r := range rc.Members {
		m := MongoMember{ID: r.ID, Host: r.Host, ArbiterOnly: r.ArbiterOnly, Hidden: r.Hidden,
			SecondaryDelaySecs: r.SecondaryDelaySecs, BuildIndexes: true, Votes: 1, Priority: 1, Tags: r.Tags}
		// Absent fields take mongod's defaults.
		if r.BuildIndexes != nil {
			m.BuildIndexes = *r.BuildIndexes
		}
		if r.Votes != nil {
			m.Votes = *r.Votes
		}
		if r.Priority != nil {
			m.Priority = *r.Priority
		} else if r.ArbiterOnly {
			m.Priority = 0
		}
		if m.Tags == nil {
			m.Tags = map[string]string{}
		}
		out.Members = append(out.Members, m)
	}
	return out, nil
}

type rawStatus struct {
	Set     string `bson:"set"`
	Members []struct {
		Name          string    `bson:"name"`
		Health        float64   `bson:"health"`
		StateStr      string    `bson:"stateStr"`
		OptimeDate    time.Time `bson:"optimeDate"`
		ConfigVersion int64     `bson:"configVersion"`
	} `bson:"members"`
}

func parseStatus(raw bson.Raw) (string, []MongoMemberStatus, error) {
	var rs rawStatus
	if err := bson.Unmarshal(raw, &rs); err != nil {
		return "", nil, fmt.Errorf("decode replSetGetStatus: %w", err)
	}
	primary := ""
	var primaryOp time.Time
	for _, m := range rs.Members {
		if m.StateStr == "PRIMARY" {
			primary, primaryOp = m.Name, m.OptimeDate
		}
	}
	out := make([]MongoMemberStatus, 0, len(rs.Members))
	for _, m := range rs.Members {
		st := MongoMemberStatus{Host: m.Name, State: m.StateStr, Healthy: m.Health >= 1, ConfigVersion: m.ConfigVersion}
		if primary != "" && m.Health >= 1 && primaryOp.After(m.OptimeDate) {
			st.Lag = primaryOp.Sub(m.OptimeDate)
		}
		out = append(out, st)
	}
	return primary, out, nil
}

func memberByHost(ms []MongoMember, host string) *MongoMember {
	for i := range ms {
		if ms[i].Host == host {
			return &ms[i]
		}
	}
	return nil
}

// SameMembers reports whether two member lists agree on hosts, votes, priorities and the
// tags b sets; this, not the config version, decides whether a step is already applied.
func SameMembers(a, b []MongoMember) bool {
	if len(a) != len(b) {
		return false
	}
	for _, mb := range b {
		ma := memberByHost(a, mb.Host)
		if ma == nil || ma.Votes != mb.Votes || ma.Priority != mb.Priority {
			return false
		}
		for k, v := range mb.Tags {
			if ma.Tags[k] != v {
				return false
			}
		}
	}
	return true
}

// VotingChanges is the size of the symmetric difference of the two voter sets, which
// MongoDB's safe reconfig keeps at most 1. It walks slices, not maps, so workflow code
// (the planner) can call it and stay visibly deterministic.
func VotingChanges(a, b []MongoMember) int {
	votes := func(ms []MongoMember, host string) bool {
		m := memberByHost(ms, host)
		return m != nil && m.Votes > 0
	}
	n := 0
	for _, m := range a {
		if m.Votes > 0 && !votes(b, m.Host) {
			n++
		}
	}
	for _, m := range b {
		if m.Votes > 0 && !votes(a, m.Host) {
			n++
		}
	}
	return n
}

// editConfig turns the live config document into the next one: version+1, members
// removed, added or changed (votes, priority) as desired; every other field as it was.
func editConfig(doc bson.Raw, cur MongoConfig, want []MongoMember) (bson.D, error) {
	var d bson.D
	if err := bson.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	var liveMembers []bson.D
	out := bson.D{}
	for _, e := range d {
		switch e.Key {
		case "term":
			// The server sets the term of a non-forced config itself.
			continue
		case "version":
			out = append(out, bson.E{Key: "version", Value: cur.Version + 1})
		case "members":
			arr, ok := e.Value.(bson.A)
			if !ok {
				return nil, fmt.Errorf("config members are %T, not an array", e.Value)
			}
			for _, v := range arr {
				md, ok := v.(bson.D)
				if !ok {
					return nil, fmt.Errorf("config member is %T, not a document", v)
				}
				liveMembers = append(liveMembers, md)
			}
			out = append(out, bson.E{Key: "members", Value: nil}) // filled below
		default:
			out = append(out, e)
		}
	}
	nextID := 0
	for _, mm := range cur.Members {
		nextID = max(nextID, mm.ID+1)
	}
	members := bson.A{}
	for _, w := range want {
		var md bson.D
		for i, lm := range cur.Members {
			if lm.Host == w.Host {
				md = liveMembers[i]
			}
		}
		if md == nil {
			tags := bson.D{}
			for _, k := range slices.Sorted(maps.Keys(w.Tags)) {
				tags = append(tags, bson.E{Key: k, Value: w.Tags[k]})
			}
			md = bson.D{{Key: "_id", Value: int32(nextID)}, {Key: "host", Value: w.Host}, {Key: "tags", Value: tags}}
			nextID++
		}
		md = setField(md, "votes", int32(w.Votes))
		md = setField(md, "priority", w.Priority)
		members = append(members, md)
	}
	for i := range out {
		if out[i].Key == "members" {
			out[i].Value = members
		}
	}
	return out, nil
}

func setField(d bson.D, k string, v any) bson.D {
	for i := range d {
		if d[i].Key == k {
			d[i].Value = v
			return d
		}
	}
	return append(d, bson.E{Key: k, Value: v})
}

// DescribeMembers renders members compactly: host(v1,p2) in config order.
func DescribeMembers(ms []MongoMember) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%s(v%d,p%g)", m.Host, m.Votes, m.Priority)
	}
	return strings.Join(parts, " ")
}

func statusOf(ss []MongoMemberStatus, host string) *MongoMemberStatus {
	for i := range ss {
		if ss[i].Host == host {
			return &ss[i]
		}
	}
	return nil
}

// SortedHosts returns the hosts of ms, sorted; handy for stable descriptions.
func SortedHosts(ms []MongoMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Host
	}
	sort.Strings(out)
	return out
}
