package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/ferryhq/ferry/sandbox/mongosim"
)

// mongoSet starts three eu-west-1 members (the first primary) and two eu-west-2 members
// outside the config, with FastTiming.
func mongoSet(t *testing.T) (*mongosim.Cluster, MongoConn) {
	t.Helper()
	opts := mongosim.Options{SetName: "rs0", Timing: mongosim.FastTiming(), DataSizeMiB: 1}
	for i := range 3 {
		opts.Members = append(opts.Members, mongosim.MemberSpec{Region: "eu-west-1", InConfig: true, Priority: float64(2 - min(i, 1)), Votes: 1})
	}
	for range 2 {
		opts.Members = append(opts.Members, mongosim.MemberSpec{Region: "eu-west-2"})
	}
	c, err := mongosim.Start(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, MongoConn{URI: c.URI(), ReplicaSet: "rs0"}
}

func mongoEnv(t *testing.T) (*testsuite.TestActivityEnvironment, *Mongo) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	m := NewMongo(nil)
	t.Cleanup(func() { _ = m.Close() })
	env.RegisterActivity(m)
	return env, m
}

func appErr(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an application error, got %v", err)
	return ae
}

func TestMongoReadAndIdempotentReconfig(t *testing.T) {
	cluster, conn := mongoSet(t)
	env, m := mongoEnv(t)
	hosts := cluster.Hosts()

	v, err := env.ExecuteActivity(m.ReadReplicaSet, MongoReadInput{Conn: conn, Probe: hosts[3:]})
	require.NoError(t, err)
	var obs MongoReadOutput
	require.NoError(t, v.Get(&obs))
	require.Equal(t, "rs0", obs.Config.SetName)
	require.Len(t, obs.Config.Members, 3)
	require.Equal(t, hosts[0], obs.Primary)
	require.Equal(t, "eu-west-1", obs.Config.Members[0].Tags["region"])
	require.Len(t, obs.Probes, 2)
	for _, p := range obs.Probes {
		require.True(t, p.Reachable, p.Detail)
		require.Empty(t, p.SetName)
	}

	// Add both eu-west-2 members non-voting in one reconfig.
	next := append([]MongoMember{}, obs.Config.Members...)
	for _, h := range hosts[3:] {
		next = append(next, MongoMember{Host: h, Tags: map[string]string{"region": "eu-west-2"}})
	}
	in := MongoReconfigInput{Conn: conn, Step: "add", Prev: obs.Config.Members, Members: next, MaxTime: 10 * time.Second}
	v, err = env.ExecuteActivity(m.ApplyReconfig, in)
	require.NoError(t, err)
	var out MongoReconfigOutput
	require.NoError(t, v.Get(&out))
	require.False(t, out.Skipped)
	require.Equal(t, obs.Config.Version+1, out.Config.Version)
	require.Len(t, out.Config.Members, 5)

	// A retry of the same step (its answer lost) changes nothing.
	v, err = env.ExecuteActivity(m.ApplyReconfig, in)
	require.NoError(t, err)
	require.NoError(t, v.Get(&out))
	require.True(t, out.Skipped)
	require.Equal(t, obs.Config.Version+1, out.Config.Version)

	// A step planned from a config that is no longer live is refused, not guessed at.
	stale := append([]MongoMember{}, next...)
	stale[3].Votes = 1
	_, err = env.ExecuteActivity(m.ApplyReconfig, MongoReconfigInput{Conn: conn, Step: "vote", Prev: obs.Config.Members, Members: stale})
	ae := appErr(t, err)
	require.Equal(t, ErrMongoConfigDrift, ae.Type())
	require.True(t, ae.NonRetryable())

	// The server's own validation (votes:0 needs priority 0) is non-retryable.
	bad := append([]MongoMember{}, next...)
	bad[4].Priority = 1
	_, err = env.ExecuteActivity(m.ApplyReconfig, MongoReconfigInput{Conn: conn, Step: "bad", Prev: next, Members: bad})
	ae = appErr(t, err)
	require.Equal(t, ErrMongoInvalidConfig, ae.Type())
	require.True(t, ae.NonRetryable())

	// Two votes at once is refused before the server sees it.
	two := append([]MongoMember{}, next...)
	two[3].Votes, two[4].Votes = 1, 1
	_, err = env.ExecuteActivity(m.ApplyReconfig, MongoReconfigInput{Conn: conn, Step: "two", Prev: next, Members: two})
	require.Equal(t, ErrMongoInvalidConfig, appErr(t, err).Type())

	v, err = env.ExecuteActivity(m.WaitMembersReady, MongoWaitReadyInput{Conn: conn, Hosts: hosts[3:], MaxLag: time.Second, PollInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	var ready MongoWaitReadyOutput
	require.NoError(t, v.Get(&ready))
	for _, h := range hosts[3:] {
		st := statusOf(ready.Status, h)
		require.NotNil(t, st)
		require.Equal(t, "SECONDARY", st.State)
	}
	for _, e := range cluster.Events() {
		if e.Kind == mongosim.EventReconfig {
			require.LessOrEqual(t, e.Reconfig.VotingChanges, 1)
		}
	}
}

func TestMongoWaitPrimaryAndStepDown(t *testing.T) {
	cluster, conn := mongoSet(t)
	env, m := mongoEnv(t)
	v, err := env.ExecuteActivity(m.WaitPrimary, MongoWaitPrimaryInput{Conn: conn, RegionTag: "region", Region: "eu-west-1", Timeout: 5 * time.Second, PollInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	var wp MongoWaitPrimaryOutput
	require.NoError(t, v.Get(&wp))
	require.True(t, wp.Found)
	require.Equal(t, cluster.Hosts()[0], wp.Primary)

	v, err = env.ExecuteActivity(m.WaitPrimary, MongoWaitPrimaryInput{Conn: conn, RegionTag: "region", Region: "eu-west-2", Timeout: 100 * time.Millisecond, PollInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, v.Get(&wp))
	require.False(t, wp.Found, "no member of eu-west-2 is in the set")

	// Already in the region: no stepdown.
	v, err = env.ExecuteActivity(m.StepDown, MongoStepDownInput{Conn: conn, RegionTag: "region", Region: "eu-west-1", CatchUpSecs: 1})
	require.NoError(t, err)
	var sd MongoStepDownOutput
	require.NoError(t, v.Get(&sd))
	require.False(t, sd.SteppedDown)

	old := cluster.Primary()
	v, err = env.ExecuteActivity(m.StepDown, MongoStepDownInput{Conn: conn, RegionTag: "region", Region: "eu-west-2", StepDownSecs: 30, CatchUpSecs: 1})
	require.NoError(t, err)
	require.NoError(t, v.Get(&sd))
	require.True(t, sd.SteppedDown, sd.Detail)
	deadline := time.Now().Add(10 * time.Second)
	for cluster.Primary() == "" || cluster.Primary() == old {
		require.True(t, time.Now().Before(deadline), "no new primary after the stepdown")
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMongoSecretResolution(t *testing.T) {
	t.Setenv("FERRY_TEST_MONGO_PW", "s3cret")
	pw, err := resolveSecret(MongoSecret{Env: "FERRY_TEST_MONGO_PW"})
	require.NoError(t, err)
	require.Equal(t, "s3cret", pw)

	_, err = resolveSecret(MongoSecret{Env: "FERRY_TEST_MONGO_PW_UNSET"})
	ae := appErr(t, err)
	require.Equal(t, ErrMongoSecret, ae.Type())
	require.NotContains(t, err.Error(), "s3cret")

	_, err = resolveSecret(MongoSecret{File: t.TempDir() + "/missing"})
	require.Equal(t, ErrMongoSecret, appErr(t, err).Type())
}
