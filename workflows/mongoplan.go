package workflows

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ferryhq/ferry/activities"
)

// Kinds of MongoStep.
const (
	MongoStepReconfig    = "reconfig"
	MongoStepWaitSync    = "wait-sync"
	MongoStepApproval    = "approval"
	MongoStepMovePrimary = "move-primary"
)

// Phases of a MongoDB primary move.
const (
	MongoPhaseExtend   = "extend"
	MongoPhaseMove     = "move"
	MongoPhaseDemote   = "demote"
	MongoPhaseRemove   = "remove"
	MongoPhaseRollback = "rollback"
)

// MongoDB's limits on a replica set config.
const (
	MongoMaxMembers = 50
	MongoMaxVoters  = 7
)

const mongoPlanHashVersion = "ferry/mongo-primary-move/plan/v2"

// MongoStep is one step of a planned move or rollback. A reconfig step carries the whole
// member list before (Prev) and after (Members) it: the activity compares both with the
// live config, which makes it idempotent and lets it refuse a config changed by others.
type MongoStep struct {
	Kind        string
	Phase       string
	Name        string
	Description string
	Prev        []activities.MongoMember `json:",omitempty"`
	Members     []activities.MongoMember `json:",omitempty"`
	// Hosts a wait-sync step waits for.
	Hosts []string `json:",omitempty"`
	// Region a move-primary step must end with the primary in, and Expect the member the
	// planner expects to win (informational: any member of Region passes).
	Region string `json:",omitempty"`
	Expect string `json:",omitempty"`
	// NeedsApproval is false on an approval step the spec skips.
	NeedsApproval bool `json:",omitempty"`
}

// MongoMovePlan is a computed move: the steps, the config a rollback restores, and the
// plan shown to people.
type MongoMovePlan struct {
	Steps     []MongoStep
	Original  []activities.MongoMember
	Primary   string
	Reconfigs int
	Plan      Plan
}

// mongoPlanner replays a plan on a model of the set: every reconfig it emits is checked
// against the safety rules from the config before it, so a plan that would break one is
// an error before anything changes, never a step that fails halfway.
type mongoPlanner struct {
	cur     []activities.MongoMember
	primary string
	healthy map[string]bool
	phase   string
	steps   []MongoStep
}

func cloneMembers(ms []activities.MongoMember) []activities.MongoMember {
	out := make([]activities.MongoMember, len(ms))
	for i, m := range ms {
		m.Tags = maps.Clone(m.Tags)
		out[i] = m
	}
	return out
}

func findMember(ms []activities.MongoMember, host string) int {
	return slices.IndexFunc(ms, func(m activities.MongoMember) bool { return m.Host == host })
}

func voters(ms []activities.MongoMember) int {
	n := 0
	for _, m := range ms {
		n += m.Votes
	}
	return n
}

// mongoHealth says which members can take part: config members healthy in the status
// (PRIMARY, SECONDARY, ARBITER) and reachable members-to-be.
func mongoHealth(obs activities.MongoReadOutput) map[string]bool {
	h := map[string]bool{}
	for _, s := range obs.Status {
		h[s.Host] = s.Healthy && (s.State == "PRIMARY" || s.State == "SECONDARY" || s.State == "ARBITER")
	}
	for _, pr := range obs.Probes {
		h[pr.Host] = pr.Reachable
	}
	return h
}

// mongoGoals are the configs the phases of a move aim at.
type mongoGoals struct {
	move, demote, remove []activities.MongoMember
}

// targetVoters is how many target members vote: as many as fit within 7 voters next to
// the others, one fewer when the count would be even (an even count tolerates no more
// failures than the odd count below it, and costs a reconfig), but never fewer than one
// target voter nor fewer than 3 voters in all (below 3 no member may fail anyway).
func targetVoters(others, targets int) int {
	t := min(targets, MongoMaxVoters-others)
	if (others+t)%2 == 0 && t > 1 && others+t-1 >= 3 {
		t--
	}
	return t
}

