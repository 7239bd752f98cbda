package gamereport

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/activities"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/gameday"
	"github.com/ferryhq/ferry/workflows"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 500_000_000, time.UTC) // the fault's start

// run is a game whose numbers are worked out by hand: eu-west-2's clients fail from the
// fault's second (10:00:00) to 10:00:11 and then go (their caches expire), 10 requests a
// second per region; ferry's gate fails 2.2 s in and rolls back; alice and carol press
// detect, bob mitigate.
func run() workflows.GameDayRun {
	series := control.TrafficSeries{From: t0.Unix() - 15, To: t0.Unix() + 45, Regions: map[string][]control.TrafficPoint{}}
	for sec := series.From; sec < series.To; sec++ {
		series.Regions["eu-west-1"] = append(series.Regions["eu-west-1"], control.TrafficPoint{Sec: sec, Requests: 10})
		p := control.TrafficPoint{Sec: sec}
		if sec >= t0.Unix() && sec <= t0.Unix()+11 {
			p.Requests, p.Errors = 10, 10
		}
		series.Regions["eu-west-2"] = append(series.Regions["eu-west-2"], p)
	}
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	return workflows.GameDayRun{
		ID: "gameday/test", State: workflows.GameDayCompleted, StartedBy: "alice", Started: t0.Add(-30 * time.Second), Ended: at(50),
		Spec: workflows.GameDaySpec{Name: "test", Mode: workflows.GameDayInformed, Regions: []string{"eu-west-1", "eu-west-2"}, MaxErrorRate: 0.02,
			Teams:  []workflows.GameDayTeam{{Name: "platform", Members: []string{"alice", "bob"}}, {Name: "payments", Members: []string{"carol"}}},
			Record: &activities.RecordRef{Zone: "shop.example.", Name: "www.shop.example.", Type: "A"}},
		MigrationID:  "region/shop/eu-west-1/eu-west-2",
		StartWeights: map[string]int64{"eu-west-1": 100, "eu-west-2": 0},
		EndWeights:   map[string]int64{"eu-west-1": 100, "eu-west-2": 0},
		Migration:    &gameday.MigrationEnd{State: workflows.StateRolledBack, Ended: true},
		Experiments: []workflows.ExperimentRun{
			{Name: "eu-west-2 unhealthy", Fault: workflows.GameDayFault{Target: "app:eu-west-2", Kind: "unhealthy", Rate: 1}, State: workflows.ExperimentDone,
				Start: t0, End: at(30), Steady: at(21), Records: &gameday.Records{
					Series: series,
					Weights: []gameday.WeightChange{
						{Time: at(-20), SetIdentifier: "eu-west-1", Weight: 50}, {Time: at(-20), SetIdentifier: "eu-west-2", Weight: 50},
						{Time: at(2.4), SetIdentifier: "eu-west-1", Weight: 100}, {Time: at(2.4), SetIdentifier: "eu-west-2", Weight: 0},
					},
					Events: []gameday.MigrationEvent{
						{Time: at(2.2), Identity: workflows.SystemIdentity, Action: "gate failed", Reason: "gate failed: eu-west-2 health: 503"},
						{Time: at(2.3), Identity: workflows.SystemIdentity, Action: "rollback", Reason: "gate failed"},
					}}},
			{Name: "never ran", Fault: workflows.GameDayFault{Target: "aws:route53:*", Kind: "throttle", Rate: 1}, State: workflows.ExperimentSkipped},
		},
		Presses: []workflows.GameDayPress{
			{Time: at(-3), Action: "detect", Identity: "alice", Team: "platform"}, // before the fault: no credit
			{Time: at(5), Action: "detect", Identity: "alice", Team: "platform", Note: "503s"},
			{Time: at(8), Action: "detect", Identity: "carol", Team: "payments"},
			{Time: at(9), Action: "mitigate", Identity: "bob", Team: "platform"},
		},
	}
}

