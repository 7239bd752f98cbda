package mongosim

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
)

// testSet starts three voting members (the first, priority 2, is primary) and
// two members outside the config, all with FastTiming unless mod says otherwise.
func testSet(t *testing.T, mod func(*Options)) *Cluster {
	t.Helper()
	opts := Options{
		SetName: "rs0",
		Members: []MemberSpec{
			{Region: "eu-west-1", InConfig: true, Priority: 2, Votes: 1},
			{Region: "eu-west-1", InConfig: true, Priority: 1, Votes: 1},
			{Region: "eu-west-1", InConfig: true, Priority: 1, Votes: 1},
			{Region: "us-east-1"},
			{Region: "us-east-1"},
		},
		Timing:      FastTiming(),
		DataSizeMiB: 10,
	}
	if os.Getenv("MONGOSIM_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&opts)
	}
	c, err := Start(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	cl, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetHeartbeatInterval(500 * time.Millisecond).
		SetServerSelectionTimeout(10 * time.Second))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cl.Disconnect(ctx)
	})
	return cl
}

func direct(t *testing.T, host string) *mongo.Client { return connect(t, DirectURI(host)) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func run(t *testing.T, cl *mongo.Client, cmd bson.D) (bson.Raw, error) {
	t.Helper()
	return cl.Database("admin").RunCommand(ctxT(t, 15*time.Second), cmd).Raw()
}

func mustRun(t *testing.T, cl *mongo.Client, cmd bson.D) bson.Raw {
	t.Helper()
	r, err := run(t, cl, cmd)
	require.NoError(t, err, "command %v", cmd)
	return r
}

func code(err error) int32 {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var we mongo.WriteException
	if errors.As(err, &we) {
		if we.WriteConcernError != nil {
			return int32(we.WriteConcernError.Code)
		}
		if len(we.WriteErrors) > 0 {
			return int32(we.WriteErrors[0].Code)
		}
	}
	return 0
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testConfig is a replica set config as a client would model it.
type testConfig struct {
	ID                                 string       `bson:"_id"`
	Version                            int          `bson:"version"`
	Term                               int64        `bson:"term"`
	Members                            []testMember `bson:"members"`
	ProtocolVersion                    int64        `bson:"protocolVersion"`
	WriteConcernMajorityJournalDefault bool         `bson:"writeConcernMajorityJournalDefault"`
	Settings                           bson.Raw     `bson:"settings,omitempty"`
}

type testMember struct {
	ID                 int               `bson:"_id"`
	Host               string            `bson:"host"`
	ArbiterOnly        bool              `bson:"arbiterOnly"`
	BuildIndexes       bool              `bson:"buildIndexes"`
	Hidden             bool              `bson:"hidden"`
	Priority           float64           `bson:"priority"`
	Tags               map[string]string `bson:"tags"`
	SecondaryDelaySecs int64             `bson:"secondaryDelaySecs"`
	Votes              int               `bson:"votes"`
}

// getConfig reads the config through cl.
func getConfig(t *testing.T, cl *mongo.Client) *testConfig {
	t.Helper()
	var out struct {
		Config testConfig `bson:"config"`
	}
	r := mustRun(t, cl, bson.D{{Key: "replSetGetConfig", Value: 1}})
	require.NoError(t, bson.Unmarshal(r, &out))
	return &out.Config
}

// reconfig runs replSetReconfig with cfg through cl.
func reconfig(t *testing.T, cl *mongo.Client, cfg *testConfig, extra ...bson.E) error {
	t.Helper()
	cmd := append(bson.D{{Key: "replSetReconfig", Value: cfg}}, extra...)
	_, err := run(t, cl, cmd)
	return err
}

func addMember(cfg *testConfig, id int, host string, priority float64, votes int) {
	cfg.Members = append(cfg.Members, testMember{ID: id, Host: host, Priority: priority, Votes: votes, BuildIndexes: true})
}

func stateOf(t *testing.T, cl *mongo.Client, host string) string {
	t.Helper()
	var st struct {
		Members []struct {
			Name     string `bson:"name"`
			StateStr string `bson:"stateStr"`
		} `bson:"members"`
	}
	r := mustRun(t, cl, bson.D{{Key: "replSetGetStatus", Value: 1}})
	require.NoError(t, bson.Unmarshal(r, &st))
	for _, m := range st.Members {
		if m.Name == host {
			return m.StateStr
		}
	}
	return ""
}

func pingPrimary(t *testing.T, cl *mongo.Client) {
	t.Helper()
	require.NoError(t, cl.Ping(ctxT(t, 10*time.Second), readpref.Primary()))
}
