package mongosim

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestDriverLearnsNewPrimaryByStreaming sets a heartbeat far longer than the
// test: only the streamed (exhaust) hello can tell the idle driver that the
// primary moved.
func TestDriverLearnsNewPrimaryByStreaming(t *testing.T) {
	c := testSet(t, nil)
	hosts := c.Hosts()
	var (
		mu      sync.Mutex
		primary string
		awaited int
	)
	mon := &event.ServerMonitor{
		ServerHeartbeatSucceeded: func(e *event.ServerHeartbeatSucceededEvent) {
			if e.Awaited {
				mu.Lock()
				awaited++
				mu.Unlock()
			}
		},
		TopologyDescriptionChanged: func(e *event.TopologyDescriptionChangedEvent) {
			mu.Lock()
			defer mu.Unlock()
			primary = ""
			for _, s := range e.NewDescription.Servers {
				if s.Kind == "RSPrimary" {
					primary = s.Addr.String()
				}
			}
		},
	}
	cl, err := mongo.Connect(options.Client().ApplyURI(c.URI()).SetHeartbeatInterval(time.Minute).SetServerMonitor(mon))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Disconnect(ctxT(t, time.Second)) })
	pingPrimary(t, cl)
	seen := func() string { mu.Lock(); defer mu.Unlock(); return primary }
	eventually(t, 5*time.Second, func() bool { return seen() == hosts[0] }, "driver to see the first primary")

	require.NoError(t, stepDown(t, direct(t, hosts[0]), 60, 5))
	eventually(t, 5*time.Second, func() bool { p := seen(); return p != "" && p != hosts[0] }, "driver to see the new primary")
	require.Equal(t, c.Primary(), seen())
	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, awaited, "no awaited (streamed) heartbeat")
}
