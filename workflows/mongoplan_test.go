package workflows

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/activities"
)

// mongoTopology builds an observed set: nSource voting members in eu-west-1 (the first
// primary, priority 1) and nNew reachable hosts in eu-west-2 to add.
func mongoTopology(nSource, nNew int) (MongoMoveSpec, activities.MongoReadOutput) {
	obs := activities.MongoReadOutput{Config: activities.MongoConfig{SetName: "rs0", Version: 1, Term: 1}}
	for i := range nSource {
		h := fmt.Sprintf("10.1.0.%d:27017", i+1)
		obs.Config.Members = append(obs.Config.Members, activities.MongoMember{ID: i, Host: h, Votes: 1, Priority: 1,
			Tags: map[string]string{"region": "eu-west-1"}, BuildIndexes: true})
		state := "SECONDARY"
		if i == 0 {
			state = "PRIMARY"
			obs.Primary = h
		}
		obs.Status = append(obs.Status, activities.MongoMemberStatus{Host: h, State: state, Healthy: true})
	}
	spec := mongoTestSpec()
	spec.NewMembers = nil
	for i := range nNew {
		h := fmt.Sprintf("10.2.0.%d:27017", i+1)
		spec.NewMembers = append(spec.NewMembers, h)
		obs.Probes = append(obs.Probes, activities.MongoProbe{Host: h, Reachable: true, Detail: "uninitialised --replSet member"})
	}
	return spec, obs
}

func mongoTestSpec() MongoMoveSpec {
	return MongoMoveSpec{
		URI: "mongodb://10.1.0.1:27017/?replicaSet=rs0", ReplicaSet: "rs0", RegionTag: "region",
		SourceRegion: "eu-west-1", TargetRegion: "eu-west-2",
		NewMembers:      []string{"10.2.0.1:27017", "10.2.0.2:27017", "10.2.0.3:27017"},
		Priorities:      MongoPriorities{TargetFirst: 2, TargetRest: 1, SourceFirst: 0.5, SourceRest: 0},
		MaxLag:          10 * time.Second,
		CatchUpPeriod:   10 * time.Second,
		TakeoverTimeout: time.Minute,
	}
}

// checkMongoPlan replays a plan and asserts the rules on every reconfig, with health as
// given; it returns the final members and the primary the plan expects.
func checkMongoPlan(t *testing.T, obs activities.MongoReadOutput, steps []MongoStep) ([]activities.MongoMember, string) {
	t.Helper()
	return checkMongoPlanHealth(t, obs, mongoHealth(obs), steps)
}

func checkMongoPlanHealth(t *testing.T, obs activities.MongoReadOutput, health map[string]bool, steps []MongoStep) ([]activities.MongoMember, string) {
	t.Helper()
	cur, primary := obs.Config.Members, obs.Primary
	for i, st := range steps {
		switch st.Kind {
		case MongoStepReconfig:
			require.True(t, activities.SameMembers(st.Prev, cur), "step %d %q: Prev is not the config before it", i, st.Name)
			require.LessOrEqual(t, activities.VotingChanges(cur, st.Members), 1, "step %d %q", i, st.Name)
			require.NoError(t, CheckMongoReconfig(cur, st.Members, health, primary), "step %d %q", i, st.Name)
			for _, m := range st.Members {
				if m.Votes == 0 {
					require.Zero(t, m.Priority, "step %d: non-voter %s has a priority", i, m.Host)
				}
			}
			cur = st.Members
		case MongoStepMovePrimary:
			primary = st.Expect
		}
	}
	return cur, primary
}

func voterCount(ms []activities.MongoMember) int { return voters(ms) }

func stepNames(steps []MongoStep) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name
	}
	return out
}

