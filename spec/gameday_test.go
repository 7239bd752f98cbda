package spec

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

func parseGameDay(t *testing.T, y string) *ferryv1.GameDayScenario {
	t.Helper()
	s := &ferryv1.GameDayScenario{}
	require.NoError(t, ParseMessage([]byte(y), ".yaml", s))
	return s
}

func TestGameDayExamples(t *testing.T) {
	s, err := ParseGameDayFile("../examples/gameday-informed.yaml")
	require.NoError(t, err)
	g, err := GameDay(s)
	require.NoError(t, err)
	assert.Equal(t, workflows.GameDayInformed, g.Mode)
	assert.Equal(t, workflows.KindRegionMove, g.MigrationKind)
	require.Len(t, g.Experiments, 1)
	assert.Equal(t, 95*time.Second, g.Experiments[0].StartAfter)
	assert.Equal(t, 0.02, g.MaxErrorRate)

	s, err = ParseGameDayFile("../examples/gameday-hidden.yaml")
	require.NoError(t, err)
	g, err = GameDay(s)
	require.NoError(t, err)
	assert.Equal(t, workflows.GameDayHidden, g.Mode)
	assert.Equal(t, 8, g.PoolSize)
	assert.Len(t, g.Experiments, 3)
}

// The draw is a function of the seed alone: the same seed draws the same faults in the
// same order twice; other seeds draw other ones; no draw repeats an experiment.
func TestGameDayHiddenDraw(t *testing.T) {
	s, err := ParseGameDayFile("../examples/gameday-hidden.yaml")
	require.NoError(t, err)
	names := func(seed int64) string {
		s.Pool.Seed = seed
		g, err := GameDay(s)
		require.NoError(t, err)
		var out []string
		for _, e := range g.Experiments {
			out = append(out, e.Name)
		}
		require.Len(t, out, 3)
		seen := map[string]bool{}
		for _, n := range out {
			require.False(t, seen[n], "drawn twice: %s", n)
			seen[n] = true
		}
		return strings.Join(out, " / ")
	}
	first := names(20261204)
	assert.Equal(t, first, names(20261204), "the same seed must draw the same faults")
	differ := 0
	for seed := int64(1); seed <= 10; seed++ {
		if names(seed) != first {
			differ++
		}
	}
	assert.GreaterOrEqual(t, differ, 9, "other seeds must draw other faults")
	t.Logf("seed 20261204 draws: %s", first)
}

// Each bad scenario is refused naming its field, before anything is injected.
func TestGameDayFieldErrors(t *testing.T) {
	good := `name: g
teams: [{name: a, members: [alice]}, {name: b, members: [bob]}]
experiments:
  - name: x
    fault: {target: "app:eu-west-2", kind: unhealthy}
    startAfter: 10s
    duration: 1m
`
	for _, tc := range []struct{ name, from, to, field, msg string }{
		{"no name", "name: g", "name: ' '", "name", "required"},
		{"bad mode", "name: g", "name: g\nmode: secret", "mode", "informed"},
		{"member in two teams", "members: [bob]", "members: [alice]", "teams[1].members[0]", "also in team"},
		{"team twice", "{name: b,", "{name: a,", "teams[1].name", "twice"},
		{"no experiments", "experiments:\n  - name: x\n    fault: {target: \"app:eu-west-2\", kind: unhealthy}\n    startAfter: 10s\n    duration: 1m\n", "", "experiments", "required"},
		{"no duration", "    duration: 1m\n", "", "experiments[0].duration", "never leaves a fault"},
		{"bad target", `"app:eu-west-2"`, `"eu-west-2"`, "experiments[0].fault.target", "app:<region>"},
		{"kind for another target", "kind: unhealthy", "kind: throttle", "experiments[0].fault.kind", "app fault is one of"},
		{"rate over 1", "kind: unhealthy}", "kind: unhealthy, rate: 2}", "experiments[0].fault.rate", "0..1"},
		{"latency without ms", "kind: unhealthy}", "kind: latency}", "experiments[0].fault.latencyMs", "required"},
		{"bad error rate", "name: g", "name: g\nsteadyState: {maxErrorRate: 1.5}", "steadyState.maxErrorRate", "0..1"},
		{"bad region", "name: g", "name: g\nsteadyState: {regions: [mars]}", "steadyState.regions[0]", "region name"},
		{"pool in informed", "name: g", "name: g\nmode: informed\npool: {draw: 1}", "pool", "informed GameDay"},
		{"hidden without pool", "name: g", "name: g\nmode: hidden", "experiments", "draws its experiments"},
		{"bad migration", "name: g", "name: g\nmigration: {dnsShift: {}}", "migration.dnsShift", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(good, tc.from, tc.to, 1)
			require.NotEqual(t, good, y, "the case changes nothing")
			_, err := GameDay(parseGameDay(t, y))
			var fe *FieldError
			require.True(t, errors.As(err, &fe), "want a *FieldError, got %v", err)
			assert.True(t, strings.HasPrefix(fe.Field, tc.field), "field %q, want %q (%v)", fe.Field, tc.field, err)
			assert.Contains(t, fe.Msg, tc.msg)
		})
	}
	hidden := `name: h
pool:
  draw: 4
  experiments:
    - {name: a, fault: {target: "aws:ec2:*", kind: throttle}, duration: 1m}
    - {name: b, fault: {target: "aws:ec2:*", kind: error}, duration: 1m}
`
	_, err := GameDay(parseGameDay(t, hidden))
	var fe *FieldError
	require.True(t, errors.As(err, &fe), "%v", err)
	assert.Equal(t, "pool.draw", fe.Field)
}
