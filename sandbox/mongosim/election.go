package mongosim

import (
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// election is an election in progress; nobody is writable until it ends.
type election struct {
	reason   string
	started  time.Time
	ends     time.Time
	previous string
}

func (c *Cluster) loop() {
	defer c.wg.Done()
	t := time.NewTicker(c.timing.Tick)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.mu.Lock()
			if !c.closed {
				c.tickLocked(time.Now())
			}
			c.mu.Unlock()
		}
	}
}

func (c *Cluster) tickLocked(now time.Time) {
	c.initialSyncLocked(now)
	c.propagateConfigsLocked(now)
	c.replicateLocked(now)
	c.primaryHealthLocked(now)
	c.electionsLocked(now)
}

func (c *Cluster) setStateLocked(n *node, s memberState, why string) {
	if n.state == s {
		return
	}
	old := n.state
	n.state = s
	c.recordLocked(Event{Kind: EventMemberState, Member: n.host, Message: old.String() + " -> " + s.String() + ": " + why})
	c.log.Info("member state", "member", n.host, "from", old.String(), "to", s.String(), "why", why)
	c.topologyChangedLocked()
}

func (c *Cluster) startInitialSyncLocked(n *node, now time.Time) {
	n.oplog = nil
	n.rebuild()
	n.syncStart = now
	c.setStateLocked(n, stateStartup2, "initial sync started")
}

func (c *Cluster) initialSyncDuration(n *node) time.Duration {
	base := max(c.timing.InitialSyncMin, time.Duration(c.opts.DataSizeMiB)*c.timing.InitialSyncPerMiB)
	return time.Duration(float64(base) * n.syncMult)
}

// initialSyncLocked finishes initial syncs whose time is up: the member copies
// its sync source's data and oplog and becomes SECONDARY.
func (c *Cluster) initialSyncLocked(now time.Time) {
	for _, n := range c.nodes {
		if !n.up || n.state != stateStartup2 || now.Sub(n.syncStart) < c.initialSyncDuration(n) {
			continue
		}
		src := c.visiblePrimary(n)
		if src == nil || src == n {
			continue
		}
		n.oplog = slices.Clone(src.oplog)
		n.rebuild()
		c.setStateLocked(n, stateSecondary, "initial sync done")
	}
}

// canSeeMajority says whether p can exchange heartbeats with a majority of its config's voters.
func (c *Cluster) canSeeMajority(p *node) bool {
	if p.cfg == nil {
		return false
	}
	seen := 0
	for _, h := range p.cfg.voters() {
		if o := c.nodeByHost(h); o != nil && canSee(p, o) {
			seen++
		}
	}
	return seen >= p.cfg.majority()
}

// primaryHealthLocked steps down primaries that lost their majority (after
// ElectionTimeout, like mongod's liveness check) or that see a newer primary.
func (c *Cluster) primaryHealthLocked(now time.Time) {
	for _, p := range c.nodes {
		if !p.up || p.state != statePrimary {
			continue
		}
		for _, o := range c.nodes {
			if o != p && o.state == statePrimary && o.primaryTerm > p.primaryTerm && canSee(p, o) {
				c.stepDownLocked(p, "saw newer term", now, false)
				break
			}
		}
		if p.state != statePrimary {
			continue
		}
		if c.canSeeMajority(p) {
			p.lostMajoritySince = time.Time{}
			continue
		}
		if p.lostMajoritySince.IsZero() {
			p.lostMajoritySince = now
		} else if now.Sub(p.lostMajoritySince) >= c.timing.ElectionTimeout {
			c.stepDownLocked(p, "lost majority", now, false)
		}
	}
}

// stepDownLocked turns primary p into a secondary.
func (c *Cluster) stepDownLocked(p *node, reason string, until time.Time, forced bool) {
	now := time.Now()
	p.stepdownPending = false
	p.lostMajoritySince = time.Time{}
	p.stepDownUntil = until
	if c.primaryLocked() == p {
		c.noPrimarySince = now
		c.primaryLostSince = now
		c.lastPrimary = p.host
	}
	c.recordLocked(Event{Kind: EventStepDown, Member: p.host, StepDown: &StepDownEvent{Reason: reason, Forced: forced}})
	c.setStateLocked(p, stateSecondary, "stepped down: "+reason)
}

