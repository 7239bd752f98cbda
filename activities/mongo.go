package activities

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Error types of the MongoDB activities. Non-retryable unless noted.
const (
	// ErrMongoInvalidConfig: the server rejected a config as invalid (codes 93, 103).
	ErrMongoInvalidConfig = "MongoInvalidConfig"
	// ErrMongoConfigDrift: the live config is neither the step's expected predecessor nor
	// its result; someone else changed the set, and ferry must not guess.
	ErrMongoConfigDrift = "MongoConfigDrift"
	// ErrMongoWrongSet: the servers are a different replica set than the spec names.
	ErrMongoWrongSet = "MongoWrongSet"
	// ErrMongoSecret: the password reference cannot be resolved on this worker.
	ErrMongoSecret = "MongoSecret"
	// ErrMongoNotCommitted (retryable): a config is installed but not yet majority committed.
	ErrMongoNotCommitted = "MongoNotCommitted"
	// ErrMongoNotReady (retryable): new members are not yet SECONDARY and caught up.
	ErrMongoNotReady = "MongoNotReady"
	// ErrMongoStepDown (retryable): replSetStepDown found no caught-up electable secondary.
	ErrMongoStepDown = "MongoStepDown"
)

// MongoDB server error codes the activities tell apart (src/mongo/base/error_codes.yml).
const (
	codeUnauthorized             = 13
	codeAuthenticationFailed     = 18
	codeExceededTimeLimit        = 262
	codeInvalidReplicaSetConfig  = 93
	codeNewReplicaSetConfigIncom = 103
)

// MongoSecret is a secret reference resolved on the worker.
type MongoSecret struct {
	Env  string
	File string
}

// MongoConn says how to reach a replica set. It carries no secret, only where the worker
// finds it, so it can travel through workflow history.
type MongoConn struct {
	URI        string
	ReplicaSet string
	Username   string
	Password   MongoSecret
	TLS        bool
	TLSCAFile  string
}

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
	Version int64
	Term    int64
	Members []MongoMember
}

// MongoMemberStatus is one member as replSetGetStatus reports it.
type MongoMemberStatus struct {
	Host          string
	State         string // PRIMARY, SECONDARY, STARTUP2, DOWN, ...
	Healthy       bool
	Lag           time.Duration // behind the primary's last write; 0 without a primary
	ConfigVersion int64
}

// MongoProbe is a member-to-be (not in the config) contacted directly.
type MongoProbe struct {
	Host      string
	Reachable bool
	// SetName is the replica set the server says it belongs to ("" for an uninitialised
	// --replSet member, which is what a member to add should be).
	SetName string
	Detail  string
}

// MongoReadInput asks for the config, status and probes of hosts to add.
type MongoReadInput struct {
	Conn  MongoConn
	Probe []string
}

// MongoReadOutput is the observed state of a replica set.
type MongoReadOutput struct {
	Config  MongoConfig
	Primary string
	Status  []MongoMemberStatus
	Probes  []MongoProbe
	// Committed says whether the config is majority committed (a reconfig would wait).
	Committed bool
}

// MongoReconfigInput asks for one reconfig: from Prev (what the plan expects live) to
// Members (the whole desired member list). Only host, votes, priority and, for added
// members, tags are taken from Members; everything else comes from the live config.
type MongoReconfigInput struct {
	Conn    MongoConn
	Step    string
	Prev    []MongoMember
	Members []MongoMember
	// MaxTime bounds the server's wait for the current and the new config to be
	// majority committed; zero means one minute.
	MaxTime time.Duration
}

// MongoReconfigOutput says what the reconfig did.
type MongoReconfigOutput struct {
	// Skipped is true when the live config already matched (a retry of a reconfig whose
	// answer was lost, or a replay after a worker restart).
	Skipped bool
	Config  MongoConfig
	Primary string
}

// MongoWaitReadyInput waits for members to be SECONDARY with lag under MaxLag.
type MongoWaitReadyInput struct {
	Conn         MongoConn
	Hosts        []string
	MaxLag       time.Duration
	PollInterval time.Duration
}

// MongoWaitReadyOutput is the members' status when all were ready.
type MongoWaitReadyOutput struct {
	Status []MongoMemberStatus
	Polls  int
}

// mongoWaitProgress is the heartbeat detail of the waits, so a retried attempt resumes
// its count and the Temporal UI shows what is still awaited.
type mongoWaitProgress struct {
	Polls   int
	Ready   []string
	Waiting []string
	Detail  string
}

