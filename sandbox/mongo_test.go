package sandbox

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/mongosim"
	"github.com/ferryhq/ferry/sandbox/topology"
)

// sameNamedSets is the default topology with one copy of its rs0 per id ("" for none),
// every member on a free port.
func sameNamedSets(ids ...string) *topology.Topology {
	topo := topology.Default()
	base := topo.Mongo.ReplicaSets[0]
	topo.Mongo.ReplicaSets = nil
	for _, id := range ids {
		rs := base
		rs.ID = id
		rs.Members = nil
		for _, m := range base.Members {
			m.Port = 0
			rs.Members = append(rs.Members, m)
		}
		topo.Mongo.ReplicaSets = append(topo.Mongo.ReplicaSets, rs)
	}
	return topo
}

// startWithMongo starts the topology's sets and a sandbox routing mongo: faults to them.
func startWithMongo(t *testing.T, topo *topology.Topology) (*MongoSets, *control.Client) {
	t.Helper()
	ctx := context.Background()
	ms, err := StartMongo(ctx, topo, true, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ms.Close() })
	sb, err := Start(ctx, Options{Addr: "127.0.0.1:0", Topology: topo, Fast: true, Mongo: ms})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	return ms, &control.Client{BaseURL: sb.Addr()}
}

// replicaSetIDOf is settings.replicaSetId as a driver connected to uri reads it.
func replicaSetIDOf(t *testing.T, uri string) bson.ObjectID {
	t.Helper()
	cl, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	require.NoError(t, err)
	defer func() { _ = cl.Disconnect(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := cl.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetGetConfig", Value: 1}}).Raw()
	require.NoError(t, err)
	oid, ok := cfg.Lookup("config", "settings", "replicaSetId").ObjectIDOK()
	require.True(t, ok, "%s", cfg)
	return oid
}

// TestMongoTwoSetsNamedRs0: two companies' rs0 run side by side, told apart by id; each
// has its own replicaSetId and URI, and a fault aimed at one leaves the other alone.
func TestMongoTwoSetsNamedRs0(t *testing.T) {
	ctx := context.Background()
	topo := sameNamedSets("rs0", "rs0-b")
	ms, cc := startWithMongo(t, topo)

	assert.Equal(t, []string{"rs0", "rs0-b"}, ms.IDs())
	assert.Equal(t, ms.IDs(), ms.Names(), "Names returns ids")
	a, b := ms.Cluster("rs0"), ms.Cluster("rs0-b")
	require.NotNil(t, a)
	require.NotNil(t, b)
	assert.Equal(t, "rs0", b.SetName(), "the id is the sandbox's; drivers still see rs0")
	assert.NotEqual(t, a.ReplicaSetID(), b.ReplicaSetID())
	assert.NotEqual(t, a.URI(), b.URI())
	assert.Equal(t, a.ReplicaSetID(), replicaSetIDOf(t, a.URI()))
	assert.Equal(t, b.ReplicaSetID(), replicaSetIDOf(t, b.URI()))

	f, err := cc.AddFault(ctx, control.Fault{Target: "mongo:rs0-b:*", Kind: "down"})
	require.NoError(t, err)
	for _, m := range b.Members() {
		assert.False(t, m.Up, "%s of rs0-b is down", m.Host)
	}
	for _, m := range a.Members() {
		assert.True(t, m.Up, "%s of rs0 is untouched", m.Host)
	}
	events := ms.Events().(map[string][]mongosim.Event)
	assert.True(t, hasFault(events["rs0-b"], f.ID), "rs0-b recorded the fault")
	assert.False(t, hasFault(events["rs0"], f.ID), "rs0 did not")

	require.NoError(t, cc.DeleteFault(ctx, f.ID))
	for _, m := range b.Members() {
		assert.True(t, m.Up, "%s of rs0-b is back", m.Host)
	}
}

func hasFault(events []mongosim.Event, id string) bool {
	for _, e := range events {
		if e.Kind == mongosim.EventFault && e.Fault.ID == id {
			return true
		}
	}
	return false
}

// TestMongoSameNameNeedsIDs: two sets named rs0 without ids cannot be told apart, so the
// topology is refused with the fix, and so is starting them from a topology built in code.
func TestMongoSameNameNeedsIDs(t *testing.T) {
	topo := sameNamedSets("", "")
	err := topo.Validate() // also refuses the ports 0, which only code can ask for
	require.Error(t, err)
	assert.Contains(t, err.Error(), "mongo.replicaSets[1].id: mongo.replicaSets[0] is also named \"rs0\"")
	assert.Contains(t, err.Error(), "give one of them `id: rs0-b`")
	_, err = StartMongo(context.Background(), topo, true, nil)
	require.ErrorContains(t, err, `replica set id "rs0" is in the topology twice`)
	require.ErrorContains(t, err, "id: rs0-b")
}

// TestMongoFaultOnASharedNameIsRefused: when no set has the name as its id, a name two sets
// share could mean either, so the fault is refused under target with the ids to pick from;
// an id, or a name only one set has, is taken.
func TestMongoFaultOnASharedNameIsRefused(t *testing.T) {
	ctx := context.Background()
	topo := sameNamedSets("shop", "billing")
	ms, cc := startWithMongo(t, topo)

	_, err := cc.AddFault(ctx, control.Fault{Target: "mongo:rs0:*", Kind: "partition"})
	var ae *control.APIError
	require.True(t, errors.As(err, &ae), "%v", err)
	assert.Equal(t, http.StatusBadRequest, ae.Status)
	assert.Equal(t, "target", ae.Field, ae.Error())
	assert.Contains(t, ae.Error(), `2 replica sets are named "rs0" (ids shop, billing)`)
	assert.Nil(t, ms.Cluster("rs0"), "nor does a lookup guess")
	_, err = ms.Lookup("rs0")
	require.ErrorContains(t, err, "ids shop, billing")

	f, err := cc.AddFault(ctx, control.Fault{Target: "mongo:billing:*", Kind: "partition"})
	require.NoError(t, err)
	events := ms.Events().(map[string][]mongosim.Event)
	assert.True(t, hasFault(events["billing"], f.ID))
	assert.False(t, hasFault(events["shop"], f.ID))
	require.NoError(t, cc.DeleteFault(ctx, f.ID))
}

// TestMongoClusterByUniqueName: a set with an id is still found by its name while no other
// set shares it, and a fault naming it reaches it.
func TestMongoClusterByUniqueName(t *testing.T) {
	ctx := context.Background()
	topo := sameNamedSets("shop")
	ms, cc := startWithMongo(t, topo)
	require.NotNil(t, ms.Cluster("rs0"))
	assert.Same(t, ms.Cluster("shop"), ms.Cluster("rs0"))
	f, err := cc.AddFault(ctx, control.Fault{Target: "mongo:rs0:*", Kind: "partition"})
	require.NoError(t, err)
	require.True(t, hasFault(ms.Cluster("shop").Events(), f.ID))
	require.NoError(t, cc.DeleteFault(ctx, f.ID))
}
