package mongosim

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func commandError(t *testing.T, err error) mongo.CommandError {
	t.Helper()
	var ce mongo.CommandError
	require.True(t, errors.As(err, &ce), "want a mongo.CommandError, got %T: %v", err, err)
	return ce
}

// firedEvents returns the record's firings (fault events naming a member) of fault id.
func firedEvents(c *Cluster, id string) []Event {
	var out []Event
	for _, e := range c.Events() {
		if e.Kind == EventFault && e.Fault != nil && e.Fault.ID == id && e.Member != "" {
			out = append(out, e)
		}
	}
	return out
}

func TestCommandErrorFailsReconfigAfterAndCount(t *testing.T) {
	c := testSet(t, nil)
	hosts := c.Hosts()
	cl := connect(t, c.URI())
	pingPrimary(t, cl)

	var mu sync.Mutex
	var told []string
	c.OnFaultFired(func(id string) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, id)
	})
	require.NoError(t, c.ApplyFault(Fault{ID: "deny", Target: "mongo:rs0:*", Kind: FaultCommandError,
		Command: "replSetReconfig", After: 1, Count: 2}))

	// The first reconfig is let through.
	cfg := getConfig(t, cl)
	cfg.Version++
	addMember(cfg, 3, hosts[3], 0, 0)
	require.NoError(t, reconfig(t, cl, cfg))
	version := cfg.Version

	// The next two fail as mongod fails an unauthorized command, with nothing applied.
	for i := range 2 {
		cfg := getConfig(t, cl)
		require.Equal(t, version, cfg.Version)
		cfg.Version++
		addMember(cfg, 4, hosts[4], 0, 0)
		err := reconfig(t, cl, cfg)
		ce := commandError(t, err)
		assert.Equal(t, int32(13), ce.Code, "firing %d", i+1)
		assert.Equal(t, "Unauthorized", ce.Name)
		assert.Contains(t, ce.Message, "not authorized on admin to execute command { replSetReconfig: ")
		assert.False(t, ce.HasErrorLabel("RetryableWriteError"))
		assert.Equal(t, version, getConfig(t, cl).Version, "nothing was applied")
	}
	raw, err := run(t, cl, bson.D{{Key: "replSetGetStatus", Value: 1}})
	require.NoError(t, err, "other commands are untouched")
	require.NotEmpty(t, raw)

	// Count 2 is used up: reconfigs run again (once the last config is committed).
	eventually(t, 10*time.Second, func() bool {
		cfg := getConfig(t, cl)
		cfg.Version++
		addMember(cfg, 4, hosts[4], 0, 0)
		err := reconfig(t, cl, cfg)
		require.NotEqual(t, int32(13), code(err), "the fault fired a third time: %v", err)
		return err == nil
	}, "a reconfig after the count is used up")

	fired := firedEvents(c, "deny")
	require.Len(t, fired, 2)
	assert.Equal(t, c.Primary(), fired[0].Member)
	assert.Contains(t, fired[0].Message, "fired 1 of 2: replSetReconfig answered Unauthorized (13)")
	assert.Contains(t, fired[1].Message, "fired 2 of 2")
	mu.Lock()
	assert.Equal(t, []string{"deny", "deny"}, told)
	mu.Unlock()
	require.NoError(t, c.ClearFault("deny"))
}

func TestCommandErrorWithCodeOnOneMember(t *testing.T) {
	c := testSet(t, nil)
	hosts := c.Hosts()
	pingPrimary(t, connect(t, c.URI()))
	primary, secondary := direct(t, hosts[0]), direct(t, hosts[1])

	// Count 0: every matching command while the fault is applied; only hosts[1] is hit.
	require.NoError(t, c.ApplyFault(Fault{ID: "cfg", Target: target(c, hosts[1]), Kind: FaultCommandError,
		Command: "replSetGetConfig", Code: codeNewReplicaSetConfigurationIncompatible}))
	for range 3 {
		_, err := run(t, secondary, bson.D{{Key: "replSetGetConfig", Value: 1}})
		ce := commandError(t, err)
		assert.Equal(t, int32(103), ce.Code)
		assert.Equal(t, "NewReplicaSetConfigurationIncompatible", ce.Name)
		assert.Contains(t, ce.Message, "replSetGetConfig failed")
	}
	_, err := run(t, primary, bson.D{{Key: "replSetGetConfig", Value: 1}})
	require.NoError(t, err, "another member is not targeted")
	require.Len(t, firedEvents(c, "cfg"), 3)
	assert.Equal(t, hosts[1], firedEvents(c, "cfg")[0].Member)
	require.NoError(t, c.ClearFault("cfg"))
	_, err = run(t, secondary, bson.D{{Key: "replSetGetConfig", Value: 1}})
	require.NoError(t, err, "cleared")

	// A code mongod has no name for is named as its numbered assertions are.
	require.NoError(t, c.ApplyFault(Fault{ID: "odd", Target: "mongo:rs0:*", Kind: FaultCommandError, Command: "replSetStepDown", Code: 424242, Count: 1}))
	_, err = run(t, primary, bson.D{{Key: "replSetStepDown", Value: 60}})
	ce := commandError(t, err)
	assert.Equal(t, int32(424242), ce.Code)
	assert.Equal(t, "Location424242", ce.Name)
	assert.Equal(t, hosts[0], c.Primary(), "the step-down did not happen")
}

func TestCommandErrorValidation(t *testing.T) {
	c := testSet(t, nil)
	h := target(c, c.Hosts()[1])
	for _, tc := range []struct {
		f     Fault
		field string
	}{
		{Fault{ID: "a", Target: h, Kind: FaultCommandError}, "command"},
		{Fault{ID: "a", Target: h, Kind: FaultCommandError, Command: "replSetReconfg"}, "command"},
		{Fault{ID: "a", Target: h, Kind: FaultCommandError, Command: "replSetReconfig", Code: -13}, "code"},
		{Fault{ID: "a", Target: h, Kind: FaultCommandError, Command: "replSetReconfig", Code: 1 << 31}, "code"},
		{Fault{ID: "a", Target: h, Kind: FaultCommandError, Command: "replSetReconfig", After: -1}, "after"},
		{Fault{ID: "a", Target: h, Kind: FaultCommandError, Command: "replSetReconfig", Count: -1}, "count"},
		{Fault{ID: "a", Target: h, Kind: FaultCommandError, Command: "replSetReconfig", Rate: 1.5}, "rate"},
		{Fault{ID: "a", Target: "mongo:rs0:1", Kind: FaultCommandError, Command: "replSetReconfig"}, "target"},
		{Fault{ID: "a", Target: h, Kind: FaultDown, Command: "replSetReconfig"}, "command"},
		{Fault{ID: "a", Target: h, Kind: FaultPartition, Code: 13}, "code"},
		{Fault{ID: "a", Target: h, Kind: FaultLag, LatencyMs: 10, After: 1}, "after"},
		{Fault{ID: "a", Target: h, Kind: FaultDown, Count: 1}, "count"},
		{Fault{ID: "a", Target: h, Kind: "melt"}, "kind"},
	} {
		err := c.ApplyFault(tc.f)
		var fe *FaultError
		require.True(t, errors.As(err, &fe), "%+v: %v", tc.f, err)
		assert.Equal(t, tc.field, fe.Field, "%+v: %v", tc.f, err)
		assert.True(t, strings.HasPrefix(err.Error(), "fault "+tc.field+": "), err.Error())
	}
	require.Empty(t, c.Faults())
	require.Empty(t, c.Events(), "nothing refused reached the record")
}
