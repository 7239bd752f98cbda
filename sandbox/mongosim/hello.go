package mongosim

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// serverVersion is the mongod release the simulator imitates (wire version 21).
const serverVersion = "7.0.14"

func (c *Cluster) topologyVersion(n *node) bson.D {
	return bson.D{{Key: "processId", Value: n.processID}, {Key: "counter", Value: n.tvCounter}}
}

// electionID encodes the term the way mongod's OID::fromTerm does, so
// electionIds compare in term order.
func electionID(term int64) bson.ObjectID {
	var id bson.ObjectID
	id[0], id[1], id[2], id[3] = 0x7f, 0xff, 0xff, 0xff
	for i := range 8 {
		id[4+i] = byte(term >> (56 - 8*i))
	}
	return id
}

// cmdHello answers hello/isMaster. With topologyVersion and maxAwaitTimeMS it is
// the awaitable hello of the streaming SDAM protocol: it waits for the member's
// topologyVersion to move, which is what makes drivers notice a new primary fast.
func (c *Cluster) cmdHello(cc *connCtx, req *request) (bson.D, error) {
	n := cc.n
	tvDoc, hasTV := req.body.Lookup("topologyVersion").DocumentOK()
	maxAwaitVal := req.body.Lookup("maxAwaitTimeMS")
	maxAwait, hasMax := asInt64(maxAwaitVal)
	if hasTV != hasMax {
		return nil, errf(codeFailedToParse, "topologyVersion must be provided if and only if maxAwaitTimeMS is provided")
	}
	if hasMax {
		if maxAwait < 0 {
			return nil, errf(codeBadValue, "maxAwaitTimeMS must be a non-negative integer")
		}
		wait := min(time.Duration(maxAwait)*time.Millisecond, c.timing.MaxAwaitTime)
		pid, _ := tvDoc.Lookup("processId").ObjectIDOK()
		counter, _ := asInt64(tvDoc.Lookup("counter"))
		deadline := time.Now().Add(wait)
		// A different processId means the client knew an earlier process: answer at once.
		for n.up && pid == n.processID && counter == n.tvCounter {
			if !c.waitLocked(deadline, cc.stop) {
				break
			}
		}
		if req.exhaustAllowed && !req.legacy {
			cc.stream = &helloStream{maxAwait: wait, req: req}
		}
	}
	return c.helloDoc(cc, req), nil
}