// electionsLocked starts elections: when the majority side has no primary for
// ElectionTimeout, or when a caught-up member outranks the primary's priority
// for PriorityTakeoverDelay (mongod's priority takeover).
func (c *Cluster) electionsLocked(now time.Time) {
	if c.election != nil {
		if !now.Before(c.election.ends) {
			c.finishElectionLocked(now)
		}
		return
	}
	p := c.primaryLocked()
	if p == nil || p.partitioned {
		c.takeover = takeoverState{}
		if c.primaryLostSince.IsZero() {
			c.primaryLostSince = now
		}
		if now.Sub(c.primaryLostSince) >= c.timing.ElectionTimeout && c.anyElectable(now) {
			reason := "no primary"
			if p != nil {
				reason = "primary unreachable"
			}
			c.startElectionLocked(reason, now, "")
		}
		return
	}
	c.primaryLostSince = time.Time{}
	pm := p.memberCfg()
	var cand *node
	for _, n := range c.nodes {
		m := n.memberCfg()
		if !n.electable(now) || !canSee(n, p) || m == nil || pm == nil || m.Priority <= pm.Priority {
			continue
		}
		// Priority takeover needs the candidate caught up with the primary.
		if commonPrefix(n.oplog, p.oplog) < len(p.oplog) {
			continue
		}
		if cand == nil || m.Priority > cand.memberCfg().Priority {
			cand = n
		}
	}
	if cand == nil {
		c.takeover = takeoverState{}
		return
	}
	if c.takeover.candidate != cand {
		c.takeover = takeoverState{candidate: cand, since: now}
		return
	}
	if now.Sub(c.takeover.since) >= c.timing.PriorityTakeoverDelay {
		c.takeover = takeoverState{}
		// The old primary steps down as soon as it hears the candidate's higher term.
		c.stepDownLocked(p, "priority takeover", now, false)
		c.startElectionLocked("priority takeover", now, p.host)
	}
}

func (c *Cluster) anyElectable(now time.Time) bool {
	for _, n := range c.nodes {
		if n.electable(now) {
			return true
		}
	}
	return false
}

func (c *Cluster) startElectionLocked(reason string, now time.Time, previous string) {
	if previous == "" {
		previous = c.lastPrimary
	}
	c.election = &election{reason: reason, started: now, ends: now.Add(c.timing.ElectionTime), previous: previous}
	c.log.Info("election started", "reason", reason, "term", c.term+1)
	c.topologyChangedLocked()
}

// finishElectionLocked picks the winner: the most up-to-date electable member
// (then the highest priority) that collects votes from a majority of voters;
// a voter refuses a candidate whose last optime is behind its own.
func (c *Cluster) finishElectionLocked(now time.Time) {
	e := c.election
	c.election = nil
	var cands []*node
	for _, n := range c.nodes {
		if n.electable(now) {
			cands = append(cands, n)
		}
	}
	slices.SortStableFunc(cands, func(a, b *node) int {
		if la, lb := a.lastOpTime(), b.lastOpTime(); opTimeLess(lb, la) {
			return -1
		} else if opTimeLess(la, lb) {
			return 1
		}
		pa, pb := a.memberCfg().Priority, b.memberCfg().Priority
		switch {
		case pa > pb:
			return -1
		case pa < pb:
			return 1
		}
		return 0
	})
	ev := &ElectionEvent{Term: c.term + 1, Reason: e.reason, Previous: e.previous, DurationMs: now.Sub(e.started).Milliseconds()}
	var winner *node
	for _, cand := range cands {
		votes := 0
		for _, h := range cand.cfg.voters() {
			o := c.nodeByHost(h)
			if o == nil || !canSee(cand, o) || (o != cand && o.state == statePrimary && !o.partitioned) {
				continue
			}
			if opTimeLess(cand.lastOpTime(), o.lastOpTime()) {
				continue
			}
			votes++
		}
		ev.Votes, ev.VotesNeeded = votes, cand.cfg.majority()
		if votes >= cand.cfg.majority() {
			winner = cand
			break
		}
	}
	c.term++
	if winner == nil {
		c.primaryLostSince = now
		c.recordLocked(Event{Kind: EventElection, Election: ev, Message: "no candidate won"})
		c.log.Warn("election failed", "term", c.term, "reason", e.reason)
		c.topologyChangedLocked()
		return
	}
	ev.Winner = winner.host
	if !c.noPrimarySince.IsZero() {
		ev.NoWritablePrimaryMs = now.Sub(c.noPrimarySince).Milliseconds()
	}
	c.noPrimarySince = time.Time{}
	c.primaryLostSince = time.Time{}
	winner.primaryTerm = c.term
	winner.electionDate = now
	// The config's term follows the new term, as mongod bumps it on election.
	cfg := *winner.cfg
	cfg.Term = c.term
	winner.cfg, winner.cfgAt = &cfg, now
	c.recordLocked(Event{Kind: EventElection, Member: winner.host, Election: ev})
	c.setStateLocked(winner, statePrimary, "won election: "+e.reason)
	// A new primary writes a no-op to start its term.
	c.appendLocal(winner, opEntry{Op: "n", Doc: mustMarshal(bson.D{{Key: "msg", Value: "new primary"}})})
}

