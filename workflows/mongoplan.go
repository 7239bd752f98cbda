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

// CheckMongoReconfig applies the rules every planned reconfig must keep, from prev to next:
// at most one vote added or removed (MongoDB's safe reconfig), votes 0 or 1 and votes:0 ⇒
// priority 0, priorities in 0..1000 and 0 for arbiters, hidden and delayed members, 1..7
// voters and at most 50 members, unique hosts, a majority of the voters of both configs
// healthy (or the reconfig cannot commit), a healthy electable member, and the primary
// neither removed nor stripped of its vote. healthy says which hosts are up.
func CheckMongoReconfig(prev, next []activities.MongoMember, healthy map[string]bool, primary string) error {
	if n := activities.VotingChanges(prev, next); n > 1 {
		return fmt.Errorf("changes %d votes; a reconfig may add or remove at most one", n)
	}
	if len(next) == 0 || len(next) > MongoMaxMembers {
		return fmt.Errorf("has %d members; a replica set has 1..%d", len(next), MongoMaxMembers)
	}
	seen := map[string]bool{}
	electable := false
	for _, m := range next {
		switch {
		case seen[m.Host]:
			return fmt.Errorf("lists %s twice", m.Host)
		case m.Votes != 0 && m.Votes != 1:
			return fmt.Errorf("gives %s %d votes; votes are 0 or 1", m.Host, m.Votes)
		case m.Votes == 0 && m.Priority != 0:
			return fmt.Errorf("gives non-voting %s priority %g; votes:0 needs priority 0", m.Host, m.Priority)
		case m.Priority < 0 || m.Priority > 1000:
			return fmt.Errorf("gives %s priority %g, outside 0..1000", m.Host, m.Priority)
		case (m.ArbiterOnly || m.Hidden || m.SecondaryDelaySecs > 0 || !m.BuildIndexes) && m.Priority != 0:
			return fmt.Errorf("gives %s priority %g, but arbiters, hidden, delayed and no-index members must keep priority 0", m.Host, m.Priority)
		}
		seen[m.Host] = true
		if m.Votes == 1 && m.Priority > 0 && !m.ArbiterOnly && healthy[m.Host] {
			electable = true
		}
	}
	for _, cfg := range [][]activities.MongoMember{prev, next} {
		v, up := 0, 0
		for _, m := range cfg {
			if m.Votes == 1 {
				v++
				if healthy[m.Host] {
					up++
				}
			}
		}
		if v < 1 || v > MongoMaxVoters {
			return fmt.Errorf("has %d voters; a replica set has 1..%d", v, MongoMaxVoters)
		}
		if up < v/2+1 {
			return fmt.Errorf("leaves %d healthy of %d voters; committing a config needs a majority (%d)", up, v, v/2+1)
		}
	}
	if !electable {
		return fmt.Errorf("leaves no healthy voting member with priority > 0 to be primary")
	}
	if primary != "" {
		i := findMember(next, primary)
		if i < 0 {
			return fmt.Errorf("removes the primary %s; move the primary first", primary)
		}
		if next[i].Votes != 1 {
			return fmt.Errorf("takes the vote of the primary %s; move the primary first", primary)
		}
	}
	return nil
}

func (p *mongoPlanner) emit(name, desc string, next []activities.MongoMember) error {
	if err := CheckMongoReconfig(p.cur, next, p.healthy, p.primary); err != nil {
		return fmt.Errorf("step %q %w", name, err)
	}
	p.steps = append(p.steps, MongoStep{
		Kind: MongoStepReconfig, Phase: p.phase, Name: name,
		Description: desc + " → " + activities.DescribeMembers(next),
		Prev:        p.cur, Members: next,
	})
	p.cur = next
	return nil
}

func (p *mongoPlanner) gate(kind, name, desc string, f func(*MongoStep)) {
	st := MongoStep{Kind: kind, Phase: p.phase, Name: name, Description: desc}
	if f != nil {
		f(&st)
	}
	p.steps = append(p.steps, st)
}

