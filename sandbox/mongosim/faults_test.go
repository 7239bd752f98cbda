package mongosim

import (
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/ferryhq/ferry/sandbox/mongosim/wire"
)

func target(c *Cluster, host string) string {
	_, port, _ := net.SplitHostPort(host)
	return "mongo:" + c.SetName() + ":" + port
}

func TestPrimaryDownElectsAndRestartCatchesUp(t *testing.T) {
	c := testSet(t, nil)
	hosts := c.Hosts()
	cl := connect(t, c.URI())
	pingPrimary(t, cl)
	coll := cl.Database("app").Collection("x")

	require.NoError(t, c.ApplyFault(Fault{ID: "f1", Target: target(c, hosts[0]), Kind: FaultDown}))
	_, err := net.DialTimeout("tcp", hosts[0], time.Second)
	require.Error(t, err, "a stopped member's port is closed")
	eventually(t, 10*time.Second, func() bool { p := c.Primary(); return p != "" && p != hosts[0] }, "election after primary down")
	for i := range 5 {
		_, err := coll.InsertOne(ctxT(t, 10*time.Second), bson.D{{Key: "_id", Value: i}})
		require.NoError(t, err)
	}
	require.Equal(t, "(not reachable/healthy)", stateOf(t, direct(t, c.Primary()), hosts[0]))

	require.NoError(t, c.ClearFault("f1"))
	// It rejoins, catches up, and being the highest priority takes the primary back.
	old := direct(t, hosts[0]).Database("app").Collection("x")
	eventually(t, 10*time.Second, func() bool {
		n, err := old.CountDocuments(ctxT(t, 5*time.Second), bson.D{})
		return err == nil && n == 5
	}, "restarted member to catch up")
	eventually(t, 10*time.Second, func() bool { return c.Primary() == hosts[0] }, "priority takeover after restart")

	var reasons []string
	for _, e := range c.Events() {
		if e.Kind == EventElection && e.Election.Winner != "" {
			reasons = append(reasons, e.Election.Reason)
		}
	}
	require.Equal(t, []string{"no primary", "priority takeover"}, reasons)
}

func TestSlowSyncAndLagFaults(t *testing.T) {
	c := testSet(t, func(o *Options) { o.Timing.InitialSyncMin = 50 * time.Millisecond })
	hosts := c.Hosts()
	cl := connect(t, c.URI())
	pingPrimary(t, cl)

	require.NoError(t, c.ApplyFault(Fault{ID: "slow", Target: target(c, hosts[3]), Kind: FaultSlowSync, Rate: 40}))
	cfg := getConfig(t, cl)
	cfg.Version++
	addMember(cfg, 3, hosts[3], 0, 0)
	require.NoError(t, reconfig(t, cl, cfg))
	eventually(t, 5*time.Second, func() bool { return stateOf(t, cl, hosts[3]) == "STARTUP2" }, "STARTUP2")
	// 50 ms x 40 = 2 s of initial sync; clearing the fault lets it finish now.
	require.Equal(t, "STARTUP2", stateOf(t, cl, hosts[3]))
	require.NoError(t, c.ClearFault("slow"))
	eventually(t, 5*time.Second, func() bool { return stateOf(t, cl, hosts[3]) == "SECONDARY" }, "SECONDARY")

	require.NoError(t, c.ApplyFault(Fault{ID: "lag", Target: target(c, hosts[1]), Kind: FaultLag, LatencyMs: 60000}))
	_, err := cl.Database("app").Collection("x").InsertOne(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: 1}})
	require.NoError(t, err) // majority = primary + hosts[2]
	eventually(t, 5*time.Second, func() bool {
		for _, m := range c.Members() {
			if m.Host == hosts[1] {
				return m.LagMillis > 0
			}
		}
		return false
	}, "lag to show")
}

func TestFaultValidation(t *testing.T) {
	c := testSet(t, nil)
	h := c.Hosts()[1]
	for _, tc := range []struct {
		f    Fault
		want string
	}{
		{Fault{Target: target(c, h), Kind: FaultDown}, "fault id"},
		{Fault{ID: "a", Target: "mongo:rs9:1", Kind: FaultDown}, "fault target"},
		{Fault{ID: "a", Target: "mongo:rs0:1", Kind: FaultDown}, "no member on port 1"},
		{Fault{ID: "a", Target: "redis:rs0:*", Kind: FaultDown}, "fault target"},
		{Fault{ID: "a", Target: target(c, h), Kind: "melt"}, "fault kind"},
		{Fault{ID: "a", Target: target(c, h), Kind: FaultLag}, "fault latencyMs"},
		{Fault{ID: "a", Target: target(c, h), Kind: FaultSlowSync, Rate: -1}, "fault rate"},
	} {
		err := c.ApplyFault(tc.f)
		require.ErrorContains(t, err, tc.want, "%+v", tc.f)
	}
	require.ErrorContains(t, c.ClearFault("nope"), "not applied")
	require.NoError(t, c.ApplyFault(Fault{ID: "p", Target: "mongo:rs0:*", Kind: FaultPartition}))
	require.ErrorContains(t, c.ApplyFault(Fault{ID: "p", Target: "mongo:rs0:*", Kind: FaultPartition}), "already applied")
	require.Len(t, c.Faults(), 1)
	require.NoError(t, c.ClearFault("p"))

	// The record is JSON-friendly.
	b, err := json.Marshal(c.Events())
	require.NoError(t, err)
	require.Contains(t, string(b), `"kind":"fault"`)
	require.Contains(t, string(b), `"kind":"fault-cleared"`)
}

