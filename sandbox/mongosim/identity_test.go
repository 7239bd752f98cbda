package mongosim

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestTwoSetsNamedAlikeDiffer: two sets named rs0 (two companies' rs0) each report their
// own settings.replicaSetId, the one ReplicaSetID returns, and a fault names a set by its
// ID, not by the name they share.
func TestTwoSetsNamedAlikeDiffer(t *testing.T) {
	a := testSet(t, nil)
	b := testSet(t, func(o *Options) { o.ID = "rs0-b" })
	assert.Equal(t, "rs0", a.ID(), "the id defaults to the name")
	assert.Equal(t, "rs0", b.SetName())
	assert.Equal(t, "rs0-b", b.ID())
	require.NotEqual(t, a.ReplicaSetID(), b.ReplicaSetID())
	assert.NotEqual(t, a.URI(), b.URI())

	for _, c := range []*Cluster{a, b} {
		cfg := mustRun(t, connect(t, c.URI()), bson.D{{Key: "replSetGetConfig", Value: 1}})
		assert.Equal(t, "rs0", cfg.Lookup("config", "_id").StringValue())
		oid, ok := cfg.Lookup("config", "settings", "replicaSetId").ObjectIDOK()
		require.True(t, ok, "settings.replicaSetId is an ObjectId: %s", cfg)
		assert.Equal(t, c.ReplicaSetID(), oid)
	}

	var fe *FaultError
	require.ErrorAs(t, b.ApplyFault(Fault{ID: "f1", Target: "mongo:rs0:*", Kind: FaultDown}), &fe)
	assert.Equal(t, "target", fe.Field)
	require.NoError(t, b.ApplyFault(Fault{ID: "f2", Target: "mongo:rs0-b:*", Kind: FaultPartition}))
	require.NoError(t, b.ClearFault("f2"))
}
