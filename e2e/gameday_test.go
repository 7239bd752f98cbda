package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/internal/apiclient"
	"github.com/ferryhq/ferry/internal/gamereport"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/topology"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// GameDays end to end (issue 23): through the API, on the fast sandbox (record TTL 1 s),
// judged from the sandbox's own records (its traffic series, its Route 53 call record, its
// fault list), not from the game's view of itself.

func gameDayClient(s *testenv.Stack, token string) ferryv1connect.GameDayServiceClient {
	return apiclient.NewGameDay(s.API.Client(), s.API.URL, token)
}

// scenario reads an example scenario and applies edits to its text (timings for the fast
// sandbox, whose TTL is 1 s where ferry dev's is 60 s).
func scenario(t *testing.T, name string, edits ...string) *ferryv1.GameDayScenario {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", name))
	require.NoError(t, err)
	text := string(b)
	for i := 0; i+1 < len(edits); i += 2 {
		require.Contains(t, text, edits[i])
		text = strings.ReplaceAll(text, edits[i], edits[i+1])
	}
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	sc, err := spec.ParseGameDayFile(path)
	require.NoError(t, err)
	return sc
}

func awaitGame(t *testing.T, c ferryv1connect.GameDayServiceClient, id string, within time.Duration, done func(*ferryv1.GameDayStatus) bool) *ferryv1.GameDayStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := c.GetGameDay(context.Background(), connect.NewRequest(&ferryv1.GetGameDayRequest{Id: id}))
		// A query needs a worker: right after one is replaced it may time out once.
		if err != nil && connect.CodeOf(err) != connect.CodeDeadlineExceeded {
			require.NoError(t, err)
		}
		if err == nil && done(r.Msg.GetGameDay()) {
			return r.Msg.GetGameDay()
		}
		if time.Now().After(deadline) {
			t.Fatalf("game %s: not there after %s: %v %v", id, within, r, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestGameDayInformedExample(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal and the sandbox")
	}
	// Clients keep an answer for the record's TTL (1 s) as resolvers do, and the record's
	// sets have no health check: Route 53 then keeps answering eu-west-2 while it fails, so
	// the clients' failures last until ferry's rollback (with a health check the sandbox's
	// Route 53 leaves the failing set out at once and no client ever fails).
	s := testenv.StartStackWith(t, testenv.StackOptions{ClientTTLScale: 1, Topology: func(topo *topology.Topology) {
		for i := range topo.HostedZones {
			for j := range topo.HostedZones[i].Records {
				for k := range topo.HostedZones[i].Records[j].Weighted {
					topo.HostedZones[i].Records[j].Weighted[k].HealthCheck = ""
				}
			}
		}
	}})
	ctx := context.Background()
	cc := &control.Client{BaseURL: s.Sandbox.Addr()}
	// The example as written, with its timing for a 1 s TTL: the shift holds 50% from
	// about 21 s (10% at once, a 20 s bake), so the fault comes at 25 s, for 20 s.
	// The gate asks this stack's sandbox, not ferry dev's.
	sc := scenario(t, "gameday-informed.yaml",
		"startAfter: 95s", "startAfter: 25s",
		"duration: 1m", "duration: 20s",
		"http://127.0.0.1:4566", s.Sandbox.Addr())
	began := time.Now()
	alice := gameDayClient(s, testenv.TokenAlice)
	start, err := alice.StartGameDay(ctx, connect.NewRequest(&ferryv1.StartGameDayRequest{Scenario: sc}))
	require.NoError(t, err)
	id := start.Msg.GetId()
	require.Equal(t, "gameday/region-move-under-fire", id)
	require.Equal(t, "region/shop/eu-west-1/eu-west-2", start.Msg.GetMigrationId())

	// A second game of the scenario is refused while this one runs, and starts nothing.
	_, err = alice.StartGameDay(ctx, connect.NewRequest(&ferryv1.StartGameDayRequest{Scenario: sc}))
	require.Equal(t, connect.CodeAlreadyExists, connect.CodeOf(err), "%v", err)

	awaitGame(t, alice, id, time.Minute, func(g *ferryv1.GameDayStatus) bool { return g.GetExperiments()[0].GetState() != "pending" })
	// The fault is in the sandbox's list under the game's owner label.
	mine, err := cc.ListFaultsOf(ctx, id)
	require.NoError(t, err)
	require.Len(t, mine, 1)
	assert.Equal(t, "app:eu-west-2", mine[0].Target)
	injected := mine[0].Created // the sandbox's record of the fault's start

	// Players press: alice (platform) detects; vera is in no team; a press sent to the
	// workflow directly, not through the API, carries no proof and is refused.
	time.Sleep(3 * time.Second)
	pr, err := alice.PressGameDay(ctx, connect.NewRequest(&ferryv1.PressGameDayRequest{Id: id, Action: "detect", Note: "503s on eu-west-2"}))
	require.NoError(t, err)
	assert.Equal(t, "platform", pr.Msg.GetTeam())
	_, err = gameDayClient(s, testenv.TokenVera).PressGameDay(ctx, connect.NewRequest(&ferryv1.PressGameDayRequest{Id: id, Action: "detect"}))
	require.Equal(t, connect.CodeFailedPrecondition, connect.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), "vera is in no team")
	_, err = gameDayClient(s, testenv.TokenVera).PressGameDay(ctx, connect.NewRequest(&ferryv1.PressGameDayRequest{Id: id, Action: "stop"}))
	require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "%v", err)
	h, err := s.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: workflows.UpdateGameDayPress,
		Args: []any{workflows.GameDayPressRequest{Action: workflows.PressDetect, Identity: "carol"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	require.ErrorContains(t, err, "not signed by ferry's API")
	// The game is durable: a worker replaced mid-fault picks it up where it was.
	s.RestartWorker(t)

	end := awaitGame(t, alice, id, 3*time.Minute, func(g *ferryv1.GameDayStatus) bool { return g.GetState() != "running" })
	require.Equal(t, "completed", end.GetState(), "%v", end)
	t.Logf("game over after %s", time.Since(began).Round(time.Second))
	faults, err := cc.ListFaults(ctx)
	require.NoError(t, err)
	require.Empty(t, faults, "the game left a fault behind")

	saveGameHistory(t, s, id, "gameday-informed-completed.json.gz")
	rep, err := alice.GetGameDayReport(ctx, connect.NewRequest(&ferryv1.GetGameDayReportRequest{Id: id}))
	require.NoError(t, err)
	var r gamereport.Report
	require.NoError(t, json.Unmarshal([]byte(rep.Msg.GetJson()), &r))
	writeArtifacts(t, "gameday-informed", rep.Msg)
	x := r.Experiments[0]
	require.NotNil(t, x.Detected, "%+v", x)
	require.NotNil(t, x.Recovered, "%+v", x)

	// Judged from the sandbox's records. The fault's effect: the first failed client
	// request of eu-west-2 in the sandbox's per-second series.
	series, err := cc.Series(ctx, x.Start.Add(-time.Second), x.Start.Add(time.Minute))
	require.NoError(t, err)
	var effect time.Time
	for _, p := range series.Regions["eu-west-2"] {
		if p.Errors > 0 {
			effect = time.Unix(p.Sec, 0)
			break
		}
	}
	require.False(t, effect.IsZero(), "no client failed: the fault had no effect")
	// The app fails from the fault's start (its health answers 503 at once); the clients
	// see it within their second.
	assert.WithinDuration(t, injected, effect, 2*time.Second)
	// Detected by ferry's gate within one gate interval (2 s) of the effect, plus the
	// evaluation's own time.
	assert.Equal(t, "ferry", x.Detected.By)
	assert.LessOrEqual(t, x.Detected.Time.Sub(injected), 2500*time.Millisecond, "detected at %s, fault at %s", x.Detected.Time, injected)
	assert.Equal(t, x.Start, injected, "the report's start is the sandbox's")
	// Recovered once Route 53 had the weights back (the sandbox's call record), within
	// the record's TTL (1 s) and the steady-state window (5 s).
	calls, err := cc.Calls(ctx, control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets", Since: x.Start})
	require.NoError(t, err)
	var restored time.Time
	for _, c := range calls {
		for k, v := range c.Params {
			if c.Result == "ok" && strings.HasSuffix(k, ".SetIdentifier") && v == "eu-west-2" &&
				c.Params[strings.TrimSuffix(k, "SetIdentifier")+"Weight"] == "0" && c.Params[strings.TrimSuffix(k, "SetIdentifier")+"Action"] != "DELETE" {
				restored = c.Time
			}
		}
	}
	require.False(t, restored.IsZero(), "no change set eu-west-2 back to 0: %v", calls)
	assert.False(t, x.Recovered.Time.Before(restored.Truncate(time.Second)), "recovered %s before the weights were restored %s", x.Recovered.Time, restored)
	assert.LessOrEqual(t, x.Recovered.Time.Sub(restored), 7*time.Second, "recovered %s, weights restored %s", x.Recovered.Time, restored)
	// The migration ended in a good state: Route 53's record is where it began.
	require.NotNil(t, r.Migration)
	assert.True(t, r.Migration.Good, r.Migration.Why)
	assert.Equal(t, workflows.StateRolledBack, r.Migration.State)
	assert.Equal(t, map[string]int64{"eu-west-1": 100, "eu-west-2": 0}, recordWeights(t, s))
	// alice's press is on the scorecard of her team.
	assert.Equal(t, 1, r.Teams[0].Detected)
	// The same numbers in the JSON and the HTML.
	html := rep.Msg.GetHtml()
	assert.Equal(t, 1, strings.Count(html, `class="fault-band"`))
	for class, want := range map[string]string{"ttd": gamereport.Secs(x.TTDSec), "ttm": gamereport.Secs(x.TTMSec), "ttr": gamereport.Secs(x.TTRSec)} {
		m := regexp.MustCompile(`<tr data-experiment="0">.*?class="num ` + class + `">([^<]*)<`).FindStringSubmatch(html)
		require.Len(t, m, 2, class)
		assert.Equal(t, want, m[1], class)
	}
	t.Logf("TTD %s (effect +%.1f s), TTM %s, TTR %s, failed %d/%d, score %.1f", gamereport.Secs(x.TTDSec), effect.Sub(x.Start).Seconds(),
		gamereport.Secs(x.TTMSec), gamereport.Secs(x.TTRSec), x.FailedRequests, x.Requests, x.Score)
}

func TestGameDayHiddenStopClearsOnlyItsFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal and the sandbox")
	}
	s := testenv.StartStack(t)
	ctx := context.Background()
	cc := &control.Client{BaseURL: s.Sandbox.Addr()}
	alice := gameDayClient(s, testenv.TokenAlice)
	// Somebody else's fault, which the game's stop must leave alone (rate 0: it harms no one).
	other, err := cc.AddFault(ctx, control.Fault{Target: "aws:ec2:CopyImage", Kind: "throttle", Rate: 0})
	require.NoError(t, err)

	// Drawn faults start 1 s after the previous one ends; MongoDB faults are left out of
	// the pool here (this stack's members are not on the example's ports).
	play := func(seed int64) (names []string, injected string) {
		sc := scenario(t, "gameday-hidden.yaml", "startAfter: 30s", "startAfter: 1s", "startAfter: 45s", "startAfter: 1s", "startAfter: 1m", "startAfter: 1s")
		var pool []*ferryv1.GameDayExperiment
		for _, e := range sc.GetPool().GetExperiments() {
			if !strings.HasPrefix(e.GetFault().GetTarget(), "mongo:") {
				pool = append(pool, e)
			}
		}
		sc.Pool.Experiments, sc.Pool.Seed = pool, seed
		start, err := alice.StartGameDay(ctx, connect.NewRequest(&ferryv1.StartGameDayRequest{Scenario: sc}))
		require.NoError(t, err)
		id := start.Msg.GetId()
		g := awaitGame(t, alice, id, time.Minute, func(g *ferryv1.GameDayStatus) bool { return g.GetExperiments()[0].GetState() == "injected" })
		for _, e := range g.GetExperiments() {
			assert.Equal(t, "hidden", e.GetName(), "a hidden game's players do not see its faults")
		}
		mine, err := cc.ListFaultsOf(ctx, id)
		require.NoError(t, err)
		require.Len(t, mine, 1)
		_, err = alice.PressGameDay(ctx, connect.NewRequest(&ferryv1.PressGameDayRequest{Id: id, Action: "stop"}))
		require.NoError(t, err)
		awaitGame(t, alice, id, time.Minute, func(g *ferryv1.GameDayStatus) bool { return g.GetState() == "stopped" })
		if seed == 7 {
			saveGameHistory(t, s, id, "gameday-hidden-stopped.json.gz")
		}
		// Judged from the sandbox's fault list: the game's are gone, the other one stays.
		faults, err := cc.ListFaults(ctx)
		require.NoError(t, err)
		require.Len(t, faults, 1, "%v", faults)
		require.Equal(t, other.ID, faults[0].ID)
		rep, err := alice.GetGameDayReport(ctx, connect.NewRequest(&ferryv1.GetGameDayReportRequest{Id: id}))
		require.NoError(t, err)
		var r gamereport.Report
		require.NoError(t, json.Unmarshal([]byte(rep.Msg.GetJson()), &r))
		for _, x := range r.Experiments {
			names = append(names, x.Name)
		}
		return names, mine[0].Target + " " + mine[0].Kind
	}
	first, inj1 := play(20261204)
	again, inj2 := play(20261204)
	assert.Equal(t, first, again, "the same seed draws the same faults")
	assert.Equal(t, inj1, inj2)
	other7, _ := play(7)
	assert.NotEqual(t, first, other7, "another seed draws others")
	t.Logf("seed 20261204 drew %v; seed 7 drew %v", first, other7)
}