func mongoMoveGoals(spec MongoMoveSpec, obs activities.MongoReadOutput, healthy map[string]bool) (mongoGoals, error) {
	cur := obs.Config.Members
	tag := spec.RegionTag
	isTarget := func(h string) bool { return slices.Contains(spec.NewMembers, h) }
	others := 0 // voters that stay voting: every voter not a target member
	for _, m := range cur {
		if m.Votes == 1 && !isTarget(m.Host) {
			others++
		}
	}
	move := cloneMembers(cur)
	// Make room for at least one target voter when 7 already vote: take the vote of a
	// source secondary (down ones first, then the lowest priority, then the last listed).
	for others >= MongoMaxVoters {
		best := -1
		for i, m := range move {
			if m.Votes != 1 || isTarget(m.Host) || m.Host == obs.Primary || m.Tags[tag] != spec.SourceRegion {
				continue
			}
			if best < 0 || cmp.Or(cmpBool(!healthy[m.Host], !healthy[move[best].Host]), cmp.Compare(move[best].Priority, m.Priority)) >= 0 {
				best = i
			}
		}
		if best < 0 {
			return mongoGoals{}, fmt.Errorf("%d members vote already and none is a %s secondary whose vote could make room for a %s member", others, spec.SourceRegion, spec.TargetRegion)
		}
		move[best].Votes, move[best].Priority = 0, 0
		others--
	}
	t := targetVoters(others, len(spec.NewMembers))
	firstSource := true
	for i := range move {
		m := &move[i]
		if isTarget(m.Host) || m.Tags[tag] != spec.SourceRegion || m.Votes != 1 {
			continue
		}
		if firstSource {
			m.Priority, firstSource = spec.Priorities.SourceFirst, false
		} else {
			m.Priority = spec.Priorities.SourceRest
		}
	}
	setTarget := func(ms []activities.MongoMember, nVoting int) []activities.MongoMember {
		for k, h := range spec.NewMembers {
			g := activities.MongoMember{Host: h, Tags: map[string]string{tag: spec.TargetRegion}, BuildIndexes: true}
			if i := findMember(ms, h); i >= 0 {
				g = ms[i]
				g.Tags = maps.Clone(g.Tags)
			}
			g.Votes, g.Priority = 0, 0
			if k < nVoting {
				g.Votes, g.Priority = 1, spec.Priorities.TargetRest
				if k == 0 {
					g.Priority = spec.Priorities.TargetFirst
				}
			}
			if i := findMember(ms, h); i >= 0 {
				ms[i] = g
			} else {
				ms = append(ms, g)
			}
		}
		return ms
	}
	move = setTarget(move, t)
	for _, m := range move {
		if !isTarget(m.Host) && m.Tags[tag] != spec.SourceRegion && m.Priority >= spec.Priorities.TargetFirst {
			return mongoGoals{}, fmt.Errorf("%s (%s=%q) has priority %g, not below targetFirst %g, so it would keep or take the primary; lower it first or raise targetFirst",
				m.Host, tag, m.Tags[tag], m.Priority, spec.Priorities.TargetFirst)
		}
	}
	demote := cloneMembers(move)
	for i := range demote {
		if demote[i].Tags[tag] == spec.SourceRegion && !isTarget(demote[i].Host) {
			demote[i].Priority = 0
		}
	}
	var remove []activities.MongoMember
	otherVoters := 0
	for _, m := range demote {
		if m.Tags[tag] == spec.SourceRegion && !isTarget(m.Host) {
			continue
		}
		remove = append(remove, m)
		if !isTarget(m.Host) {
			otherVoters += m.Votes
		}
	}
	remove = setTarget(remove, targetVoters(otherVoters, len(spec.NewMembers)))
	return mongoGoals{move: move, demote: demote, remove: remove}, nil
}

