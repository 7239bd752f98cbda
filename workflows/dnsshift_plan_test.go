package workflows

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/activities"
)

func TestStepWeights(t *testing.T) {
	for _, c := range []struct{ pct, total, from, to int }{
		{1, 100, 99, 1},
		{10, 100, 90, 10},
		{25, 100, 75, 25},
		{50, 100, 50, 50},
		{100, 100, 0, 100},
		{1, 255, 252, 3},   // 2.55 rounds to 3
		{33, 255, 171, 84}, // 84.15
		{50, 3, 1, 2},      // 1.5 rounds half away from zero
		{1, 1, 1, 0},
		{100, 1, 0, 1},
	} {
		from, to := StepWeights(c.pct, c.total)
		require.Equal(t, [2]int{c.from, c.to}, [2]int{from, to}, "%d%% of %d", c.pct, c.total)
		require.Equal(t, c.total, from+to, "the total never changes, so it is never 0")
	}
}

func TestComputeDNSShiftPlan(t *testing.T) {
	spec := testSpec()
	spec.Percents = []int{1, 10, 25, 50, 100}
	spec.ApproveAfter = []bool{false, false, false, true, false}
	spec.BakeTime = 20 * time.Second
	obs := testObs()
	obs.From.TTL, obs.To.TTL = 60, 45
	p, err := ComputeDNSShiftPlan(spec, obs)
	require.NoError(t, err)
	require.Equal(t, time.Minute, p.Dwell, "dwell is max(bake 20s, TTL 60s)")
	require.Equal(t, 100, p.OriginalFrom)
	require.Equal(t, 0, p.OriginalTo)
	var got [][2]int
	for _, st := range p.Steps {
		got = append(got, [2]int{st.FromWeight, st.ToWeight})
		require.Equal(t, time.Minute, st.Dwell)
	}
	require.Equal(t, [][2]int{{99, 1}, {90, 10}, {75, 25}, {50, 50}, {0, 100}}, got)
	require.True(t, p.Steps[3].NeedsApproval)
	require.Contains(t, p.Steps[1].Description, "eu-west-1=90 eu-west-2=10")
	require.Contains(t, p.Steps[3].Description, "wait for approval")
	require.Len(t, p.Plan.Steps, 5)
	require.Equal(t, "shift to 50%", p.Plan.Steps[3].Name)
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{16}$`), p.Plan.Hash)
	require.Contains(t, strings.Join(p.Plan.Observations, "\n"), `"eu-west-1": weight 100, TTL 60s, 10.1.0.10, health check hc-1`)

	spec.BakeTime = 90 * time.Second
	p, err = ComputeDNSShiftPlan(spec, obs)
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, p.Dwell, "dwell is max(bake 90s, TTL 60s)")
}

func TestComputeDNSShiftPlanResumesPastDoneSteps(t *testing.T) {
	obs := testObs()
	obs.From.Weight, obs.To.Weight = 50, 50 // an earlier run stopped at 50%
	p, err := ComputeDNSShiftPlan(testSpec(), obs)
	require.NoError(t, err)
	require.Len(t, p.Steps, 1, "10, 25 and 50 would move traffic back")
	require.Equal(t, 100, p.Steps[0].Percent)
	require.Equal(t, 50, p.OriginalTo, "a rollback returns to the state found")
	require.Contains(t, strings.Join(p.Plan.Observations, "\n"), "skipping 10%, 25%, 50%")
}

func TestComputeDNSShiftPlanRefusesZeroTotal(t *testing.T) {
	obs := testObs()
	obs.From.Weight = 0
	_, err := ComputeDNSShiftPlan(testSpec(), obs)
	require.ErrorContains(t, err, "both have weight 0")
}

func TestDNSShiftPlanHash(t *testing.T) {
	spec, obs := testSpec(), testObs()
	h := DNSShiftPlanHash(spec, obs)
	require.Equal(t, h, DNSShiftPlanHash(testSpec(), testObs()), "same input, same hash")

	reordered := testObs()
	reordered.To.Values = []string{"10.2.0.11", "10.2.0.10"}
	same := testObs()
	same.To.Values = []string{"10.2.0.10", "10.2.0.11"}
	require.Equal(t, DNSShiftPlanHash(spec, same), DNSShiftPlanHash(spec, reordered), "value order is not drift")

	drifts := map[string]func(*DNSShiftSpec, *activities.PreflightOutput){
		"weight":       func(_ *DNSShiftSpec, o *activities.PreflightOutput) { o.From.Weight = 90; o.To.Weight = 10 },
		"ttl":          func(_ *DNSShiftSpec, o *activities.PreflightOutput) { o.To.TTL = 300 },
		"values":       func(_ *DNSShiftSpec, o *activities.PreflightOutput) { o.To.Values = []string{"10.9.9.9"} },
		"health check": func(_ *DNSShiftSpec, o *activities.PreflightOutput) { o.From.HealthCheckID = "" },
		"zone":         func(_ *DNSShiftSpec, o *activities.PreflightOutput) { o.ZoneID = "Z0OTHER" },
		"schedule":     func(s *DNSShiftSpec, _ *activities.PreflightOutput) { s.Percents = []int{50, 100} },
		"bake":         func(s *DNSShiftSpec, _ *activities.PreflightOutput) { s.BakeTime = time.Hour },
		"gate":         func(s *DNSShiftSpec, _ *activities.PreflightOutput) { s.Gates[0].HTTP.ExpectStatus = 204 },
	}
	for name, mutate := range drifts {
		s, o := testSpec(), testObs()
		mutate(&s, &o)
		require.NotEqual(t, h, DNSShiftPlanHash(s, o), "drift in %s must change the hash", name)
	}
}
