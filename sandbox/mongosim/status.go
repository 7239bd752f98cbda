package mongosim

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// cmdReplSetGetStatus reports the set as member n sees it: members n cannot
// reach are DOWN with the zero optime, as mongod shows them.
func (c *Cluster) cmdReplSetGetStatus(cc *connCtx, _ *request) (bson.D, error) {
	n := cc.n
	if n.cfg == nil {
		return nil, errf(codeNotYetInitialized, "no replset config has been received")
	}
	now := time.Now()
	cfg := n.cfg
	src := c.syncSource(n)
	srcHost, srcID := "", int32(-1)
	if src != nil {
		srcHost = src.host
		if m := cfg.member(src.host); m != nil {
			srcID = int32(m.ID)
		}
	}
	maj := c.majorityOpTime(n)
	if n.state != statePrimary {
		if p := c.visiblePrimary(n); p != nil {
			maj = c.majorityOpTime(p)
		}
	}
	last := n.lastOpTime()
	members := bson.A{}
	for _, m := range cfg.Members {
		o := c.nodeByHost(m.Host)
		members = append(members, c.memberStatusDoc(n, o, m, now))
	}
	votingCount := len(cfg.voters())
	writable := 0
	for _, m := range cfg.Members {
		if m.Votes == 1 && !m.ArbiterOnly {
			writable++
		}
	}
	d := bson.D{
		{Key: "set", Value: cfg.ID},
		{Key: "date", Value: bson.NewDateTimeFromTime(now)},
		{Key: "myState", Value: int32(n.state)},
		{Key: "term", Value: c.term},
		{Key: "syncSourceHost", Value: srcHost},
		{Key: "syncSourceId", Value: srcID},
		{Key: "heartbeatIntervalMillis", Value: int64(2000)},
		{Key: "majorityVoteCount", Value: int32(cfg.majority())},
		{Key: "writeMajorityCount", Value: int32(min(cfg.majority(), writable))},
		{Key: "votingMembersCount", Value: int32(votingCount)},
		{Key: "writableVotingMembersCount", Value: int32(writable)},
		{Key: "optimes", Value: bson.D{
			{Key: "lastCommittedOpTime", Value: maj.doc()},
			{Key: "lastCommittedWallTime", Value: bson.NewDateTimeFromTime(wallOrEpoch(maj))},
			{Key: "readConcernMajorityOpTime", Value: maj.doc()},
			{Key: "appliedOpTime", Value: last.doc()},
			{Key: "durableOpTime", Value: last.doc()},
			{Key: "lastAppliedWallTime", Value: bson.NewDateTimeFromTime(n.lastWall())},
			{Key: "lastDurableWallTime", Value: bson.NewDateTimeFromTime(n.lastWall())},
		}},
		{Key: "members", Value: members},
	}
	if n.state == statePrimary {
		d = append(d, bson.E{Key: "electionCandidateMetrics", Value: bson.D{
			{Key: "lastElectionDate", Value: bson.NewDateTimeFromTime(n.electionDate)},
			{Key: "electionTerm", Value: n.primaryTerm},
			{Key: "electionTimeoutMillis", Value: c.timing.ElectionTimeout.Milliseconds()},
		}})
	}
	return d, nil
}

func wallOrEpoch(o opTime) time.Time {
	if o.wall.IsZero() {
		return time.Unix(0, 0)
	}
	return o.wall
}