func (c *Cluster) helloDoc(cc *connCtx, req *request) bson.D {
	n := cc.n
	now := time.Now()
	legacyName := req.name == "isMaster" || req.name == "ismaster"
	// A primary attempting a stepdown stops accepting writes and says so, as
	// mongod's topology coordinator does while its leader mode is "attempting stepdown".
	writable := n.state == statePrimary && n.up && !n.stepdownPending
	var d bson.D
	if legacyName {
		d = append(d, bson.E{Key: "ismaster", Value: writable})
	} else {
		d = append(d, bson.E{Key: "isWritablePrimary", Value: writable})
	}
	d = append(d, bson.E{Key: "topologyVersion", Value: c.topologyVersion(n)})
	if _, ok := req.body.Lookup("helloOk").BooleanOK(); ok {
		d = append(d, bson.E{Key: "helloOk", Value: true})
	}
	m := n.memberCfg()
	if m == nil {
		// A --replSet mongod that is not (or no longer) in a config: drivers
		// classify it as RSGhost and keep it out of the set.
		d = append(d,
			bson.E{Key: "secondary", Value: false},
			bson.E{Key: "info", Value: "Does not have a valid replica set config"},
			bson.E{Key: "isreplicaset", Value: true},
		)
	} else {
		cfg := n.cfg
		var hosts, passives, arbiters []string
		for _, mc := range cfg.Members {
			switch {
			case mc.Hidden:
			case mc.ArbiterOnly:
				arbiters = append(arbiters, mc.Host)
			case mc.Priority == 0:
				passives = append(passives, mc.Host)
			default:
				hosts = append(hosts, mc.Host)
			}
		}
		d = append(d, bson.E{Key: "hosts", Value: hosts})
		if len(passives) > 0 {
			d = append(d, bson.E{Key: "passives", Value: passives})
		}
		if len(arbiters) > 0 {
			d = append(d, bson.E{Key: "arbiters", Value: arbiters})
		}
		d = append(d,
			bson.E{Key: "setName", Value: cfg.ID},
			bson.E{Key: "setVersion", Value: int32(cfg.Version)},
			bson.E{Key: "secondary", Value: n.state == stateSecondary},
		)
		if p := c.visiblePrimary(n); p != nil {
			d = append(d, bson.E{Key: "primary", Value: p.host})
		}
		if m.Priority == 0 && !m.ArbiterOnly && !m.Hidden {
			d = append(d, bson.E{Key: "passive", Value: true})
		}
		if m.Hidden {
			d = append(d, bson.E{Key: "hidden", Value: true})
		}
		if m.ArbiterOnly {
			d = append(d, bson.E{Key: "arbiterOnly", Value: true})
		}
		d = append(d, bson.E{Key: "me", Value: n.host})
		if n.state == statePrimary {
			d = append(d, bson.E{Key: "electionId", Value: electionID(c.term)})
		}
		last := n.lastOpTime()
		maj := c.majorityOpTime(n)
		d = append(d, bson.E{Key: "lastWrite", Value: bson.D{
			{Key: "opTime", Value: last.doc()},
			{Key: "lastWriteDate", Value: bson.NewDateTimeFromTime(n.lastWall())},
			{Key: "majorityOpTime", Value: maj.doc()},
			{Key: "majorityWriteDate", Value: bson.NewDateTimeFromTime(maj.wall)},
		}})
		tags := bson.D{}
		for k, v := range m.Tags {
			tags = append(tags, bson.E{Key: k, Value: v})
		}
		d = append(d, bson.E{Key: "tags", Value: tags})
	}
	d = append(d,
		bson.E{Key: "maxBsonObjectSize", Value: int32(maxBSONObjectSize)},
		bson.E{Key: "maxMessageSizeBytes", Value: int32(maxMessageSizeBytes)},
		bson.E{Key: "maxWriteBatchSize", Value: int32(maxWriteBatchSize)},
		bson.E{Key: "localTime", Value: bson.NewDateTimeFromTime(now)},
		bson.E{Key: "logicalSessionTimeoutMinutes", Value: int32(30)},
		bson.E{Key: "connectionId", Value: int32(cc.id)},
		bson.E{Key: "minWireVersion", Value: int32(0)},
		bson.E{Key: "maxWireVersion", Value: int32(21)},
		bson.E{Key: "readOnly", Value: false},
		bson.E{Key: "ok", Value: 1.0},
	)
	return d
}

func (c *Cluster) cmdPing(*connCtx, *request) (bson.D, error) { return bson.D{}, nil }

func (c *Cluster) cmdBuildInfo(*connCtx, *request) (bson.D, error) {
	return bson.D{
		{Key: "version", Value: serverVersion},
		{Key: "gitVersion", Value: "mongosim"},
		{Key: "versionArray", Value: bson.A{int32(7), int32(0), int32(14), int32(0)}},
		{Key: "modules", Value: bson.A{}},
		{Key: "bits", Value: int32(64)},
		{Key: "debug", Value: false},
		{Key: "maxBsonObjectSize", Value: int32(maxBSONObjectSize)},
		{Key: "storageEngines", Value: bson.A{"wiredTiger"}},
	}, nil
}

