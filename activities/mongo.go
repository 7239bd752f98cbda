package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
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