// saveGameHistory keeps the game's history for workflows' replay test when
// FERRY_RECORD_HISTORY is set (only when a change is meant to alter histories).
func saveGameHistory(t *testing.T, s *testenv.Stack, id, name string) {
	if os.Getenv("FERRY_RECORD_HISTORY") == "" {
		return
	}
	d, err := s.Client.DescribeWorkflowExecution(context.Background(), id, "")
	require.NoError(t, err)
	testenv.SaveHistory(t, s.Client, id, d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), filepath.Join("..", "workflows", "testdata", name))
}

// recordWeights reads www.shop.example.'s weights from the sandbox's Route 53.
func recordWeights(t *testing.T, s *testenv.Stack) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, rs := range s.Sandbox.AWS().Resolve("www.shop.example.", "A") {
		out[rs.SetIdentifier] = rs.Weight
	}
	return out
}

// writeArtifacts keeps a report where a person can open it (bin/test-gameday, or
// FERRY_GAMEDAY_ARTIFACTS); it is test output, not committed.
func writeArtifacts(t *testing.T, name string, r *ferryv1.GetGameDayReportResponse) {
	dir := os.Getenv("FERRY_GAMEDAY_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "bin", "test-gameday")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("artifacts: %v", err)
		return
	}
	_ = os.WriteFile(filepath.Join(dir, name+".html"), []byte(r.GetHtml()), 0o644)
	_ = os.WriteFile(filepath.Join(dir, name+".json"), []byte(r.GetJson()), 0o644)
	t.Logf("report written to %s", filepath.Join(dir, name+".html"))
}

