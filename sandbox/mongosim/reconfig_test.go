package mongosim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

func TestReconfigRejections(t *testing.T) {
	c := testSet(t, nil)
	hosts := c.Hosts()
	cl := connect(t, c.URI())
	pingPrimary(t, cl)

	cases := []struct {
		name   string
		mutate func(cfg *testConfig)
		code   int32
		msg    string
	}{
		{"version not increasing", func(cfg *testConfig) {}, 103,
			"New replica set configuration version must be greater than old, but 1 is not greater than 1 for replica set rs0"},
		{"two voters added", func(cfg *testConfig) {
			cfg.Version++
			addMember(cfg, 10, hosts[3], 1, 1)
			addMember(cfg, 11, hosts[4], 1, 1)
		}, 103, "Non force replica set reconfig can only add or remove at most 1 voting member."},
		{"non-voter with priority", func(cfg *testConfig) {
			cfg.Version++
			addMember(cfg, 10, hosts[3], 1, 0)
		}, 93, "priority must be 0 when non-voting (votes:0)"},
		{"eight voters", func(cfg *testConfig) {
			cfg.Version++
			for i := range 5 {
				addMember(cfg, 10+i, fmt.Sprintf("127.0.0.1:%d", 1+i), 1, 1)
			}
		}, 93, "Replica set configuration contains 8 voting members, but must be at least 1 and no more than 7"},
		{"duplicate host", func(cfg *testConfig) {
			cfg.Version++
			addMember(cfg, 10, hosts[1], 0, 0)
		}, 93, "Found two member configurations with same host field, members.1.host == members.3.host == " + hosts[1]},
		{"duplicate _id", func(cfg *testConfig) {
			cfg.Version++
			addMember(cfg, 1, hosts[3], 0, 0)
		}, 93, "Found two member configurations with same _id field, members.1._id == members.3._id == 1"},
		{"wrong set name", func(cfg *testConfig) {
			cfg.Version++
			cfg.ID = "other"
		}, 93, "New and old configurations differ in replica set name; old was rs0, and new is other"},
		{"votes 2", func(cfg *testConfig) {
			cfg.Version++
			addMember(cfg, 10, hosts[3], 1, 2)
		}, 93, "votes field value is 2 but must be 0 or 1"},
		{"no electable member", func(cfg *testConfig) {
			cfg.Version++
			for i := range cfg.Members {
				cfg.Members[i].Priority = 0
			}
		}, 93, "Replica set configuration must contain at least one non-arbiter member with priority > 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := getConfig(t, cl)
			tc.mutate(cfg)
			err := reconfig(t, cl, cfg)
			require.Error(t, err)
			require.Equal(t, tc.code, code(err), err.Error())
			require.Contains(t, err.Error(), tc.msg)
		})
	}

	t.Run("on a secondary", func(t *testing.T) {
		sec := direct(t, hosts[1])
		cfg := getConfig(t, sec)
		cfg.Version++
		err := reconfig(t, sec, cfg)
		require.Equal(t, int32(10107), code(err), "%v", err)
		require.Contains(t, err.Error(), "replSetReconfig should only be run on a writable PRIMARY. Current state SECONDARY;")
	})

	t.Run("quorum check fails with a voter down", func(t *testing.T) {
		require.NoError(t, c.StopMember(hosts[2]))
		t.Cleanup(func() { _ = c.RestartMember(hosts[2]) })
		cfg := getConfig(t, cl)
		cfg.Version++
		addMember(cfg, 10, "127.0.0.1:1", 1, 1) // 4 voters need 3; only 2 answer
		err := reconfig(t, cl, cfg)
		require.Equal(t, int32(74), code(err), "%v", err)
		require.Contains(t, err.Error(), "Quorum check failed because not enough voting nodes responded; required 3 but only the following 2 voting nodes responded")
	})

	// Nothing above was installed.
	require.Equal(t, 1, getConfig(t, cl).Version)
	for _, e := range c.Events() {
		require.NotEqual(t, EventReconfig, e.Kind)
	}
}