// ComputeMongoMovePlan computes every step of a move from the spec and the observed set.
// It is pure: `ferry plan` and the workflow compute the same steps from the same inputs,
// and the hash over those inputs detects drift between them. A goal that cannot be
// reached safely is an error naming the reason, before any change.
func ComputeMongoMovePlan(spec MongoMoveSpec, obs activities.MongoReadOutput) (MongoMovePlan, error) {
	cfg := obs.Config
	tag := spec.RegionTag
	if spec.ReplicaSet != "" && cfg.SetName != spec.ReplicaSet {
		return MongoMovePlan{}, fmt.Errorf("the set is %q, not %q", cfg.SetName, spec.ReplicaSet)
	}
	if obs.Primary == "" || findMember(cfg.Members, obs.Primary) < 0 {
		return MongoMovePlan{}, fmt.Errorf("the set has no primary now; a move starts from a healthy set")
	}
	if len(spec.NewMembers) == 0 {
		return MongoMovePlan{}, fmt.Errorf("no new members to move the primary to")
	}
	healthy := mongoHealth(obs)
	v, up := 0, 0
	for _, m := range cfg.Members {
		if m.Votes == 1 {
			v++
			if healthy[m.Host] {
				up++
			}
		}
	}
	if up < v/2+1 {
		return MongoMovePlan{}, fmt.Errorf("only %d of %d voters are healthy; every reconfig needs a healthy majority (%d): repair the set first", up, v, v/2+1)
	}
	hasSource := false
	for _, m := range cfg.Members {
		if m.Tags[tag] == spec.SourceRegion {
			hasSource = true
		}
	}
	if !hasSource {
		return MongoMovePlan{}, fmt.Errorf("no member is tagged %s=%s; check regionTag and sourceRegion against the member tags", tag, spec.SourceRegion)
	}
	added := 0
	for _, h := range spec.NewMembers {
		if i := findMember(cfg.Members, h); i >= 0 {
			if r := cfg.Members[i].Tags[tag]; r != spec.TargetRegion {
				return MongoMovePlan{}, fmt.Errorf("new member %s is already in the set, tagged %s=%q, not %s", h, tag, r, spec.TargetRegion)
			}
			if m := cfg.Members[i]; m.ArbiterOnly || m.Hidden || m.SecondaryDelaySecs > 0 || !m.BuildIndexes {
				return MongoMovePlan{}, fmt.Errorf("new member %s is already in the set as an arbiter, hidden, delayed or no-index member, which can never be primary", h)
			}
			continue
		}
		added++
		pi := slices.IndexFunc(obs.Probes, func(p activities.MongoProbe) bool { return p.Host == h })
		switch {
		case pi < 0 || !obs.Probes[pi].Reachable:
			detail := "not probed"
			if pi >= 0 {
				detail = obs.Probes[pi].Detail
			}
			return MongoMovePlan{}, fmt.Errorf("new member %s is unreachable (%s); start it with --replSet %s and open the port to the set", h, detail, cfg.SetName)
		case obs.Probes[pi].SetName != "" && obs.Probes[pi].SetName != cfg.SetName:
			return MongoMovePlan{}, fmt.Errorf("new member %s already belongs to replica set %q; use an empty member started with --replSet %s", h, obs.Probes[pi].SetName, cfg.SetName)
		}
	}
	if n := len(cfg.Members) + added; n > MongoMaxMembers {
		return MongoMovePlan{}, fmt.Errorf("the set would have %d members; MongoDB allows %d", n, MongoMaxMembers)
	}
	goals, err := mongoMoveGoals(spec, obs, healthy)
	if err != nil {
		return MongoMovePlan{}, err
	}

	p := &mongoPlanner{cur: cloneMembers(cfg.Members), primary: obs.Primary, healthy: healthy, phase: MongoPhaseExtend}
	if err := p.addMembers(goals.move, nil); err != nil {
		return MongoMovePlan{}, err
	}
	held, err := p.voteUps(goals.move, true)
	if err != nil {
		return MongoMovePlan{}, err
	}
	if len(held) > 0 {
		return MongoMovePlan{}, fmt.Errorf("cannot give %s a vote within %d voters", strings.Join(held, ", "), MongoMaxVoters)
	}
	p.phase = MongoPhaseMove
	p.gate(MongoStepApproval, "approve primary move",
		fmt.Sprintf("approval before the primary moves to %s", spec.TargetRegion),
		func(s *MongoStep) { s.NeedsApproval = !spec.SkipPrimaryApproval })
	if err := p.priorities(goals.move, nil); err != nil {
		return MongoMovePlan{}, err
	}
	if err := p.movePrimary("move primary to "+spec.TargetRegion, spec.TargetRegion, tag); err != nil {
		return MongoMovePlan{}, err
	}
	if spec.DemoteSource {
		p.phase = MongoPhaseDemote
		p.gate(MongoStepApproval, "approve demote", fmt.Sprintf("approval before the %s members get priority 0", spec.SourceRegion),
			func(s *MongoStep) { s.NeedsApproval = true })
		if err := p.priorities(goals.demote, nil); err != nil {
			return MongoMovePlan{}, err
		}
	}
	if spec.RemoveSource {
		p.phase = MongoPhaseRemove
		p.gate(MongoStepApproval, "approve removal", fmt.Sprintf("approval before the %s members are removed", spec.SourceRegion),
			func(s *MongoStep) { s.NeedsApproval = true })
		held, err := p.voteUps(goals.remove, false)
		if err != nil {
			return MongoMovePlan{}, err
		}
		if err := p.priorities(goals.remove, held); err != nil {
			return MongoMovePlan{}, err
		}
		if err := p.downs(goals.remove, held); err != nil {
			return MongoMovePlan{}, err
		}
	}
	return finishMongoPlan(spec, obs, p.steps), nil
}