// TestPartitionedPrimaryStepsDown: the isolated primary notices it lost its
// majority and steps down; the others elect among themselves.
func TestPartitionedPrimaryStepsDown(t *testing.T) {
	c := testSet(t, nil)
	hosts := c.Hosts()
	require.NoError(t, c.Partition(hosts[0], true))
	eventually(t, 10*time.Second, func() bool {
		var hello bson.M
		r, err := run(t, direct(t, hosts[0]), bson.D{{Key: "hello", Value: 1}})
		return err == nil && bson.Unmarshal(r, &hello) == nil && hello["isWritablePrimary"] == false && hello["primary"] == nil
	}, "isolated primary to step down")
	eventually(t, 10*time.Second, func() bool { p := c.Primary(); return p == hosts[1] || p == hosts[2] }, "majority side election")
	var steps []string
	for _, e := range c.Events() {
		if e.Kind == EventStepDown {
			steps = append(steps, e.StepDown.Reason)
		}
	}
	require.Contains(t, steps, "lost majority")
}

// TestAwaitableHello checks the streaming protocol: the reply waits for a
// topology change (or maxAwaitTimeMS), and with exhaustAllowed further replies
// are pushed, each answering the previous one.
func TestAwaitableHello(t *testing.T) {
	c := testSet(t, nil)
	host := c.Hosts()[0]
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))

	send := func(id int32, flags uint32, cmd bson.D) {
		body, err := bson.Marshal(append(cmd, bson.E{Key: "$db", Value: "admin"}))
		require.NoError(t, err)
		_, err = conn.Write(wire.AppendMsg(nil, id, 0, flags, body))
		require.NoError(t, err)
	}
	recv := func() *wire.Message {
		m, err := wire.ReadMessage(conn, 0)
		require.NoError(t, err)
		return m
	}
	send(1, 0, bson.D{{Key: "hello", Value: 1}})
	first := recv().Msg.Body
	tv := first.Lookup("topologyVersion").Document()
	counter := tv.Lookup("counter").Int64()

	// Nothing changes: the reply comes after maxAwaitTimeMS with the same version.
	start := time.Now()
	send(2, 0, bson.D{{Key: "hello", Value: 1}, {Key: "topologyVersion", Value: tv}, {Key: "maxAwaitTimeMS", Value: int64(150)}})
	r := recv()
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	require.Equal(t, counter, r.Msg.Body.Lookup("topologyVersion", "counter").Int64())
	require.Zero(t, r.Msg.Flags&wire.FlagMoreToCome)

	// With exhaust: a change wakes the waiting hello, and the next change is pushed.
	send(3, wire.FlagExhaustAllowed, bson.D{{Key: "hello", Value: 1}, {Key: "topologyVersion", Value: tv}, {Key: "maxAwaitTimeMS", Value: int64(5000)}})
	require.NoError(t, c.Partition(c.Hosts()[2], true))
	r = recv()
	require.Equal(t, int32(3), r.Header.ResponseTo)
	require.NotZero(t, r.Msg.Flags&wire.FlagMoreToCome)
	c2 := r.Msg.Body.Lookup("topologyVersion", "counter").Int64()
	require.Greater(t, c2, counter)
	require.NoError(t, c.Partition(c.Hosts()[2], false))
	r2 := recv()
	require.Equal(t, r.Header.RequestID, r2.Header.ResponseTo)
	require.Greater(t, r2.Msg.Body.Lookup("topologyVersion", "counter").Int64(), c2)
}

func TestCloseReleasesEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	c, err := Start(t.Context(), Options{Members: []MemberSpec{{InConfig: true}, {InConfig: true}, {InConfig: true}, {}}, Timing: FastTiming()})
	require.NoError(t, err)
	hosts := c.Hosts()
	cl := connect(t, c.URI())
	pingPrimary(t, cl)
	require.NoError(t, c.StopMember(hosts[1]))
	require.NoError(t, c.RestartMember(hosts[1]))
	require.NoError(t, c.Close())
	for _, h := range hosts {
		_, err := net.DialTimeout("tcp", h, time.Second)
		require.Error(t, err, "listener %s still open", h)
	}
	// The driver's Disconnect tries endSessions against servers that are gone
	// until its context ends; keep that short.
	_ = cl.Disconnect(ctxT(t, 200*time.Millisecond))
	eventually(t, 5*time.Second, func() bool { return runtime.NumGoroutine() <= before+2 },
		fmt.Sprintf("goroutines to drain (before %d)", before))
}