func TestReconfigWaitsForCommitmentAndRejectsWhileUncommitted(t *testing.T) {
	c := testSet(t, func(o *Options) { o.Timing.ConfigPropagation = 700 * time.Millisecond })
	hosts := c.Hosts()
	cl := connect(t, c.URI())
	pingPrimary(t, cl)

	cfg := getConfig(t, cl)
	cfg.Version++
	addMember(cfg, 10, hosts[3], 0, 0)
	err := reconfig(t, cl, cfg, bson.E{Key: "maxTimeMS", Value: 100})
	require.Equal(t, int32(50), code(err), "%v", err)
	require.Contains(t, err.Error(), "Reconfig finished but failed to propagate to a majority")

	// The config was installed but is not majority committed yet.
	var gc struct {
		Config           testConfig `bson:"config"`
		CommitmentStatus bool       `bson:"commitmentStatus"`
	}
	r := mustRun(t, cl, bson.D{{Key: "replSetGetConfig", Value: 1}, {Key: "commitmentStatus", Value: true}})
	require.NoError(t, bson.Unmarshal(r, &gc))
	require.Equal(t, 2, gc.Config.Version)
	require.False(t, gc.CommitmentStatus)

	// A second reconfig must wait for the first to commit; with a short
	// maxTimeMS it gives up with CurrentConfigNotCommittedYet.
	cfg = &gc.Config
	cfg.Version++
	cfg.Members[3].Votes = 1
	err = reconfig(t, cl, cfg, bson.E{Key: "maxTimeMS", Value: 100})
	require.Equal(t, int32(308), code(err), "%v", err)
	require.Contains(t, err.Error(), "New config is rejected")

	// Without a limit it waits, then succeeds once version 2 is committed, and
	// returns only when its own config is committed.
	start := time.Now()
	require.NoError(t, reconfig(t, cl, cfg))
	require.Greater(t, time.Since(start), 300*time.Millisecond)
	r = mustRun(t, cl, bson.D{{Key: "replSetGetConfig", Value: 1}, {Key: "commitmentStatus", Value: true}})
	require.NoError(t, bson.Unmarshal(r, &gc))
	require.Equal(t, 3, gc.Config.Version)
	require.True(t, gc.CommitmentStatus)
}

// TestAddMemberThenMovePrimary walks ferry's primary move: add a member as
// votes:0 priority:0, watch initial sync, make it voting, raise its priority,
// and see the driver follow the priority takeover.
func TestAddMemberThenMovePrimary(t *testing.T) {
	c := testSet(t, func(o *Options) { o.Timing.InitialSyncMin = 300 * time.Millisecond })
	hosts := c.Hosts()
	cl := connect(t, c.URI())
	pingPrimary(t, cl)
	coll := cl.Database("app").Collection("orders")
	_, err := coll.InsertOne(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: "before"}})
	require.NoError(t, err)

	cfg := getConfig(t, cl)
	cfg.Version++
	addMember(cfg, 3, hosts[3], 0, 0)
	cfg.Members[3].Tags = map[string]string{"region": "us-east-1"}
	require.NoError(t, reconfig(t, cl, cfg))

	eventually(t, 5*time.Second, func() bool { return stateOf(t, cl, hosts[3]) == "STARTUP2" }, "STARTUP2")
	eventually(t, 5*time.Second, func() bool { return stateOf(t, cl, hosts[3]) == "SECONDARY" }, "SECONDARY")

	// The new member's hello now belongs to the set, as a passive member.
	var hello bson.M
	require.NoError(t, bson.Unmarshal(mustRun(t, direct(t, hosts[3]), bson.D{{Key: "hello", Value: 1}}), &hello))
	require.Equal(t, "rs0", hello["setName"])
	require.Equal(t, true, hello["passive"])
	require.Contains(t, hello["passives"], hosts[3])

	// Its data arrived through initial sync.
	n, err := direct(t, hosts[3]).Database("app").Collection("orders").CountDocuments(ctxT(t, 5*time.Second), bson.D{})
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	// Make it voting (one vote change), then raise its priority above the primary's.
	cfg = getConfig(t, cl)
	cfg.Version++
	cfg.Members[3].Votes = 1
	require.NoError(t, reconfig(t, cl, cfg))
	cfg = getConfig(t, cl)
	cfg.Version++
	cfg.Members[3].Priority = 5
	require.NoError(t, reconfig(t, cl, cfg))

	eventually(t, 5*time.Second, func() bool { return c.Primary() == hosts[3] }, "priority takeover")
	// The same client follows: its next write lands on the new primary.
	_, err = coll.InsertOne(ctxT(t, 10*time.Second), bson.D{{Key: "_id", Value: "after"}})
	require.NoError(t, err)
	var doc bson.M
	require.NoError(t, direct(t, hosts[3]).Database("app").Collection("orders").
		FindOne(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: "after"}}).Decode(&doc))

	var elections, reconfigs int
	for _, e := range c.Events() {
		switch e.Kind {
		case EventElection:
			elections++
			require.Equal(t, "priority takeover", e.Election.Reason)
			require.Equal(t, hosts[3], e.Election.Winner)
			require.Equal(t, int64(2), e.Election.Term)
		case EventReconfig:
			reconfigs++
			require.LessOrEqual(t, e.Reconfig.VotingChanges, 1)
		}
	}
	require.Equal(t, 1, elections)
	require.Equal(t, 3, reconfigs)
}