// addMembers adds every goal member missing from the config in ONE reconfig, as votes:0,
// priority:0. Batching is safe because non-voters change no vote and no majority, and it
// lets the initial syncs run in parallel; the votes come later, one per reconfig.
func (p *mongoPlanner) addMembers(goal []activities.MongoMember, waitFor []string) error {
	next := cloneMembers(p.cur)
	var added []string
	for _, g := range goal {
		if findMember(next, g.Host) >= 0 {
			continue
		}
		next = append(next, activities.MongoMember{Host: g.Host, Votes: 0, Priority: 0, Tags: maps.Clone(g.Tags), BuildIndexes: true})
		added = append(added, g.Host)
	}
	if len(added) > 0 {
		if err := p.emit(fmt.Sprintf("add %s", strings.Join(added, ", ")),
			fmt.Sprintf("add %d member(s) as votes:0 priority:0", len(added)), next); err != nil {
			return err
		}
	}
	hosts := slices.Clone(waitFor)
	for _, h := range added {
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) > 0 {
		p.gate(MongoStepWaitSync, "wait for "+strings.Join(hosts, ", "),
			"wait until each is SECONDARY with replication lag under maxLag", func(s *MongoStep) { s.Hosts = hosts })
	}
	return nil
}

// roomCandidate picks a voter to give up its vote so another may get one within the
// limit of 7: one the goal does not want voting, never the primary; down members first
// (their vote only hurts the majority), then the lowest priority, then the last listed.
func (p *mongoPlanner) roomCandidate(goal []activities.MongoMember) int {
	best := -1
	for i, m := range p.cur {
		if m.Votes != 1 || m.Host == p.primary {
			continue
		}
		if gi := findMember(goal, m.Host); gi >= 0 && goal[gi].Votes == 1 {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := p.cur[best]
		if c := cmp.Or(cmpBool(!p.healthy[m.Host], !p.healthy[b.Host]), cmp.Compare(b.Priority, m.Priority)); c >= 0 {
			best = i
		}
	}
	return best
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// voteUps gives a vote (with priority 0: priorities come later) to every member the goal
// wants voting, one per reconfig. At 7 voters it makes room by taking a vote the goal
// does not want, when allowed; the others are returned as held for downs.
func (p *mongoPlanner) voteUps(goal []activities.MongoMember, makeRoom bool) ([]string, error) {
	var held []string
	for _, g := range goal {
		i := findMember(p.cur, g.Host)
		if g.Votes != 1 || i < 0 || p.cur[i].Votes == 1 {
			continue
		}
		if voters(p.cur) >= MongoMaxVoters {
			r := -1
			if makeRoom {
				r = p.roomCandidate(goal)
			}
			if r < 0 {
				held = append(held, g.Host)
				continue
			}
			next := cloneMembers(p.cur)
			next[r].Votes, next[r].Priority = 0, 0
			if err := p.emit("unvote "+next[r].Host, fmt.Sprintf("take the vote of %s (votes:0 priority:0) to stay within %d voters", next[r].Host, MongoMaxVoters), next); err != nil {
				return nil, err
			}
			i = findMember(p.cur, g.Host)
		}
		next := cloneMembers(p.cur)
		next[i].Votes, next[i].Priority = 1, 0
		if err := p.emit("vote "+g.Host, fmt.Sprintf("give %s a vote (priority stays 0)", g.Host), next); err != nil {
			return nil, err
		}
	}
	return held, nil
}

// priorities changes one member's priority per reconfig: raises first, highest goal
// priority first, so the member meant to lead is the one that outranks the primary and a
// single priority takeover moves it there; then lowerings, the primary's last, so the set
// always has its preferred candidate before the old one is lowered. Members the goal
// removes or takes the vote of are lowered to 0 here, so none of them can hold the primary.
func (p *mongoPlanner) priorities(goal []activities.MongoMember, held []string) error {
	want := func(m activities.MongoMember) float64 {
		gi := findMember(goal, m.Host)
		if gi < 0 || goal[gi].Votes == 0 {
			return 0
		}
		return goal[gi].Priority
	}
	var raises, lowers []int
	for i, m := range p.cur {
		if m.Votes != 1 || slices.Contains(held, m.Host) {
			continue
		}
		switch w := want(m); {
		case w > m.Priority:
			raises = append(raises, i)
		case w < m.Priority:
			lowers = append(lowers, i)
		}
	}
	slices.SortStableFunc(raises, func(a, b int) int { return cmp.Compare(want(p.cur[b]), want(p.cur[a])) })
	slices.SortStableFunc(lowers, func(a, b int) int { return cmpBool(p.cur[a].Host == p.primary, p.cur[b].Host == p.primary) })
	for _, i := range slices.Concat(raises, lowers) {
		next := cloneMembers(p.cur)
		old := next[i].Priority
		next[i].Priority = want(next[i])
		verb := "raise"
		if next[i].Priority < old {
			verb = "lower"
		}
		if err := p.emit(fmt.Sprintf("%s priority %s %g→%g", verb, next[i].Host, old, next[i].Priority),
			fmt.Sprintf("%s the priority of %s from %g to %g", verb, next[i].Host, old, next[i].Priority), next); err != nil {
			return err
		}
	}
	return nil
}

// expectedPrimary is who leads once priorities settle: the highest-priority healthy
// electable member; the primary keeps the role on a tie (takeover needs a higher priority).
func (p *mongoPlanner) expectedPrimary() string {
	best := ""
	bestP := 0.0
	for _, m := range p.cur {
		if m.Votes != 1 || m.Priority <= 0 || !p.healthy[m.Host] || m.ArbiterOnly {
			continue
		}
		if m.Priority > bestP || (m.Priority == bestP && m.Host == p.primary) {
			best, bestP = m.Host, m.Priority
		}
	}
	return best
}

func (p *mongoPlanner) movePrimary(name, region, regionTag string) error {
	expect := p.expectedPrimary()
	if expect == "" {
		return fmt.Errorf("no electable member would remain to be primary")
	}
	i := findMember(p.cur, expect)
	if p.cur[i].Tags[regionTag] != region {
		return fmt.Errorf("after the priority changes %s (%s=%q, priority %g) would lead, not a member of %s; check the priorities of members outside both regions",
			expect, regionTag, p.cur[i].Tags[regionTag], p.cur[i].Priority, region)
	}
	desc := fmt.Sprintf("wait for a priority takeover by %s; if none in time, replSetStepDown with the catch-up period; verify the primary is tagged %s=%s", expect, regionTag, region)
	if expect == p.primary {
		desc = fmt.Sprintf("verify the primary %s is tagged %s=%s", expect, regionTag, region)
	}
	p.gate(MongoStepMovePrimary, name, desc, func(s *MongoStep) { s.Region, s.Expect = region, expect })
	p.primary = expect
	return nil
}

// downs removes members the goal drops and takes votes the goal does not want, one per
// reconfig, granting held votes (with their goal priority) as room appears, so the set
// stays within 7 voters and odd where it can.
func (p *mongoPlanner) downs(goal []activities.MongoMember, held []string) error {
	grant := func() error {
		for len(held) > 0 && voters(p.cur) < MongoMaxVoters {
			h := held[0]
			held = held[1:]
			i := findMember(p.cur, h)
			g := goal[findMember(goal, h)]
			next := cloneMembers(p.cur)
			next[i].Votes, next[i].Priority = 1, g.Priority
			if err := p.emit("vote "+h, fmt.Sprintf("give %s a vote and priority %g", h, g.Priority), next); err != nil {
				return err
			}
		}
		return nil
	}
	for _, m := range slices.Clone(p.cur) {
		gi := findMember(goal, m.Host)
		i := findMember(p.cur, m.Host)
		next := cloneMembers(p.cur)
		switch {
		case gi < 0:
			next = slices.Delete(next, i, i+1)
			if err := p.emit("remove "+m.Host, fmt.Sprintf("remove %s (votes %d)", m.Host, m.Votes), next); err != nil {
				return err
			}
		case goal[gi].Votes == 0 && m.Votes == 1:
			next[i].Votes, next[i].Priority = 0, 0
			if err := p.emit("unvote "+m.Host, fmt.Sprintf("take the vote of %s (votes:0 priority:0)", m.Host), next); err != nil {
				return err
			}
		default:
			continue
		}
		if err := grant(); err != nil {
			return err
		}
	}
	if err := grant(); err != nil {
		return err
	}
	if len(held) > 0 {
		return fmt.Errorf("cannot give %s a vote within %d voters", strings.Join(held, ", "), MongoMaxVoters)
	}
	return nil
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
		ID:           MongoPrimaryMoveWorkflowID(spec.ReplicaSet),
		Kind:         KindMongoPrimaryMove,
		Steps:        planned,
		Observations: obsLines,
		Hash:         MongoPlanHash(spec, obs),
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
	d := mongoPlanDoc(spec, obs)
	return mongoPlanHashV1(struct {
		Version string
		Spec    MongoMoveSpec
		SetName string
		CfgVer  int64
		Primary string
		Members any
		Probes  []string
	}{"ferry/mongo-primary-move/plan/v1", d.Spec, d.SetName, d.CfgVer, d.Primary, d.Members, d.Probes})
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
