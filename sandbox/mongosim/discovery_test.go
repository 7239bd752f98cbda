package mongosim

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/ferryhq/ferry/sandbox/mongosim/wire"
)

func TestDriverDiscoversPrimaryAndWrites(t *testing.T) {
	c := testSet(t, nil)
	hosts := c.Hosts()
	require.Equal(t, hosts[0], c.Primary())
	cl := connect(t, c.URI())
	pingPrimary(t, cl)

	coll := cl.Database("app").Collection("orders")
	_, err := coll.InsertOne(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: 1}, {Key: "item", Value: "a"}})
	require.NoError(t, err)
	_, err = coll.InsertMany(ctxT(t, 5*time.Second), []any{bson.D{{Key: "item", Value: "b"}}, bson.D{{Key: "item", Value: "b"}}})
	require.NoError(t, err)

	n, err := coll.CountDocuments(ctxT(t, 5*time.Second), bson.D{{Key: "item", Value: "b"}})
	require.NoError(t, err)
	require.Equal(t, int64(2), n)

	var got bson.M
	require.NoError(t, coll.FindOne(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: 1}}).Decode(&got))
	require.Equal(t, "a", got["item"])

	// Duplicate _id is a write error with mongod's code.
	_, err = coll.InsertOne(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: 1}})
	require.Equal(t, int32(11000), code(err))

	// The hello the driver sees on an outside member marks it as not part of the set.
	var hello bson.M
	require.NoError(t, bson.Unmarshal(mustRun(t, direct(t, hosts[3]), bson.D{{Key: "hello", Value: 1}}), &hello))
	require.Equal(t, false, hello["isWritablePrimary"])
	require.Equal(t, true, hello["isreplicaset"])
	require.Equal(t, "Does not have a valid replica set config", hello["info"])
	require.NotContains(t, hello, "setName")

	// A secondary's hello is consistent with the primary's.
	require.NoError(t, bson.Unmarshal(mustRun(t, direct(t, hosts[1]), bson.D{{Key: "hello", Value: 1}}), &hello))
	require.Equal(t, "rs0", hello["setName"])
	require.Equal(t, hosts[0], hello["primary"])
	require.Equal(t, true, hello["secondary"])
	require.Equal(t, hosts[1], hello["me"])
	require.ElementsMatch(t, bson.A{hosts[0], hosts[1], hosts[2]}, hello["hosts"])
	require.Equal(t, bson.D{{Key: "region", Value: "eu-west-1"}}, hello["tags"])
	require.Equal(t, int32(21), hello["maxWireVersion"])

	// Reads on a secondary need secondaryOk; with a secondary read preference they work.
	eventually(t, 5*time.Second, func() bool {
		n, err := cl.Database("app").Collection("orders", options.Collection().SetReadPreference(readpref.Secondary())).
			CountDocuments(ctxT(t, 5*time.Second), bson.D{})
		return err == nil && n == 3
	}, "secondary to replicate")
}

func TestSecondaryRefusesWritesAndPrimaryOnlyReads(t *testing.T) {
	c := testSet(t, nil)
	sec := c.Hosts()[1]
	cl := direct(t, sec)
	_, err := cl.Database("app").RunCommand(ctxT(t, 5*time.Second),
		bson.D{{Key: "insert", Value: "x"}, {Key: "documents", Value: bson.A{bson.D{{Key: "a", Value: 1}}}}}).Raw()
	require.Equal(t, int32(10107), code(err))

	// In a single topology the driver always sends primaryPreferred, so it
	// cannot produce a primary-only read on a secondary: speak OP_MSG directly.
	reply := rawCommand(t, sec, bson.D{{Key: "find", Value: "x"}, {Key: "$db", Value: "app"}})
	require.Equal(t, int32(13435), reply.Lookup("code").Int32())
	require.Equal(t, "NotPrimaryNoSecondaryOk", reply.Lookup("codeName").StringValue())
	reply = rawCommand(t, sec, bson.D{{Key: "find", Value: "x"}, {Key: "$db", Value: "app"},
		{Key: "$readPreference", Value: bson.D{{Key: "mode", Value: "secondaryPreferred"}}}})
	require.Equal(t, 1.0, reply.Lookup("ok").Double())
}

// rawCommand sends one OP_MSG and returns the reply body.
func rawCommand(t *testing.T, host string, cmd bson.D) bson.Raw {
	t.Helper()
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	body, err := bson.Marshal(cmd)
	require.NoError(t, err)
	_, err = conn.Write(wire.AppendMsg(nil, 1, 0, 0, body))
	require.NoError(t, err)
	m, err := wire.ReadMessage(conn, 0)
	require.NoError(t, err)
	require.Equal(t, int32(1), m.Header.ResponseTo)
	return m.Msg.Body
}

func TestLegacyOpQueryHandshake(t *testing.T) {
	c := testSet(t, nil)
	conn, err := net.DialTimeout("tcp", c.Hosts()[0], 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	q, _ := bson.Marshal(bson.D{{Key: "isMaster", Value: 1}, {Key: "helloOk", Value: true}})
	_, err = conn.Write(wire.AppendQuery(nil, 5, 0, "admin.$cmd", 0, -1, q))
	require.NoError(t, err)
	hdr := make([]byte, wire.HeaderLen)
	_, err = io.ReadFull(conn, hdr)
	require.NoError(t, err)
	require.Equal(t, wire.OpReply, int32(binary.LittleEndian.Uint32(hdr[12:])))
	rest := make([]byte, int(binary.LittleEndian.Uint32(hdr))-wire.HeaderLen)
	_, err = io.ReadFull(conn, rest)
	require.NoError(t, err)
	docs, err := wire.ParseReply(rest)
	require.NoError(t, err)
	require.Len(t, docs, 1)
	require.True(t, docs[0].Lookup("ismaster").Boolean())
	require.True(t, docs[0].Lookup("helloOk").Boolean())
	require.Equal(t, "rs0", docs[0].Lookup("setName").StringValue())
}

func TestDemoOptionsShape(t *testing.T) {
	opts := DemoOptions(27017, "eu-west-1", "us-east-1")
	require.Equal(t, 27021, opts.Members[4].Port)
	for i := range opts.Members {
		opts.Members[i].Port = 0 // tests take free ports
	}
	opts.Timing = FastTiming()
	c, err := Start(t.Context(), opts)
	require.NoError(t, err)
	defer c.Close()
	ms := c.Members()
	require.Len(t, ms, 5)
	require.Equal(t, "PRIMARY", ms[0].State)
	require.Equal(t, []bool{true, true, true, false, false}, []bool{ms[0].InConfig, ms[1].InConfig, ms[2].InConfig, ms[3].InConfig, ms[4].InConfig})
	require.Equal(t, "us-east-1", ms[4].Region)
	require.Equal(t, "STARTUP", ms[4].State)
}