func (c *Cluster) cmdGetParameter(_ *connCtx, req *request) (bson.D, error) {
	known := map[string]any{
		"featureCompatibilityVersion": bson.D{{Key: "version", Value: "7.0"}},
		"enableElectionHandoff":       true,
		"authenticationMechanisms":    bson.A{"SCRAM-SHA-1", "SCRAM-SHA-256"},
	}
	out := bson.D{}
	elems, _ := req.body.Elements()
	all := false
	if v := req.body.Lookup("getParameter"); v.StringValue() == "*" {
		all = true
	}
	for k, v := range known {
		if all {
			out = append(out, bson.E{Key: k, Value: v})
			continue
		}
		for _, e := range elems {
			if e.Key() == k {
				out = append(out, bson.E{Key: k, Value: v})
			}
		}
	}
	if len(out) == 0 && !all {
		return nil, errf(codeInvalidOptions, "no option found to get")
	}
	return out, nil
}

func (c *Cluster) cmdHostInfo(cc *connCtx, _ *request) (bson.D, error) {
	return bson.D{
		{Key: "system", Value: bson.D{{Key: "currentTime", Value: bson.NewDateTimeFromTime(time.Now())},
			{Key: "hostname", Value: cc.n.host}, {Key: "cpuArch", Value: "x86_64"}, {Key: "numCores", Value: int32(2)}}},
		{Key: "os", Value: bson.D{{Key: "type", Value: "Linux"}, {Key: "name", Value: "mongosim"}}},
		{Key: "extra", Value: bson.D{}},
	}, nil
}

func (c *Cluster) cmdConnectionStatus(*connCtx, *request) (bson.D, error) {
	return bson.D{{Key: "authInfo", Value: bson.D{{Key: "authenticatedUsers", Value: bson.A{}},
		{Key: "authenticatedUserRoles", Value: bson.A{}}}}}, nil
}

func (c *Cluster) cmdWhatsMyURI(cc *connCtx, _ *request) (bson.D, error) {
	return bson.D{{Key: "you", Value: cc.remote}}, nil
}

func (c *Cluster) cmdGetCmdLineOpts(cc *connCtx, _ *request) (bson.D, error) {
	return bson.D{
		{Key: "argv", Value: bson.A{"mongod", "--replSet", c.opts.SetName, "--port", cc.n.port}},
		{Key: "parsed", Value: bson.D{{Key: "replication", Value: bson.D{{Key: "replSet", Value: c.opts.SetName}}},
			{Key: "net", Value: bson.D{{Key: "port", Value: int32(cc.n.port)}}}}},
	}, nil
}

func (c *Cluster) cmdServerStatus(cc *connCtx, _ *request) (bson.D, error) {
	n := cc.n
	return bson.D{
		{Key: "host", Value: n.host},
		{Key: "version", Value: serverVersion},
		{Key: "process", Value: "mongod"},
		{Key: "uptimeMillis", Value: time.Since(n.startedAt).Milliseconds()},
		{Key: "localTime", Value: bson.NewDateTimeFromTime(time.Now())},
		{Key: "connections", Value: bson.D{{Key: "current", Value: int32(len(n.conns))}}},
	}, nil
}

// asInt64 reads any BSON number as an int64.
func asInt64(v bson.RawValue) (int64, bool) {
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32()), true
	case bson.TypeInt64:
		return v.Int64(), true
	case bson.TypeDouble:
		return int64(v.Double()), true
	}
	return 0, false
}

// asFloat reads any BSON number as a float64.
func asFloat(v bson.RawValue) (float64, bool) {
	switch v.Type {
	case bson.TypeInt32:
		return float64(v.Int32()), true
	case bson.TypeInt64:
		return float64(v.Int64()), true
	case bson.TypeDouble:
		return v.Double(), true
	}
	return 0, false
}

// truthy reads a BSON value the way mongod reads boolean options.
func truthy(v bson.RawValue) bool {
	switch v.Type {
	case bson.TypeBoolean:
		return v.Boolean()
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble:
		f, _ := asFloat(v)
		return f != 0
	}
	return false
}
