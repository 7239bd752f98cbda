package mongosim

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
)

func TestWriteConcernMajorityWaitsForReplication(t *testing.T) {
	c := testSet(t, nil)
	hosts := c.Hosts()
	cl := connect(t, c.URI())
	pingPrimary(t, cl)
	maj := cl.Database("app").Collection("x", options.Collection().SetWriteConcern(writeconcern.Majority()))
	w1 := cl.Database("app").Collection("x", options.Collection().SetWriteConcern(writeconcern.W1()))

	const lag = 300 * time.Millisecond
	require.NoError(t, c.SetLag(hosts[1], lag))
	require.NoError(t, c.SetLag(hosts[2], lag))
	start := time.Now()
	_, err := maj.InsertOne(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: "m"}})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), lag, "w:majority returned before a majority applied the write")

	start = time.Now()
	_, err = w1.InsertOne(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: "one"}})
	require.NoError(t, err)
	require.Less(t, time.Since(start), lag, "w:1 waited for replication")

	// wtimeout is honoured with WriteConcernFailed; the write itself stays applied.
	require.NoError(t, c.SetLag(hosts[1], time.Hour))
	require.NoError(t, c.SetLag(hosts[2], time.Hour))
	// The v2 driver has no wtimeout option (it uses timeoutMS), so send the command as written.
	_, err = cl.Database("app").RunCommand(ctxT(t, 5*time.Second), bson.D{{Key: "insert", Value: "x"},
		{Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: "slow"}}}},
		{Key: "writeConcern", Value: bson.D{{Key: "w", Value: "majority"}, {Key: "wtimeout", Value: 100}}}}).Raw()
	var we mongo.WriteException
	require.ErrorAs(t, err, &we)
	require.NotNil(t, we.WriteConcernError)
	require.Equal(t, 64, we.WriteConcernError.Code)
	require.Equal(t, "WriteConcernFailed", we.WriteConcernError.Name)
	require.Equal(t, "waiting for replication timed out", we.WriteConcernError.Message)
	n, err := w1.CountDocuments(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: "slow"}})
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
}

// TestNoAcknowledgedWriteLostAcrossStepDown measures the write outage of a
// primary move as a client sees it and checks every acknowledged write survives.
func TestNoAcknowledgedWriteLostAcrossStepDown(t *testing.T) {
	c := testSet(t, func(o *Options) { o.Timing.ElectionTime = 300 * time.Millisecond })
	hosts := c.Hosts()
	cl := connect(t, c.URI())
	pingPrimary(t, cl)
	coll := cl.Database("app").Collection("ledger", options.Collection().SetWriteConcern(writeconcern.Majority()))

	var (
		mu       sync.Mutex
		acked    []int
		failures int
		maxGap   time.Duration
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := time.Now()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}})
			cancel()
			mu.Lock()
			if err != nil {
				failures++
			} else {
				acked = append(acked, i)
				maxGap = max(maxGap, time.Since(last))
				last = time.Now()
			}
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	eventually(t, 10*time.Second, func() bool { return count() >= 30 }, "writes before the stepdown")
	require.NoError(t, stepDown(t, direct(t, hosts[0]), 60, 5))
	eventually(t, 10*time.Second, func() bool { p := c.Primary(); return p != "" && p != hosts[0] }, "a new primary")
	before := count()
	eventually(t, 10*time.Second, func() bool { return count() >= before+30 }, "writes after the stepdown")
	close(stop)
	<-done

	newPrimary := c.Primary()
	pc := direct(t, newPrimary).Database("app").Collection("ledger")
	cur, err := pc.Find(ctxT(t, 5*time.Second), bson.D{})
	require.NoError(t, err)
	var docs []struct {
		ID int `bson:"_id"`
	}
	require.NoError(t, cur.All(ctxT(t, 5*time.Second), &docs))
	present := map[int]bool{}
	for _, d := range docs {
		present[d.ID] = true
	}
	for _, id := range acked {
		require.True(t, present[id], "acknowledged write %d lost", id)
	}
	var outage int64
	for _, e := range c.Events() {
		if e.Kind == EventElection && e.Election.Winner == newPrimary {
			require.Equal(t, "stepdown", e.Election.Reason)
			outage = e.Election.NoWritablePrimaryMs
		}
	}
	require.GreaterOrEqual(t, outage, int64(300), "the record shows the window without a writable primary")
	require.GreaterOrEqual(t, maxGap, 300*time.Millisecond, "a client saw the outage")
	t.Logf("acked %d writes, %d failed, longest gap between acks %v, recorded outage %d ms", len(acked), failures, maxGap, outage)
}