func TestMongoPlanThreeToSix(t *testing.T) {
	spec, obs := mongoTopology(3, 3)
	plan, err := ComputeMongoMovePlan(spec, obs)
	require.NoError(t, err)
	final, primary := checkMongoPlan(t, obs, plan.Steps)
	require.Equal(t, "10.2.0.1:27017", primary)
	// 3 source voters + 2 target voters: 5, odd; the third target member stays non-voting.
	require.Equal(t, 5, voterCount(final))
	require.Equal(t, []string{
		"add 10.2.0.1:27017, 10.2.0.2:27017, 10.2.0.3:27017",
		"wait for 10.2.0.1:27017, 10.2.0.2:27017, 10.2.0.3:27017",
		"vote 10.2.0.1:27017",
		"vote 10.2.0.2:27017",
		"approve primary move",
		"raise priority 10.2.0.1:27017 0→2",
		"raise priority 10.2.0.2:27017 0→1",
		"lower priority 10.1.0.2:27017 1→0",
		"lower priority 10.1.0.3:27017 1→0",
		"lower priority 10.1.0.1:27017 1→0.5",
		"move primary to eu-west-2",
	}, stepNames(plan.Steps))
	require.Equal(t, 8, plan.Reconfigs)
	require.True(t, plan.Steps[4].NeedsApproval)
	require.Len(t, plan.Plan.Hash, 16)

	// Rolling back from the end state restores the original config exactly.
	after := obs
	after.Config.Members, after.Primary = final, primary
	after.Status = append(after.Status,
		activities.MongoMemberStatus{Host: "10.2.0.1:27017", State: "PRIMARY", Healthy: true},
		activities.MongoMemberStatus{Host: "10.2.0.2:27017", State: "SECONDARY", Healthy: true},
		activities.MongoMemberStatus{Host: "10.2.0.3:27017", State: "SECONDARY", Healthy: true})
	after.Status[0].State = "SECONDARY"
	rb, err := ComputeMongoRollbackPlan(spec, after, obs.Config.Members, obs.Primary)
	require.NoError(t, err)
	got, rbPrimary := checkMongoPlan(t, after, rb)
	require.True(t, activities.SameMembers(got, obs.Config.Members), "rollback ends at %s", activities.DescribeMembers(got))
	require.Equal(t, "10.1.0.1:27017", rbPrimary)
	names := stepNames(rb)
	require.Equal(t, "remove 10.2.0.3:27017", names[len(names)-1], "added members are removed last")
}

func TestMongoPlanFiveToTenWithRemoval(t *testing.T) {
	spec, obs := mongoTopology(5, 5)
	spec.NewMembers = spec.NewMembers[:5]
	spec.DemoteSource, spec.RemoveSource = true, true
	plan, err := ComputeMongoMovePlan(spec, obs)
	require.NoError(t, err)
	final, primary := checkMongoPlan(t, obs, plan.Steps)
	require.Equal(t, "10.2.0.1:27017", primary)
	require.Len(t, final, 5)
	for _, m := range final {
		require.Equal(t, "eu-west-2", m.Tags["region"])
	}
	// 5 target members: all vote (5, odd).
	require.Equal(t, 5, voterCount(final))
	var approvals []string
	for _, s := range plan.Steps {
		if s.Kind == MongoStepApproval {
			approvals = append(approvals, s.Name)
		}
	}
	require.Equal(t, []string{"approve primary move", "approve demote", "approve removal"}, approvals)
}

func TestMongoPlanSevenVotersAlready(t *testing.T) {
	spec, obs := mongoTopology(7, 3)
	plan, err := ComputeMongoMovePlan(spec, obs)
	require.NoError(t, err)
	final, primary := checkMongoPlan(t, obs, plan.Steps)
	require.Equal(t, "10.2.0.1:27017", primary)
	require.Equal(t, 7, voterCount(final))
	// One source secondary gives up its vote (the last listed, all being equal) so the
	// preferred target member can vote.
	require.Contains(t, stepNames(plan.Steps), "unvote 10.1.0.7:27017")
}

func TestMongoPlanUnhealthyMember(t *testing.T) {
	spec, obs := mongoTopology(3, 3)
	obs.Status[2].Healthy, obs.Status[2].State = false, "DOWN"
	plan, err := ComputeMongoMovePlan(spec, obs)
	require.NoError(t, err, "2 of 3 healthy is a majority, and so is every later step")
	checkMongoPlan(t, obs, plan.Steps)

	obs.Status[1].Healthy, obs.Status[1].State = false, "DOWN"
	_, err = ComputeMongoMovePlan(spec, obs)
	require.ErrorContains(t, err, "only 1 of 3 voters are healthy")
}

