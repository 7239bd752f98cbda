// The MongoDB planner's steps: each reconfig it emits is checked against mongod's rules
// (one vote changed, a majority of voters healthy) before it is kept.

package workflows

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ferryhq/ferry/activities"
)

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