func (c *Cluster) memberStatusDoc(viewer, o *node, m memberConfig, now time.Time) bson.D {
	self := viewer == o
	d := bson.D{{Key: "_id", Value: int32(m.ID)}, {Key: "name", Value: m.Host}}
	if o == nil || !canSee(viewer, o) {
		msg := "Error connecting to " + m.Host + " :: caused by :: Connection refused"
		if o != nil && o.up {
			msg = "Couldn't get a connection within the time limit"
		}
		return append(d,
			bson.E{Key: "health", Value: 0.0},
			bson.E{Key: "state", Value: int32(stateDown)},
			bson.E{Key: "stateStr", Value: stateDown.String()},
			bson.E{Key: "uptime", Value: int32(0)},
			bson.E{Key: "optime", Value: zeroOpTime.doc()},
			bson.E{Key: "optimeDurable", Value: zeroOpTime.doc()},
			bson.E{Key: "optimeDate", Value: bson.NewDateTimeFromTime(time.Unix(0, 0))},
			bson.E{Key: "optimeDurableDate", Value: bson.NewDateTimeFromTime(time.Unix(0, 0))},
			bson.E{Key: "lastHeartbeat", Value: bson.NewDateTimeFromTime(now)},
			bson.E{Key: "lastHeartbeatRecv", Value: bson.NewDateTimeFromTime(time.Unix(0, 0))},
			bson.E{Key: "pingMs", Value: int64(0)},
			bson.E{Key: "lastHeartbeatMessage", Value: msg},
			bson.E{Key: "authenticated", Value: false},
			bson.E{Key: "syncSourceHost", Value: ""},
			bson.E{Key: "syncSourceId", Value: int32(-1)},
			bson.E{Key: "infoMessage", Value: ""},
			bson.E{Key: "configVersion", Value: int32(-1)},
			bson.E{Key: "configTerm", Value: int64(-1)},
		)
	}
	state := o.state
	if o.cfg != nil && o.cfg.member(o.host) == nil && state != stateStartup2 {
		state = stateRemoved
	}
	last := o.lastOpTime()
	d = append(d,
		bson.E{Key: "health", Value: 1.0},
		bson.E{Key: "state", Value: int32(state)},
		bson.E{Key: "stateStr", Value: state.String()},
		bson.E{Key: "uptime", Value: int32(now.Sub(o.startedAt).Seconds())},
		bson.E{Key: "optime", Value: last.doc()},
		bson.E{Key: "optimeDurable", Value: last.doc()},
		bson.E{Key: "optimeDate", Value: bson.NewDateTimeFromTime(o.lastWall())},
		bson.E{Key: "optimeDurableDate", Value: bson.NewDateTimeFromTime(o.lastWall())},
		bson.E{Key: "lastAppliedWallTime", Value: bson.NewDateTimeFromTime(o.lastWall())},
		bson.E{Key: "lastDurableWallTime", Value: bson.NewDateTimeFromTime(o.lastWall())},
	)
	if !self {
		d = append(d,
			bson.E{Key: "lastHeartbeat", Value: bson.NewDateTimeFromTime(now)},
			bson.E{Key: "lastHeartbeatRecv", Value: bson.NewDateTimeFromTime(now)},
			bson.E{Key: "pingMs", Value: int64(0)},
			bson.E{Key: "lastHeartbeatMessage", Value: ""},
		)
	}
	src := c.syncSource(o)
	srcHost, srcID := "", int32(-1)
	if src != nil {
		srcHost = src.host
		if sm := viewer.cfg.member(src.host); sm != nil {
			srcID = int32(sm.ID)
		}
	}
	d = append(d, bson.E{Key: "syncSourceHost", Value: srcHost}, bson.E{Key: "syncSourceId", Value: srcID})
	info := ""
	if state == stateStartup2 {
		info = "initial sync in progress"
	} else if state == stateSecondary && src == nil {
		info = "could not find member to sync from"
	}
	d = append(d, bson.E{Key: "infoMessage", Value: info})
	if state == statePrimary {
		d = append(d,
			bson.E{Key: "electionTime", Value: bson.Timestamp{T: uint32(o.electionDate.Unix()), I: 1}},
			bson.E{Key: "electionDate", Value: bson.NewDateTimeFromTime(o.electionDate)},
		)
	}
	cv, ct := int32(-1), int64(-1)
	if o.cfg != nil {
		cv, ct = int32(o.cfg.Version), o.cfg.Term
	}
	d = append(d, bson.E{Key: "configVersion", Value: cv}, bson.E{Key: "configTerm", Value: ct})
	if self {
		d = append(d, bson.E{Key: "self", Value: true})
	}
	return d
}