func TestMongoPlanRejects(t *testing.T) {
	spec, obs := mongoTopology(3, 3)
	obs.Probes[1].Reachable, obs.Probes[1].Detail = false, "connection refused"
	_, err := ComputeMongoMovePlan(spec, obs)
	require.ErrorContains(t, err, "new member 10.2.0.2:27017 is unreachable (connection refused)")

	spec, obs = mongoTopology(3, 3)
	obs.Probes[0].SetName = "other"
	_, err = ComputeMongoMovePlan(spec, obs)
	require.ErrorContains(t, err, `already belongs to replica set "other"`)

	spec, obs = mongoTopology(48, 3)
	for i := range obs.Config.Members[7:] {
		obs.Config.Members[7+i].Votes, obs.Config.Members[7+i].Priority = 0, 0
	}
	_, err = ComputeMongoMovePlan(spec, obs)
	require.ErrorContains(t, err, "51 members; MongoDB allows 50")

	spec, obs = mongoTopology(3, 3)
	obs.Config.Members = append(obs.Config.Members, activities.MongoMember{ID: 9, Host: "10.3.0.1:27017", Votes: 1, Priority: 5,
		Tags: map[string]string{"region": "us-east-1"}, BuildIndexes: true})
	obs.Status = append(obs.Status, activities.MongoMemberStatus{Host: "10.3.0.1:27017", State: "SECONDARY", Healthy: true})
	_, err = ComputeMongoMovePlan(spec, obs)
	require.ErrorContains(t, err, "has priority 5, not below targetFirst 2")

	spec, obs = mongoTopology(3, 3)
	obs.Primary = ""
	_, err = ComputeMongoMovePlan(spec, obs)
	require.ErrorContains(t, err, "no primary")
}

func TestMongoPlanHashChangesWithState(t *testing.T) {
	spec, obs := mongoTopology(3, 3)
	h1 := MongoPlanHash(spec, obs)
	obs.Status[1].Lag = 3 * time.Second
	require.Equal(t, h1, MongoPlanHash(spec, obs), "lag must not drift the plan")
	obs.Config.Version = 2
	require.NotEqual(t, h1, MongoPlanHash(spec, obs))
}

func TestMongoPlanResumesAfterPartialRun(t *testing.T) {
	spec, obs := mongoTopology(3, 3)
	plan, err := ComputeMongoMovePlan(spec, obs)
	require.NoError(t, err)
	// Stop after the first vote: a new plan from there does only what is left.
	mid := obs
	mid.Config.Members = plan.Steps[2].Members
	for _, h := range spec.NewMembers {
		mid.Status = append(mid.Status, activities.MongoMemberStatus{Host: h, State: "SECONDARY", Healthy: true})
	}
	mid.Probes = nil
	again, err := ComputeMongoMovePlan(spec, mid)
	require.NoError(t, err)
	final1, _ := checkMongoPlan(t, obs, plan.Steps)
	final2, _ := checkMongoPlan(t, mid, again.Steps)
	require.True(t, activities.SameMembers(final1, final2))
	require.NotContains(t, strings.Join(stepNames(again.Steps), "|"), "add ")
}