// cmdReplSetStepDown follows mongod: block writes, wait up to
// secondaryCatchUpPeriodSecs for an electable secondary to catch up, then step
// down and hand the election to it (election handoff).
func (c *Cluster) cmdReplSetStepDown(cc *connCtx, req *request) (bson.D, error) {
	n := cc.n
	secs, _ := asInt64(req.body.Lookup("replSetStepDown"))
	if secs == 0 {
		secs = 60
	} else if secs < 0 {
		return nil, errf(codeBadValue, "stepdown period must be a positive integer")
	}
	force := truthy(req.body.Lookup("force"))
	catchUp, ok := asInt64(req.body.Lookup("secondaryCatchUpPeriodSecs"))
	if !ok {
		catchUp = 10
		if force {
			catchUp = 0
		}
	}
	if catchUp < 0 {
		return nil, errf(codeBadValue, "secondaryCatchUpPeriodSecs period must be a positive or absent")
	}
	if secs < catchUp {
		return nil, errf(codeBadValue, "stepdown period must be longer than secondaryCatchUpPeriodSecs")
	}
	if n.state != statePrimary || c.primaryLocked() == nil {
		return nil, errf(codeNotWritablePrimary, "not primary so can't step down").retryable(false)
	}
	if n.stepdownPending {
		return nil, errf(codeConflictingOperationInProgress, "This node is already in the process of stepping down")
	}
	n.stepdownPending = true
	c.topologyChangedLocked()
	start := time.Now()
	deadline := start.Add(time.Duration(catchUp) * time.Second)
	for {
		if n.state != statePrimary {
			n.stepdownPending = false
			return nil, errf(codePrimarySteppedDown, "primary stepped down while waiting for an electable secondary").retryable(false)
		}
		if c.caughtUpElectable(n, time.Now()) != nil {
			break
		}
		if !c.waitLocked(deadline, cc.stop) {
			if c.closed || !n.up {
				n.stepdownPending = false
				return nil, errf(codeInterruptedAtShutdown, "interrupted at shutdown")
			}
			if time.Now().Before(deadline) {
				continue
			}
			if force {
				break
			}
			n.stepdownPending = false
			msg := "No electable secondaries caught up as of " + time.Now().UTC().Format("2006-01-02T15:04:05.000-07:00") +
				". Please use the replSetStepDown command with the argument {force: true} to force node to step down."
			c.recordLocked(Event{Kind: EventStepDown, Member: n.host, StepDown: &StepDownEvent{Reason: "replSetStepDown", Failed: true, Error: msg}})
			c.topologyChangedLocked()
			return nil, errf(codeExceededTimeLimit, "%s", msg)
		}
	}
	now := time.Now()
	c.stepDownLocked(n, "replSetStepDown", now.Add(time.Duration(secs)*time.Second), force)
	c.startElectionLocked("stepdown", now, n.host)
	return bson.D{}, nil
}

// caughtUpElectable is an electable secondary p can see that has all of p's oplog.
func (c *Cluster) caughtUpElectable(p *node, now time.Time) *node {
	for _, o := range c.nodes {
		if o != p && o.electable(now) && canSee(p, o) && commonPrefix(o.oplog, p.oplog) == len(p.oplog) {
			return o
		}
	}
	return nil
}

func (c *Cluster) cmdReplSetFreeze(cc *connCtx, req *request) (bson.D, error) {
	n := cc.n
	if n.cfg == nil {
		return nil, errf(codeNotYetInitialized, "no replset config has been received")
	}
	secs, _ := asInt64(req.body.Lookup("replSetFreeze"))
	if n.state == statePrimary {
		return nil, errf(codeNotSecondary, "cannot freeze node when primary or running for election. state: Primary")
	}
	if secs <= 0 {
		n.frozenUntil = time.Time{}
		c.bumpLocked()
		return bson.D{{Key: "info", Value: "unfreezing"}}, nil
	}
	n.frozenUntil = time.Now().Add(time.Duration(secs) * time.Second)
	return bson.D{}, nil
}