// MongoWaitPrimaryInput waits until the writable primary carries RegionTag=Region.
type MongoWaitPrimaryInput struct {
	Conn         MongoConn
	RegionTag    string
	Region       string
	Timeout      time.Duration
	PollInterval time.Duration
}

// MongoWaitPrimaryOutput reports the primary found. Found is false when Timeout passed
// first; that is an answer, not an error, because the workflow then steps the primary down.
type MongoWaitPrimaryOutput struct {
	Found   bool
	Primary string
	Region  string
	Polls   int
	Status  []MongoMemberStatus
}

// MongoStepDownInput steps the primary down unless it already is in Region.
type MongoStepDownInput struct {
	Conn         MongoConn
	RegionTag    string
	Region       string
	StepDownSecs int
	CatchUpSecs  int
}

// MongoStepDownOutput says whether a stepdown was sent and by which primary.
type MongoStepDownOutput struct {
	SteppedDown bool
	Primary     string
	Detail      string
}

// Mongo drives replica-set reconfigs through the official driver. Clients are created on
// demand per (URI, user, TLS) and cached, so consecutive activities reuse one topology
// monitor; the password is resolved here, on the worker, from its reference.
type Mongo struct {
	logger *slog.Logger

	mu      sync.Mutex
	clients map[string]*mongo.Client
	closed  bool
}

// NewMongo returns the MongoDB activities; Close disconnects the cached clients.
func NewMongo(logger *slog.Logger) *Mongo {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Mongo{logger: logger, clients: map[string]*mongo.Client{}}
}