// ComputeMongoRollbackPlan computes the way back from the observed set to the original
// members by the same rules: re-add removed members, restore votes one at a time,
// restore priorities (the primary moves back), then remove the added members last.
func ComputeMongoRollbackPlan(spec MongoMoveSpec, obs activities.MongoReadOutput, original []activities.MongoMember, originalPrimary string) ([]MongoStep, error) {
	if obs.Primary == "" {
		return nil, fmt.Errorf("the set has no primary now; a rollback reconfig needs one")
	}
	healthy := mongoHealth(obs)
	for _, m := range original {
		if _, ok := healthy[m.Host]; !ok {
			// A member removed by the move is not in the status; it is still running
			// unless someone stopped it, and the wait-sync step will tell.
			healthy[m.Host] = true
		}
	}
	p := &mongoPlanner{cur: cloneMembers(obs.Config.Members), primary: obs.Primary, healthy: healthy, phase: MongoPhaseRollback}
	region := spec.SourceRegion
	if i := findMember(original, originalPrimary); i >= 0 && original[i].Tags[spec.RegionTag] != "" {
		region = original[i].Tags[spec.RegionTag]
	}
	if err := p.addMembers(original, nil); err != nil {
		return nil, err
	}
	held, err := p.voteUps(original, true)
	if err != nil {
		return nil, err
	}
	if err := p.priorities(original, held); err != nil {
		return nil, err
	}
	if err := p.movePrimary("move primary back to "+region, region, spec.RegionTag); err != nil {
		return nil, err
	}
	if err := p.downs(original, held); err != nil {
		return nil, err
	}
	return p.steps, nil
}