func TestBuildMeasuresFromTheRecords(t *testing.T) {
	r := Build(run())
	x := r.Experiments[0]
	require.NotNil(t, x.Effect)
	assert.Equal(t, t0, *x.Effect, "the first failed request, in the fault's own second, counts from its start")
	require.NotNil(t, x.Detected)
	assert.Equal(t, "ferry", x.Detected.By, "the gate failed before anyone pressed")
	assert.Equal(t, 2.2, *x.TTDSec)
	assert.Equal(t, 2.3, *x.TTMSec, "ferry's rollback mitigated before bob")
	// eu-west-2's last failure is at :11; its 5-second window is clean from :16 on.
	require.NotNil(t, x.Recovered)
	assert.Equal(t, 15.5, *x.TTRSec)
	assert.EqualValues(t, 280, x.Requests)
	assert.EqualValues(t, 120, x.FailedRequests)
	// 40(1-2.2/300) + 40(1-15.5/600) + 20(1-120/280) = 39.71 + 38.97 + 11.43
	assert.Equal(t, 90.1, x.Score)
	assert.Equal(t, 90.1, r.MeanScore, "an experiment that never ran is not averaged in")
	assert.Equal(t, 2.2, *r.MTTDSec)

	require.Len(t, r.Teams, 2)
	// platform: alice at 5 s, bob at 9 s: 60(1-5/300) + 40(1-9/600) = 59 + 39.4
	assert.Equal(t, TeamScore{Team: "platform", Members: []string{"alice", "bob"}, Detected: 1, Mitigated: 1, MTTDSec: ptr(5.0), Score: 98.4}, r.Teams[0])
	assert.Equal(t, 58.4, r.Teams[1].Score)

	require.NotNil(t, r.Migration)
	assert.True(t, r.Migration.Good, r.Migration.Why)
	assert.Contains(t, strings.Join(x.Narrative, " "), "ferry detected it at +2.2 s (gate failed: eu-west-2 health: 503)")
	assert.Contains(t, strings.Join(x.Narrative, " "), `carol (payments) pressed detect at +8.0 s`)

	// The weights line: 50/50 at the chart's start (a change before it), 100/0 after 2.4 s.
	w := x.Timeline.Weights["eu-west-2"]
	require.NotEmpty(t, w)
	assert.Equal(t, 0.5, w[0].Value)
	assert.Equal(t, 0.0, w[len(w)-1].Value)
	assert.Equal(t, "Not run: skipped.", r.Experiments[1].Narrative[0])
}

func TestRolledBackWithWeightsElsewhereIsNotAGoodEnd(t *testing.T) {
	g := run()
	g.EndWeights = map[string]int64{"eu-west-1": 50, "eu-west-2": 50}
	o := Build(g).Migration
	assert.False(t, o.Good)
	assert.Contains(t, o.Why, "eu-west-1=50 eu-west-2=50, not eu-west-1=100 eu-west-2=0")
}

func TestNoDetectionNoPoints(t *testing.T) {
	g := run()
	g.Experiments[0].Records.Events = nil
	g.Presses = nil
	x := Build(g).Experiments[0]
	assert.Nil(t, x.TTDSec)
	assert.Nil(t, x.TTMSec)
	assert.Equal(t, 50.4, x.Score) // 0 + 38.97 + 11.43
	assert.Contains(t, strings.Join(x.Narrative, " "), "Nobody detected it")
}

// TestHTMLShowsTheJSONsNumbers reads the page's scorecard back: the same numbers as the
// report, one fault band per experiment that ran, nothing fetched from the network.
func TestHTMLShowsTheJSONsNumbers(t *testing.T) {
	r := Build(run())
	page, err := HTML(r)
	require.NoError(t, err)
	html := string(page)
	assert.Equal(t, 1, strings.Count(html, `class="fault-band"`))
	assert.NotRegexp(t, `(?i)(src|href)="(https?:)?//`, html, "self-contained")
	assert.NotContains(t, html, "<script")
	cell := func(class string) string {
		m := regexp.MustCompile(`<tr data-experiment="0">.*?class="num ` + class + `">([^<]*)<`).FindStringSubmatch(html)
		require.Len(t, m, 2, class)
		return m[1]
	}
	x := r.Experiments[0]
	assert.Equal(t, Secs(x.TTDSec), cell("ttd"))
	assert.Equal(t, Secs(x.TTRSec), cell("ttr"))
	assert.Equal(t, "90.1", cell("score"))
	assert.Equal(t, "120 / 280", cell("failed"))
}