// Close disconnects every cached client.
func (m *Mongo) Close() error {
	m.mu.Lock()
	clients := m.clients
	m.clients, m.closed = map[string]*mongo.Client{}, true
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, c := range clients {
		if err := c.Disconnect(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// client returns the cached client for conn; direct names one host to talk to alone.
func (m *Mongo) client(conn MongoConn, direct string) (*mongo.Client, error) {
	key := strings.Join([]string{conn.URI, conn.ReplicaSet, conn.Username, fmt.Sprint(conn.TLS), conn.TLSCAFile, direct}, "\x00")
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("mongo activities are closed")
	}
	if c, ok := m.clients[key]; ok {
		return c, nil
	}
	opts := options.Client().
		// The floor the driver allows: the workflow waits on primary changes, and a
		// stale topology would send reconfigs to a stepped-down member.
		SetHeartbeatInterval(500 * time.Millisecond).
		SetServerSelectionTimeout(10 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetAppName("ferry")
	if direct != "" {
		opts.ApplyURI("mongodb://" + direct + "/?directConnection=true")
	} else {
		opts.ApplyURI(conn.URI)
		if conn.ReplicaSet != "" {
			opts.SetReplicaSet(conn.ReplicaSet)
		}
	}
	if conn.Username != "" {
		pw, err := resolveSecret(conn.Password)
		if err != nil {
			return nil, err
		}
		opts.SetAuth(options.Credential{Username: conn.Username, Password: pw})
	}
	if conn.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if conn.TLSCAFile != "" {
			pem, err := os.ReadFile(conn.TLSCAFile)
			if err != nil {
				return nil, permanent(ErrBadInput, err, "read TLS CA file %s: %v", conn.TLSCAFile, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, permanent(ErrBadInput, nil, "TLS CA file %s holds no PEM certificate", conn.TLSCAFile)
			}
			cfg.RootCAs = pool
		}
		opts.SetTLSConfig(cfg)
	}
	if err := opts.Validate(); err != nil {
		return nil, permanent(ErrBadInput, err, "mongodb connection options: %v", err)
	}
	c, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(conn, direct), err)
	}
	m.clients[key] = c
	return c, nil
}

func redact(conn MongoConn, direct string) string {
	if direct != "" {
		return direct
	}
	return conn.URI
}

// resolveSecret reads a password from the worker's environment or a file.
func resolveSecret(s MongoSecret) (string, error) {
	switch {
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", permanent(ErrMongoSecret, nil, "password: environment variable %s is not set on this worker; set it or point password.file at a file", s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", permanent(ErrMongoSecret, err, "password: read %s on this worker: %v", s.File, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", permanent(ErrMongoSecret, nil, "password: file %s is empty", s.File)
		}
		return v, nil
	}
	return "", permanent(ErrMongoSecret, nil, "password: a username is set but no password reference (env or file)")
}

// classify turns a driver error into an activity error: invalid configs and missing
// rights are permanent; everything else (not primary, stepped down, elections, network,
// commit timeouts) is worth a retry once the set settles.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		switch {
		case se.HasErrorCode(codeInvalidReplicaSetConfig), se.HasErrorCode(codeNewReplicaSetConfigIncom):
			return permanent(ErrMongoInvalidConfig, err, "%s: the server rejected the config: %v", op, err)
		case se.HasErrorCode(codeUnauthorized), se.HasErrorCode(codeAuthenticationFailed):
			return permanent(ErrAccessDenied, err, "%s: %v; grant the user clusterAdmin (replSetGetConfig, replSetReconfig, replSetStepDown)", op, err)
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

func runCmd(ctx context.Context, c *mongo.Client, rp *readpref.ReadPref, cmd bson.D) (bson.Raw, error) {
	o := options.RunCmd()
	if rp != nil {
		o.SetReadPreference(rp)
	}
	return c.Database("admin").RunCommand(ctx, cmd, o).Raw()
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
	ID      string      `bson:"_id"`
	Version int64       `bson:"version"`
	Term    int64       `bson:"term"`
	Members []rawMember `bson:"members"`
}

func parseConfig(raw bson.Raw) (MongoConfig, error) {
	var rc rawConfig
	if err := bson.Unmarshal(raw, &rc); err != nil {
		return MongoConfig{}, fmt.Errorf("decode replica set config: %w", err)
	}
	out := MongoConfig{SetName: rc.ID, Version: rc.Version, Term: rc.Term}
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

// read fetches config and status. rp nil means the primary, which holds the newest config.
func (m *Mongo) read(ctx context.Context, conn MongoConn, rp *readpref.ReadPref) (MongoConfig, string, []MongoMemberStatus, error) {
	c, err := m.client(conn, "")
	if err != nil {
		return MongoConfig{}, "", nil, err
	}
	raw, err := runCmd(ctx, c, rp, bson.D{{Key: "replSetGetConfig", Value: 1}})
	if err != nil {
		return MongoConfig{}, "", nil, classify("replSetGetConfig", err)
	}
	doc, ok := raw.Lookup("config").DocumentOK()
	if !ok {
		return MongoConfig{}, "", nil, errors.New("replSetGetConfig: answer has no config document")
	}
	cfg, err := parseConfig(doc)
	if err != nil {
		return MongoConfig{}, "", nil, err
	}
	if conn.ReplicaSet != "" && cfg.SetName != conn.ReplicaSet {
		return MongoConfig{}, "", nil, permanent(ErrMongoWrongSet, nil,
			"the servers at %s are replica set %q, not %q; fix replicaSet or uri in the spec", conn.URI, cfg.SetName, conn.ReplicaSet)
	}
	sraw, err := runCmd(ctx, c, rp, bson.D{{Key: "replSetGetStatus", Value: 1}})
	if err != nil {
		return MongoConfig{}, "", nil, classify("replSetGetStatus", err)
	}
	primary, status, err := parseStatus(sraw)
	if err != nil {
		return MongoConfig{}, "", nil, err
	}
	return cfg, primary, status, nil
}

// ReadReplicaSet reads the config and status from the primary and probes the hosts to be
// added. It is read-only, so plans and every execution can run it.
func (m *Mongo) ReadReplicaSet(ctx context.Context, in MongoReadInput) (MongoReadOutput, error) {
	defer keepAlive(ctx, "reading the replica set")()
	if in.Conn.URI == "" {
		return MongoReadOutput{}, badInput("read replica set: uri is empty")
	}
	cfg, primary, status, err := m.read(ctx, in.Conn, nil)
	if err != nil {
		return MongoReadOutput{}, err
	}
	out := MongoReadOutput{Config: cfg, Primary: primary, Status: status}
	c, _ := m.client(in.Conn, "")
	if raw, err := runCmd(ctx, c, nil, bson.D{{Key: "replSetGetConfig", Value: 1}, {Key: "commitmentStatus", Value: true}}); err == nil {
		out.Committed, _ = raw.Lookup("commitmentStatus").BooleanOK()
	}
	for _, h := range in.Probe {
		if memberByHost(cfg.Members, h) != nil {
			continue
		}
		out.Probes = append(out.Probes, m.probe(ctx, in.Conn, h))
	}
	return out, nil
}

// probe says hello to one host directly, the way the set's members would reach it.
func (m *Mongo) probe(ctx context.Context, conn MongoConn, host string) MongoProbe {
	p := MongoProbe{Host: host}
	c, err := m.client(conn, host)
	if err != nil {
		p.Detail = err.Error()
		return p
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	raw, err := runCmd(pctx, c, nil, bson.D{{Key: "hello", Value: 1}})
	if err != nil {
		p.Detail = "hello failed: " + err.Error()
		return p
	}
	p.Reachable = true
	p.SetName, _ = raw.Lookup("setName").StringValueOK()
	if isRS, _ := raw.Lookup("isreplicaset").BooleanOK(); isRS && p.SetName == "" {
		p.Detail = "uninitialised --replSet member, ready to be added"
	} else if p.SetName != "" {
		p.Detail = "member of replica set " + p.SetName
	} else {
		p.Detail = "not started with --replSet"
	}
	return p
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

// ApplyReconfig applies one planned reconfig, idempotently: it reads the live config and
// skips when it already matches the step's result; sends replSetReconfig with
// version+1 when it matches the step's predecessor; and refuses anything else, because a
// config changed by someone else is not one ferry planned for. A returned reconfig is
// majority committed (mongod 4.4+ waits for that before answering).
func (m *Mongo) ApplyReconfig(ctx context.Context, in MongoReconfigInput) (MongoReconfigOutput, error) {
	defer keepAlive(ctx, "reconfig "+in.Step)()
	if len(in.Members) == 0 {
		return MongoReconfigOutput{}, badInput("reconfig %s: no members", in.Step)
	}
	c, err := m.client(in.Conn, "")
	if err != nil {
		return MongoReconfigOutput{}, err
	}
	raw, err := runCmd(ctx, c, nil, bson.D{{Key: "replSetGetConfig", Value: 1}, {Key: "commitmentStatus", Value: true}})
	if err != nil {
		return MongoReconfigOutput{}, classify("replSetGetConfig", err)
	}
	doc, ok := raw.Lookup("config").DocumentOK()
	if !ok {
		return MongoReconfigOutput{}, errors.New("replSetGetConfig: answer has no config document")
	}
	cur, err := parseConfig(doc)
	if err != nil {
		return MongoReconfigOutput{}, err
	}
	if SameMembers(cur.Members, in.Members) {
		if committed, _ := raw.Lookup("commitmentStatus").BooleanOK(); !committed {
			// An earlier attempt installed it; the step is done only once a majority has it.
			return MongoReconfigOutput{}, temporal.NewApplicationError(
				fmt.Sprintf("reconfig %s: config version %d is installed but not yet majority committed", in.Step, cur.Version), ErrMongoNotCommitted)
		}
		m.logger.Info("reconfig already applied", "step", in.Step, "version", cur.Version)
		return MongoReconfigOutput{Skipped: true, Config: cur, Primary: m.primaryHost(ctx, c)}, nil
	}
	if len(in.Prev) > 0 && !SameMembers(cur.Members, in.Prev) {
		return MongoReconfigOutput{}, permanent(ErrMongoConfigDrift, nil,
			"reconfig %s: the live config (version %d: %s) is neither what this step expects before (%s) nor after it (%s); the set was changed outside ferry: plan again",
			in.Step, cur.Version, DescribeMembers(cur.Members), DescribeMembers(in.Prev), DescribeMembers(in.Members))
	}
	if n := VotingChanges(cur.Members, in.Members); n > 1 {
		return MongoReconfigOutput{}, permanent(ErrMongoInvalidConfig, nil,
			"reconfig %s changes %d votes; a safe reconfig changes at most one", in.Step, n)
	}
	next, err := editConfig(doc, cur, in.Members)
	if err != nil {
		return MongoReconfigOutput{}, err
	}
	maxTime := in.MaxTime
	if maxTime <= 0 {
		maxTime = time.Minute
	}
	cmd := bson.D{{Key: "replSetReconfig", Value: next}, {Key: "maxTimeMS", Value: maxTime.Milliseconds()}}
	if _, err := runCmd(ctx, c, nil, cmd); err != nil {
		return MongoReconfigOutput{}, classify(fmt.Sprintf("replSetReconfig %s (version %d)", in.Step, cur.Version+1), err)
	}
	out := MongoReconfigOutput{Primary: m.primaryHost(ctx, c)}
	if raw, err := runCmd(ctx, c, nil, bson.D{{Key: "replSetGetConfig", Value: 1}}); err == nil {
		if d, ok := raw.Lookup("config").DocumentOK(); ok {
			out.Config, _ = parseConfig(d)
		}
	}
	m.logger.Info("reconfig applied", "step", in.Step, "version", cur.Version+1, "members", DescribeMembers(in.Members))
	return out, nil
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

// primaryHost is the host the driver's topology currently holds as primary, from hello.
func (m *Mongo) primaryHost(ctx context.Context, c *mongo.Client) string {
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	raw, err := runCmd(hctx, c, nil, bson.D{{Key: "hello", Value: 1}})
	if err != nil {
		return ""
	}
	if w, _ := raw.Lookup("isWritablePrimary").BooleanOK(); !w {
		return ""
	}
	me, _ := raw.Lookup("me").StringValueOK()
	return me
}

func pollEvery(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Second
	}
	return d
}

// WaitMembersReady polls replSetGetStatus until every host is SECONDARY with lag under
// MaxLag, heartbeating each poll; a retried attempt resumes the poll count from the
// heartbeat details. Members only get votes after this, so an initial sync never holds a
// vote it cannot cast.
func (m *Mongo) WaitMembersReady(ctx context.Context, in MongoWaitReadyInput) (MongoWaitReadyOutput, error) {
	if len(in.Hosts) == 0 {
		return MongoWaitReadyOutput{}, nil
	}
	var prog mongoWaitProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &prog)
	}
	every := pollEvery(in.PollInterval)
	for {
		prog.Polls++
		_, primary, status, err := m.read(ctx, in.Conn, readpref.PrimaryPreferred())
		if err != nil {
			var ae *temporal.ApplicationError
			if errors.As(err, &ae) && ae.NonRetryable() {
				return MongoWaitReadyOutput{}, err
			}
			prog.Detail = "status unavailable: " + err.Error()
		} else {
			prog.Ready, prog.Waiting = nil, nil
			var notes []string
			for _, h := range in.Hosts {
				st := statusOf(status, h)
				switch {
				case st == nil:
					prog.Waiting = append(prog.Waiting, h)
					notes = append(notes, h+" not in status yet")
				case primary == "":
					prog.Waiting = append(prog.Waiting, h)
					notes = append(notes, h+" "+st.State+" (no primary to measure lag)")
				case st.State != "SECONDARY" || !st.Healthy:
					prog.Waiting = append(prog.Waiting, h)
					notes = append(notes, h+" "+st.State)
				case st.Lag > in.MaxLag:
					prog.Waiting = append(prog.Waiting, h)
					notes = append(notes, fmt.Sprintf("%s lag %s > %s", h, st.Lag, in.MaxLag))
				default:
					prog.Ready = append(prog.Ready, h)
				}
			}
			prog.Detail = strings.Join(notes, "; ")
			if len(prog.Waiting) == 0 {
				activity.RecordHeartbeat(ctx, prog)
				return MongoWaitReadyOutput{Status: status, Polls: prog.Polls}, nil
			}
		}
		activity.RecordHeartbeat(ctx, prog)
		if err := sleepCtx(ctx, every); err != nil {
			return MongoWaitReadyOutput{}, temporal.NewApplicationError(
				fmt.Sprintf("wait for members: %v; still waiting: %s", err, prog.Detail), ErrMongoNotReady)
		}
	}
}

func statusOf(ss []MongoMemberStatus, host string) *MongoMemberStatus {
	for i := range ss {
		if ss[i].Host == host {
			return &ss[i]
		}
	}
	return nil
}

// WaitPrimary polls until a writable primary carries RegionTag=Region, or Timeout passes
// (Found false). The region is checked on the primary's own hello (its tags), so a stale
// status view from a secondary cannot confirm a move that did not happen.
func (m *Mongo) WaitPrimary(ctx context.Context, in MongoWaitPrimaryInput) (MongoWaitPrimaryOutput, error) {
	var prog mongoWaitProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &prog)
	}
	c, err := m.client(in.Conn, "")
	if err != nil {
		return MongoWaitPrimaryOutput{}, err
	}
	deadline := time.Now().Add(in.Timeout)
	every := pollEvery(in.PollInterval)
	out := MongoWaitPrimaryOutput{}
	for {
		prog.Polls++
		out.Polls = prog.Polls
		host, tags, err := m.helloPrimary(ctx, c, min(every*4, 2*time.Second))
		switch {
		case err != nil:
			prog.Detail = "no writable primary yet: " + err.Error()
		case tags[in.RegionTag] == in.Region:
			out.Found, out.Primary, out.Region = true, host, tags[in.RegionTag]
			if _, _, st, err := m.read(ctx, in.Conn, readpref.PrimaryPreferred()); err == nil {
				out.Status = st
			}
			activity.RecordHeartbeat(ctx, prog)
			return out, nil
		default:
			out.Primary, out.Region = host, tags[in.RegionTag]
			prog.Detail = fmt.Sprintf("primary %s is in %s=%q", host, in.RegionTag, tags[in.RegionTag])
		}
		activity.RecordHeartbeat(ctx, prog)
		if !time.Now().Before(deadline) {
			if _, _, st, err := m.read(ctx, in.Conn, readpref.PrimaryPreferred()); err == nil {
				out.Status = st
			}
			return out, nil
		}
		if err := sleepCtx(ctx, min(every, time.Until(deadline)+time.Millisecond)); err != nil {
			return out, fmt.Errorf("wait for a primary in %s: %w", in.Region, err)
		}
	}
}