// randomMongoSet builds a random but valid observed set from seed.
func randomMongoSet(r *rand.Rand) (MongoMoveSpec, activities.MongoReadOutput) {
	nSource := 1 + r.IntN(9)
	nOther := r.IntN(3)
	nNew := 1 + r.IntN(7)
	spec, obs := mongoTopology(nSource, nNew)
	obs.Config.Members = nil
	obs.Status = nil
	votersLeft := 1 + r.IntN(MongoMaxVoters)
	for i := range nSource + nOther {
		region := "eu-west-1"
		if i >= nSource {
			region = "us-east-1"
		}
		m := activities.MongoMember{ID: i, Host: fmt.Sprintf("10.1.1.%d:27017", i), Tags: map[string]string{"region": region}, BuildIndexes: true}
		if votersLeft > 0 && (i == 0 || r.IntN(4) > 0) {
			m.Votes, votersLeft = 1, votersLeft-1
			m.Priority = float64(r.IntN(4)) // 0..3
			if region == "us-east-1" {
				m.Priority = float64(r.IntN(2))
			}
		}
		if i == 0 {
			m.Priority = max(m.Priority, 1)
		}
		obs.Config.Members = append(obs.Config.Members, m)
		st := activities.MongoMemberStatus{Host: m.Host, State: "SECONDARY", Healthy: r.IntN(6) > 0}
		if i == 0 {
			st.State, st.Healthy = "PRIMARY", true
			obs.Primary = m.Host
		}
		if !st.Healthy {
			st.State = "DOWN"
		}
		obs.Status = append(obs.Status, st)
	}
	spec.Priorities = MongoPriorities{TargetFirst: float64(3 + r.IntN(3)), TargetRest: float64(r.IntN(3)), SourceFirst: float64(r.IntN(2)) / 2, SourceRest: 0}
	spec.DemoteSource = r.IntN(2) == 0
	spec.RemoveSource = spec.DemoteSource && r.IntN(2) == 0
	for i := range obs.Probes {
		obs.Probes[i].Reachable = r.IntN(10) > 0
	}
	return spec, obs
}

// FuzzMongoPlan checks over random topologies that every plan the planner produces keeps
// the rules at every step (one vote change, votes:0 ⇒ priority 0, ≤7 voters, healthy
// majority, an electable member, the primary kept), ends with the primary in the target
// region, and that the rollback from its end restores the original members.
func FuzzMongoPlan(f *testing.F) {
	for s := range uint64(200) {
		f.Add(s)
	}
	f.Fuzz(checkRandomMongoPlan)
}

// TestMongoPlanProperty runs the fuzz body over many more seeds than the corpus, so a plain
// `go test` covers thousands of topologies (the instrumented fuzzer is slow to build here).
func TestMongoPlanProperty(t *testing.T) {
	n := uint64(5000)
	if testing.Short() {
		n = 500
	}
	for seed := range n {
		checkRandomMongoPlan(t, seed+1000)
	}
}

func checkRandomMongoPlan(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	spec, obs := randomMongoSet(r)
	plan, err := ComputeMongoMovePlan(spec, obs)
	if err != nil {
		return // rejected before any change: allowed, the reason is the error
	}
	final, primary := checkMongoPlan(t, obs, plan.Steps)
	pi := findMember(final, primary)
	require.GreaterOrEqual(t, pi, 0)
	require.Equal(t, "eu-west-2", final[pi].Tags["region"], "seed %d: primary %s", seed, primary)
	require.LessOrEqual(t, voterCount(final), MongoMaxVoters)

	after := obs
	after.Config.Members, after.Primary = final, primary
	after.Status = nil
	health := mongoHealth(obs)
	for _, m := range final {
		st := "SECONDARY"
		if m.Host == primary {
			st = "PRIMARY"
		}
		ok, known := health[m.Host]
		after.Status = append(after.Status, activities.MongoMemberStatus{Host: m.Host, State: st, Healthy: ok || !known})
	}
	rb, err := ComputeMongoRollbackPlan(spec, after, obs.Config.Members, obs.Primary)
	if err != nil {
		return
	}
	// Members the move removed are not in the status; the rollback planner takes them
	// as up (its wait-sync step checks), and so does this replay.
	rbHealth := mongoHealth(after)
	for _, m := range obs.Config.Members {
		if _, ok := rbHealth[m.Host]; !ok {
			rbHealth[m.Host] = true
		}
	}
	back, _ := checkMongoPlanHealth(t, after, rbHealth, rb)
	require.True(t, activities.SameMembers(back, obs.Config.Members), "seed %d: rollback ends at %s, want %s", seed,
		activities.DescribeMembers(back), activities.DescribeMembers(obs.Config.Members))
}
