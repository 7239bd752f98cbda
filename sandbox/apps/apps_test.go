package apps

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/sandbox/awssim"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/topology"
)

type fakeResolver struct{ answers []awssim.WeightedAnswer }

func (f *fakeResolver) Resolve(string, string) []awssim.WeightedAnswer { return f.answers }

func newApps(t *testing.T, res Resolver, faults *control.Registry) *Apps {
	t.Helper()
	a, err := New(Options{Topology: topology.Default(), Resolver: res, Faults: faults, TTLScale: 0.001, Seed: 7})
	require.NoError(t, err)
	return a
}

func TestPickFollowsWeights(t *testing.T) {
	res := &fakeResolver{[]awssim.WeightedAnswer{
		{SetIdentifier: "eu-west-1", Weight: 75, TTL: 0, Values: []string{"198.51.100.10"}, Healthy: true},
		{SetIdentifier: "eu-west-2", Weight: 25, TTL: 0, Values: []string{"198.51.100.20"}, Healthy: true},
	}}
	a := newApps(t, res, nil)
	counts := map[string]int{}
	now := time.Now()
	for i := 0; i < 4000; i++ {
		r, ok := a.pick(i%len(a.clients), now)
		require.True(t, ok)
		counts[r]++
	}
	assert.InDelta(t, 3000, counts["eu-west-1"], 150)
	assert.InDelta(t, 1000, counts["eu-west-2"], 150)

	// All weights zero: equal spread.
	res.answers[0].Weight, res.answers[1].Weight = 0, 0
	counts = map[string]int{}
	for i := 0; i < 2000; i++ {
		r, _ := a.pick(0, now)
		counts[r]++
	}
	assert.InDelta(t, 1000, counts["eu-west-1"], 150)
}

func TestAppsFaultsAndCounters(t *testing.T) {
	reg := control.NewRegistry([]string{"eu-west-1", "eu-west-2", "us-east-1"}, 1)
	res := &fakeResolver{[]awssim.WeightedAnswer{{SetIdentifier: "eu-west-2", Weight: 1, TTL: 1, Values: []string{"198.51.100.20"}, Healthy: true}}}
	a, err := New(Options{Topology: topology.Default(), Resolver: res, Faults: reg, RequestsPerSec: 200, TTLScale: 0.001})
	require.NoError(t, err)
	hs := httptest.NewServer(a)
	defer hs.Close()
	a.opts.BaseURL = hs.URL

	get := func(p string) int {
		resp, err := http.Get(hs.URL + p)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, 200, get("/_apps/eu-west-2/healthz"))
	assert.Equal(t, 404, get("/_apps/us-east-1/"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(10 * time.Second)
	for a.Traffic().Regions["eu-west-2"].Total < 20 {
		require.True(t, time.Now().Before(deadline), "requests reach eu-west-2")
		time.Sleep(10 * time.Millisecond)
	}
	_, err = reg.Add(control.Fault{Target: "app:eu-west-2", Kind: control.KindUnhealthy, Rate: 1})
	require.NoError(t, err)
	assert.Equal(t, 503, get("/_apps/eu-west-2/healthz"))
	assert.False(t, a.Healthy("eu-west-2"))
	for {
		rate, ok := a.ErrorRate("eu-west-2")
		if ok && rate > 0.2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "error rate rises")
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, reg.Clear())
	assert.True(t, a.Healthy("eu-west-2"))
}