// helloPrimary asks the primary (as the driver's topology knows it) who it is.
func (m *Mongo) helloPrimary(ctx context.Context, c *mongo.Client, timeout time.Duration) (string, map[string]string, error) {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := runCmd(hctx, c, nil, bson.D{{Key: "hello", Value: 1}})
	if err != nil {
		return "", nil, err
	}
	if w, _ := raw.Lookup("isWritablePrimary").BooleanOK(); !w {
		return "", nil, errors.New("the server selected as primary is not writable")
	}
	me, _ := raw.Lookup("me").StringValueOK()
	tags := map[string]string{}
	if td, ok := raw.Lookup("tags").DocumentOK(); ok {
		_ = bson.Unmarshal(td, &tags)
	}
	return me, tags, nil
}

// StepDown asks the primary to step down with a catch-up period, unless it already is in
// Region. While it waits for an electable secondary to catch up, the primary takes no
// writes; then it hands the election to that secondary (election handoff), which is what
// keeps the window without a primary near one election.
func (m *Mongo) StepDown(ctx context.Context, in MongoStepDownInput) (MongoStepDownOutput, error) {
	defer keepAlive(ctx, "step down")()
	c, err := m.client(in.Conn, "")
	if err != nil {
		return MongoStepDownOutput{}, err
	}
	host, tags, err := m.helloPrimary(ctx, c, 10*time.Second)
	if err != nil {
		return MongoStepDownOutput{}, fmt.Errorf("find the primary to step down: %w", err)
	}
	if tags[in.RegionTag] == in.Region {
		return MongoStepDownOutput{Primary: host, Detail: "primary " + host + " is already in " + in.Region}, nil
	}
	secs := in.StepDownSecs
	if secs <= 0 {
		secs = 60
	}
	catchUp := in.CatchUpSecs
	if secs < catchUp {
		secs = catchUp + 1
	}
	cmd := bson.D{{Key: "replSetStepDown", Value: int32(secs)}, {Key: "secondaryCatchUpPeriodSecs", Value: int32(catchUp)}}
	_, err = runCmd(ctx, c, nil, cmd)
	if err != nil {
		var se mongo.ServerError
		if errors.As(err, &se) && se.HasErrorCode(codeExceededTimeLimit) {
			return MongoStepDownOutput{}, temporal.NewApplicationError(
				fmt.Sprintf("replSetStepDown on %s: no electable secondary caught up within %ds: %v", host, catchUp, err), ErrMongoStepDown)
		}
		// Old servers close connections on stepdown, and a primary that stepped down on
		// its own answers "not primary": either way, ask who leads now.
		if now, _, herr := m.helloPrimary(ctx, c, 10*time.Second); herr == nil && now != host {
			return MongoStepDownOutput{SteppedDown: true, Primary: host, Detail: fmt.Sprintf("%s no longer primary (%v); %s is", host, err, now)}, nil
		}
		return MongoStepDownOutput{}, classify("replSetStepDown on "+host, err)
	}
	return MongoStepDownOutput{SteppedDown: true, Primary: host, Detail: fmt.Sprintf("%s stepped down for %ds with a %ds catch-up period", host, secs, catchUp)}, nil
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