func finishMongoPlan(spec MongoMoveSpec, obs activities.MongoReadOutput, steps []MongoStep) MongoMovePlan {
	plan := MongoMovePlan{Steps: steps, Original: cloneMembers(obs.Config.Members), Primary: obs.Primary}
	planned := make([]PlannedStep, len(steps))
	for i, st := range steps {
		ps := PlannedStep{Name: st.Name, Description: st.Description, NeedsApproval: st.NeedsApproval}
		switch st.Kind {
		case MongoStepReconfig:
			plan.Reconfigs++
		case MongoStepMovePrimary:
			ps.Wait = spec.TakeoverTimeout
		}
		planned[i] = ps
	}
	obsLines := []string{
		fmt.Sprintf("replica set %s, config version %d, primary %s", obs.Config.SetName, obs.Config.Version, obs.Primary),
	}
	for _, m := range obs.Config.Members {
		state := "not in status"
		for _, s := range obs.Status {
			if s.Host == m.Host {
				state = s.State
			}
		}
		obsLines = append(obsLines, fmt.Sprintf("member %s %s=%s votes %d priority %g: %s", m.Host, spec.RegionTag, m.Tags[spec.RegionTag], m.Votes, m.Priority, state))
	}
	for _, pr := range obs.Probes {
		obsLines = append(obsLines, fmt.Sprintf("to add %s: %s", pr.Host, pr.Detail))
	}
	obsLines = append(obsLines,
		fmt.Sprintf("%d reconfig(s); rollback restores %s one vote per reconfig and moves the primary back", plan.Reconfigs, activities.DescribeMembers(obs.Config.Members)))
	plan.Plan = Plan{
		ID:           MongoPrimaryMoveWorkflowID(spec.ReplicaSet, spec.URI),
		Kind:         KindMongoPrimaryMove,
		Steps:        planned,
		Observations: obsLines,
		Hash:         MongoPlanHash(spec, obs),
		Resources:    []Resource{ReplicaSetResource(obs.Config.SetName, obs.Config.ReplicaSetID, activities.SortedHosts(obs.Config.Members))},
	}
	return plan
}

// MongoPlanHash hashes (PlanHash) the spec and the parts of the
// observed state the plan depends on: config version and members, the primary, which
// members are healthy and what the probes found. Lag is left out: it changes every
// second and only decides how long a wait lasts, not which steps run.
func MongoPlanHash(spec MongoMoveSpec, obs activities.MongoReadOutput) string {
	return PlanHash(mongoPlanHashVersion, mongoPlanDoc(spec, obs))
}

// mongoPlanHashesV1 is the v1 hash of the same plan (see planhash_v1.go).
func mongoPlanHashesV1(spec MongoMoveSpec, obs activities.MongoReadOutput) string {
	// v1 encoded the version first, then the same fields (embedding encodes them flat).
	return mongoPlanHashV1(struct {
		Version string
		mongoHashDoc
	}{"ferry/mongo-primary-move/plan/v1", mongoPlanDoc(spec, obs)})
}

type mongoHashDoc struct {
	Spec    MongoMoveSpec
	SetName string
	CfgVer  int64
	Primary string
	Members any
	Probes  []string
}

func mongoPlanDoc(spec MongoMoveSpec, obs activities.MongoReadOutput) mongoHashDoc {
	type member struct {
		ID                 int
		Host               string
		Votes              int
		Priority           float64
		Tags               [][2]string
		Arbiter, Hidden    bool
		SecondaryDelaySecs int64
		Healthy            bool
	}
	health := mongoHealth(obs)
	members := make([]member, len(obs.Config.Members))
	for i, m := range obs.Config.Members {
		var tags [][2]string
		// Sorted before use, so the map's iteration order never reaches the hash.
		//workflowcheck:ignore
		for _, k := range slices.Sorted(maps.Keys(m.Tags)) {
			tags = append(tags, [2]string{k, m.Tags[k]})
		}
		members[i] = member{m.ID, m.Host, m.Votes, m.Priority, tags, m.ArbiterOnly, m.Hidden, m.SecondaryDelaySecs, health[m.Host]}
	}
	slices.SortFunc(members, func(a, b member) int { return cmp.Compare(a.Host, b.Host) })
	probes := make([]string, 0, len(obs.Probes))
	for _, p := range obs.Probes {
		probes = append(probes, fmt.Sprintf("%s reachable=%v set=%q", p.Host, p.Reachable, p.SetName))
	}
	slices.Sort(probes)
	return mongoHashDoc{spec, obs.Config.SetName, obs.Config.Version, obs.Primary, members, probes}
}