// A fault the sandbox refuses (no such MongoDB member) is a skipped experiment with a note
// naming why; the game goes on to the next one and ends, leaving nothing behind.
func TestGameDayRefusedFaultIsSkippedAndTheGameGoesOn(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: embedded Temporal and the sandbox")
	}
	s := testenv.StartStack(t)
	ctx := context.Background()
	alice := gameDayClient(s, testenv.TokenAlice)
	sc := &ferryv1.GameDayScenario{
		Name: "refused", Mode: "informed",
		Teams:       []*ferryv1.GameDayTeam{{Name: "platform", Members: []string{"alice"}}},
		SteadyState: &ferryv1.GameDaySteadyState{MaxErrorRate: 0.05},
		Experiments: []*ferryv1.GameDayExperiment{
			{Name: "no such member", Fault: &ferryv1.GameDayFault{Target: "mongo:rs0:1", Kind: "down"}, StartAfter: durationpb.New(0), Duration: durationpb.New(2 * time.Second)},
			// Two experiments of the same target and kind at once: two faults, each its own.
			{Name: "route 53 slow", Fault: &ferryv1.GameDayFault{Target: "aws:route53:*", Kind: "latency", LatencyMs: 10, Rate: 1}, StartAfter: durationpb.New(time.Second), Duration: durationpb.New(5 * time.Second)},
			{Name: "route 53 slow again", Fault: &ferryv1.GameDayFault{Target: "aws:route53:*", Kind: "latency", LatencyMs: 10, Rate: 1}, StartAfter: durationpb.New(3 * time.Second), Duration: durationpb.New(5 * time.Second)},
		},
	}
	start, err := alice.StartGameDay(ctx, connect.NewRequest(&ferryv1.StartGameDayRequest{Scenario: sc}))
	require.NoError(t, err)
	id := start.Msg.GetId()
	awaitGame(t, alice, id, time.Minute, func(g *ferryv1.GameDayStatus) bool {
		return g.GetExperiments()[1].GetState() == "injected" && g.GetExperiments()[2].GetState() == "injected"
	})
	mine, err := (&control.Client{BaseURL: s.Sandbox.Addr()}).ListFaultsOf(ctx, id)
	require.NoError(t, err)
	require.Len(t, mine, 2, "overlapping experiments of the same fault share one: %v", mine)
	g := awaitGame(t, alice, id, time.Minute, func(g *ferryv1.GameDayStatus) bool { return g.GetState() != "running" })
	require.Equal(t, "completed", g.GetState())
	assert.Equal(t, "skipped", g.GetExperiments()[0].GetState())
	assert.Equal(t, "done", g.GetExperiments()[1].GetState())
	assert.Equal(t, "done", g.GetExperiments()[2].GetState())
	require.NotEmpty(t, g.GetNotes())
	assert.Contains(t, g.GetNotes()[0], "no such member: the fault was not injected")
	faults, err := (&control.Client{BaseURL: s.Sandbox.Addr()}).ListFaults(ctx)
	require.NoError(t, err)
	assert.Empty(t, faults)
}