// TestRollbackOfUnreplicatedW1Writes isolates the primary: the w:1 writes it
// takes alone are rolled back when it rejoins; the majority-acknowledged one is kept.
func TestRollbackOfUnreplicatedW1Writes(t *testing.T) {
	c := testSet(t, nil)
	hosts := c.Hosts()
	cl := connect(t, c.URI())
	pingPrimary(t, cl)
	_, err := cl.Database("app").Collection("x").InsertOne(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: "kept"}})
	require.NoError(t, err)

	old := direct(t, hosts[0]).Database("app").Collection("x", options.Collection().SetWriteConcern(writeconcern.W1()))
	require.NoError(t, c.Partition(hosts[0], true))
	for i := range 3 {
		_, err := old.InsertOne(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: i}})
		require.NoError(t, err, "an isolated primary still takes w:1 writes until it notices")
	}
	eventually(t, 10*time.Second, func() bool { p := c.Primary(); return p != "" && p != hosts[0] }, "election on the majority side")
	_, err = cl.Database("app").Collection("x").InsertOne(ctxT(t, 10*time.Second), bson.D{{Key: "_id", Value: "new"}})
	require.NoError(t, err)

	require.NoError(t, c.Partition(hosts[0], false))
	var rb *RollbackEvent
	eventually(t, 10*time.Second, func() bool {
		for _, e := range c.Events() {
			if e.Kind == EventRollback && e.Member == hosts[0] {
				rb = e.Rollback
				return true
			}
		}
		return false
	}, "rollback on the old primary")
	require.Equal(t, 3, rb.Entries)
	for _, op := range rb.Ops {
		require.Equal(t, "i", op.Op)
		require.Equal(t, "app.x", op.NS)
	}

	// The old primary now has the new history: kept and new, not the lost writes.
	read := direct(t, hosts[0]).Database("app").Collection("x")
	eventually(t, 5*time.Second, func() bool {
		n, err := read.CountDocuments(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: "new"}})
		return err == nil && n == 1
	}, "old primary to replicate the new primary's write")
	n, err := read.CountDocuments(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{0, 1, 2}}}}})
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = read.CountDocuments(ctxT(t, 5*time.Second), bson.D{{Key: "_id", Value: "kept"}})
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
}

func TestRetriedWriteIsNotAppliedTwice(t *testing.T) {
	c := testSet(t, nil)
	cl := connect(t, c.URI())
	pingPrimary(t, cl)
	lsid := bson.D{{Key: "id", Value: bson.Binary{Subtype: 4, Data: make([]byte, 16)}}}
	cmd := bson.D{{Key: "insert", Value: "x"}, {Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "_id", Value: 2}}}},
		{Key: "lsid", Value: lsid}, {Key: "txnNumber", Value: int64(7)}}
	for range 2 {
		var res struct {
			N           int      `bson:"n"`
			WriteErrors []bson.M `bson:"writeErrors"`
		}
		r, err := cl.Database("app").RunCommand(ctxT(t, 5*time.Second), cmd).Raw()
		require.NoError(t, err)
		require.NoError(t, bson.Unmarshal(r, &res))
		require.Equal(t, 2, res.N)
		require.Empty(t, res.WriteErrors, "a retry of the same txnNumber is answered from history")
	}
}