func TestStepDown(t *testing.T) {
	c := testSet(t, nil)
	hosts := c.Hosts()
	cl := connect(t, c.URI())
	pingPrimary(t, cl)
	prim := direct(t, hosts[0])

	// With both secondaries lagging far behind, nobody catches up within 1 s.
	require.NoError(t, c.SetLag(hosts[1], time.Hour))
	require.NoError(t, c.SetLag(hosts[2], time.Hour))
	w1 := cl.Database("app").Collection("x", options.Collection().SetWriteConcern(writeconcern.W1()))
	_, err := w1.InsertOne(ctxT(t, 5*time.Second), bson.D{{Key: "a", Value: 1}})
	require.NoError(t, err)
	err = stepDown(t, prim, 60, 1)
	require.Equal(t, int32(262), code(err), "%v", err)
	require.Contains(t, err.Error(), "No electable secondaries caught up as of")
	require.Equal(t, hosts[0], c.Primary())

	// Once a secondary can catch up, stepdown succeeds and it is handed the election.
	require.NoError(t, c.SetLag(hosts[1], 0))
	require.NoError(t, stepDown(t, prim, 60, 5))
	eventually(t, 5*time.Second, func() bool { return c.Primary() == hosts[1] }, "handoff to the caught-up secondary")
	// The old primary can't run for 60 s, even with the highest priority.
	require.Never(t, func() bool { return c.Primary() == hosts[0] }, 4*c.timing.PriorityTakeoverDelay, 20*time.Millisecond)
}

func stepDown(t *testing.T, cl *mongo.Client, secs, catchUp int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return cl.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetStepDown", Value: secs},
		{Key: "secondaryCatchUpPeriodSecs", Value: catchUp}}).Err()
}

func TestRemoveMemberAndAddArbiter(t *testing.T) {
	c := testSet(t, nil)
	hosts := c.Hosts()
	cl := connect(t, c.URI())
	pingPrimary(t, cl)

	cfg := getConfig(t, cl)
	cfg.Version++
	cfg.Members = cfg.Members[:2] // drop hosts[2]: one voter fewer
	require.NoError(t, reconfig(t, cl, cfg))
	removed := direct(t, hosts[2])
	eventually(t, 5*time.Second, func() bool {
		r, err := run(t, removed, bson.D{{Key: "hello", Value: 1}})
		return err == nil && r.Lookup("setName").Type == 0 && r.Lookup("isreplicaset").Boolean()
	}, "removed member to leave the set")

	cfg = getConfig(t, cl)
	cfg.Version++
	cfg.Members = append(cfg.Members, testMember{ID: 5, Host: hosts[3], ArbiterOnly: true, Votes: 1})
	require.NoError(t, reconfig(t, cl, cfg))
	eventually(t, 5*time.Second, func() bool { return stateOf(t, cl, hosts[3]) == "ARBITER" }, "ARBITER")
	var hello bson.M
	require.NoError(t, bson.Unmarshal(mustRun(t, cl, bson.D{{Key: "hello", Value: 1}}), &hello))
	require.Contains(t, hello["arbiters"], hosts[3])

	// The arbiter holds no data, so w:majority still needs both data-bearing members.
	_, err := cl.Database("app").Collection("x").InsertOne(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: 1}})
	require.NoError(t, err)
}

// TestForceReconfigRecoversLostMajority is the disaster-recovery procedure:
// with a majority down, a forced config on a survivor makes it electable alone.
func TestForceReconfigRecoversLostMajority(t *testing.T) {
	c := testSet(t, nil)
	hosts := c.Hosts()
	require.NoError(t, c.StopMember(hosts[0]))
	require.NoError(t, c.StopMember(hosts[2]))
	survivor := direct(t, hosts[1])
	cfg := getConfig(t, survivor)
	cfg.Members = cfg.Members[1:2]

	err := reconfig(t, survivor, cfg)
	require.Equal(t, int32(10107), code(err), "without force a secondary refuses: %v", err)
	require.NoError(t, reconfig(t, survivor, cfg, bson.E{Key: "force", Value: true}))
	eventually(t, 5*time.Second, func() bool { return c.Primary() == hosts[1] }, "survivor elected")
	got := getConfig(t, survivor)
	require.Greater(t, got.Version, 10000)
	var forced bool
	for _, e := range c.Events() {
		if e.Kind == EventReconfig && e.Reconfig.Force {
			forced = true
			require.Equal(t, 2, e.Reconfig.VotingChanges)
		}
	}
	require.True(t, forced)
}
