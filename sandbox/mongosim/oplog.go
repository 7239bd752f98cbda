package mongosim

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// opEntry is one oplog entry. Entries are immutable once written, so members
// can share them; each member holds its own slice.
type opEntry struct {
	TS   bson.Timestamp
	Term int64
	Wall time.Time
	Op   string // "i" insert, "u" replace-by-_id, "d" delete-by-_id, "c" drop, "n" no-op
	NS   string
	Doc  bson.Raw      // inserted or replacement document
	ID   bson.RawValue // _id for u and d
	Txn  *txnKey       // retryable write statement that produced it
}

// txnKey identifies one statement of a retryable write; a retry with the same
// key is answered from history rather than applied twice.
type txnKey struct {
	lsid string
	txn  int64
	stmt int32
}

type opTime struct {
	ts   bson.Timestamp
	term int64
	wall time.Time
}

var zeroOpTime = opTime{term: -1}

func (o opTime) doc() bson.D {
	return bson.D{{Key: "ts", Value: o.ts}, {Key: "t", Value: o.term}}
}

func (e opEntry) opTime() opTime { return opTime{ts: e.TS, term: e.Term, wall: e.Wall} }

func (n *node) lastOpTime() opTime {
	if len(n.oplog) == 0 {
		return zeroOpTime
	}
	return n.oplog[len(n.oplog)-1].opTime()
}

func (n *node) lastWall() time.Time {
	if len(n.oplog) == 0 {
		return time.Unix(0, 0)
	}
	return n.oplog[len(n.oplog)-1].Wall
}

func tsLess(a, b bson.Timestamp) bool { return a.T < b.T || (a.T == b.T && a.I < b.I) }

// opTimeLess orders optimes by term, then timestamp, as elections compare them.
func opTimeLess(a, b opTime) bool {
	if a.term != b.term {
		return a.term < b.term
	}
	return tsLess(a.ts, b.ts)
}

// nextTSLocked hands out cluster-unique, increasing timestamps.
func (c *Cluster) nextTSLocked(now time.Time) bson.Timestamp {
	secs := uint32(now.Unix())
	if secs <= c.lastTS.T {
		c.lastTS.I++
	} else {
		c.lastTS = bson.Timestamp{T: secs, I: 1}
	}
	return c.lastTS
}

// appendLocal writes an entry on the primary n and applies it.
func (c *Cluster) appendLocal(n *node, e opEntry) int {
	now := time.Now()
	e.TS, e.Term, e.Wall = c.nextTSLocked(now), c.term, now
	n.oplog = append(n.oplog, e)
	n.apply(e)
	c.bumpLocked()
	return len(n.oplog)
}

func (n *node) apply(e opEntry) {
	switch e.Op {
	case "i":
		_ = n.data.insert(e.NS, e.Doc)
	case "u":
		n.data.replace(e.NS, e.ID, e.Doc)
	case "d":
		n.data.deleteID(e.NS, e.ID)
	case "c":
		n.data.drop(e.NS)
	}
	if e.Txn != nil {
		n.txns[*e.Txn] = struct{}{}
	}
}

// rebuild replays the oplog from scratch; the data sets are small, and a
// replay is the simplest undo for a rollback.
func (n *node) rebuild() {
	n.data = newStore()
	n.txns = map[txnKey]struct{}{}
	for _, e := range n.oplog {
		n.apply(e)
	}
}

// commonPrefix is how many leading entries a and b share. Histories only
// diverge at their ends, so the usual answer is found at once.
func commonPrefix(a, b []opEntry) int {
	l := min(len(a), len(b))
	for l > 0 {
		x, y := a[l-1], b[l-1]
		if x.TS == y.TS && x.Term == y.Term {
			return l
		}
		l--
	}
	return 0
}

// majorityIndex is the length of n's oplog prefix that a write majority holds:
// a majority of voting members, counting only data-bearing ones (arbiters
// hold no oplog), as mongod's writeMajorityCount does.
func (c *Cluster) majorityIndex(n *node) int {
	if n.cfg == nil {
		return 0
	}
	var lens []int
	for _, m := range n.cfg.Members {
		if m.Votes != 1 || m.ArbiterOnly {
			continue
		}
		if o := c.nodeByHost(m.Host); o != nil {
			lens = append(lens, commonPrefix(o.oplog, n.oplog))
		} else {
			lens = append(lens, 0)
		}
	}
	need := min(n.cfg.majority(), len(lens))
	if need == 0 {
		return 0
	}
	sort.Sort(sort.Reverse(sort.IntSlice(lens)))
	return lens[need-1]
}

func (c *Cluster) majorityOpTime(n *node) opTime {
	if i := c.majorityIndex(n); i > 0 {
		return n.oplog[i-1].opTime()
	}
	return zeroOpTime
}

// syncSource is the member n pulls from: the primary it can see.
func (c *Cluster) syncSource(n *node) *node {
	if n.state != stateSecondary || !n.up || n.partitioned {
		return nil
	}
	p := c.visiblePrimary(n)
	if p == n {
		return nil
	}
	return p
}

// replicateLocked lets each secondary apply what its sync source wrote at least
// its lag ago, rolling back first if its history diverged.
func (c *Cluster) replicateLocked(now time.Time) {
	for _, n := range c.nodes {
		src := c.syncSource(n)
		if src == nil {
			continue
		}
		common := commonPrefix(n.oplog, src.oplog)
		if common < len(n.oplog) {
			c.rollbackLocked(n, src, common, now)
		}
		lag := c.timing.ReplicationLag + n.addedLag
		if m := n.memberCfg(); m != nil {
			lag += time.Duration(m.SecondaryDelaySecs) * time.Second
		}
		progressed := false
		for i := len(n.oplog); i < len(src.oplog); i++ {
			e := src.oplog[i]
			if now.Sub(e.Wall) < lag {
				break
			}
			n.oplog = append(n.oplog, e)
			n.apply(e)
			progressed = true
		}
		if progressed {
			c.bumpLocked()
		}
	}
}

// rollbackLocked discards n's entries after the common point with its sync
// source, as mongod's rollback does: writes that never reached the new
// primary are lost (mongod saves them to rollback files; they are recorded here).
func (c *Cluster) rollbackLocked(n, src *node, common int, now time.Time) {
	lost := n.oplog[common:]
	rb := &RollbackEvent{SyncSource: src.host, Entries: len(lost)}
	if common > 0 {
		rb.CommonPoint = fmt.Sprintf("%d.%d", n.oplog[common-1].TS.T, n.oplog[common-1].TS.I)
	}
	for _, e := range lost {
		if len(rb.Ops) >= 100 {
			break
		}
		op := RolledBackOp{Op: e.Op, NS: e.NS, TS: fmt.Sprintf("%d.%d", e.TS.T, e.TS.I), Term: e.Term}
		switch {
		case e.Op == "i":
			op.ID = e.Doc.Lookup("_id").String()
		case e.ID.Type != 0:
			op.ID = e.ID.String()
		}
		rb.Ops = append(rb.Ops, op)
	}
	n.oplog = slices.Clone(n.oplog[:common])
	n.rebuild()
	c.recordLocked(Event{Kind: EventRollback, Member: n.host, Rollback: rb})
	c.log.Warn("rollback", "member", n.host, "entries", rb.Entries, "syncSource", src.host)
	c.topologyChangedLocked()
}

// writeConcern is a parsed {w, wtimeout}.
type writeConcern struct {
	w        int // -1 = majority
	wtimeout time.Duration
	raw      bson.D
}

func parseWriteConcern(body bson.Raw) (writeConcern, error) {
	// Since 5.0 the implicit default write concern of a replica set is majority.
	wc := writeConcern{w: -1, raw: bson.D{{Key: "w", Value: "majority"}, {Key: "wtimeout", Value: int32(0)}}}
	doc, ok := body.Lookup("writeConcern").DocumentOK()
	if !ok {
		return wc, nil
	}
	wc.raw = bson.D{}
	if v := doc.Lookup("w"); v.Type != 0 {
		if s, ok := v.StringValueOK(); ok {
			if s != "majority" {
				return wc, errf(codeUnsatisfiableWriteConcern, "No write concern mode named '%s' found in replica set configuration", s)
			}
		} else if i, ok := asInt64(v); ok {
			if i < 0 {
				return wc, errf(codeFailedToParse, "w has to be a non-negative number and not greater than 50; found: %d", i)
			}
			wc.w = int(i)
		} else {
			return wc, errf(codeFailedToParse, "w has to be a number or a string")
		}
		wc.raw = append(wc.raw, bson.E{Key: "w", Value: v})
	} else {
		wc.raw = append(wc.raw, bson.E{Key: "w", Value: "majority"})
	}
	if i, ok := asInt64(doc.Lookup("wtimeout")); ok && i > 0 {
		wc.wtimeout = time.Duration(i) * time.Millisecond
		wc.raw = append(wc.raw, bson.E{Key: "wtimeout", Value: i})
	}
	return wc, nil
}

// awaitWriteConcern blocks until the entry at idx (with timestamp ts) on n
// satisfies wc. A non-nil result is the writeConcernError document, plus
// whether the failure is a state change a driver may retry.
func (c *Cluster) awaitWriteConcern(cc *connCtx, idx int, ts bson.Timestamp, wc writeConcern) (bson.D, bool) {
	n := cc.n
	if wc.w == 0 || wc.w == 1 || idx == 0 {
		return nil, false
	}
	deadline := time.Now().Add(24 * time.Hour)
	if wc.wtimeout > 0 {
		deadline = time.Now().Add(wc.wtimeout)
	}
	for {
		if idx > len(n.oplog) || n.oplog[idx-1].TS != ts {
			return wcError(codeInterruptedDueToReplStateChange, "operation was interrupted because the write was rolled back", wc), true
		}
		if c.satisfied(n, idx, wc) {
			return nil, false
		}
		if n.state != statePrimary {
			return wcError(codePrimarySteppedDown, "Primary stepped down while waiting for replication", wc), true
		}
		if !c.waitLocked(deadline, cc.stop) {
			if c.closed || !n.up {
				return wcError(codeInterruptedAtShutdown, "interrupted at shutdown", wc), true
			}
			if time.Now().After(deadline) {
				return bson.D{{Key: "code", Value: int32(codeWriteConcernFailed)},
					{Key: "codeName", Value: codeNames[codeWriteConcernFailed]},
					{Key: "errmsg", Value: "waiting for replication timed out"},
					{Key: "errInfo", Value: bson.D{{Key: "wtimeout", Value: true}, {Key: "writeConcern", Value: wc.raw}}}}, false
			}
		}
	}
}

func (c *Cluster) satisfied(n *node, idx int, wc writeConcern) bool {
	if wc.w < 0 {
		return c.majorityIndex(n) >= idx
	}
	count := 0
	for _, m := range n.cfg.Members {
		if m.ArbiterOnly {
			continue
		}
		if o := c.nodeByHost(m.Host); o != nil && commonPrefix(o.oplog, n.oplog) >= idx {
			count++
		}
	}
	return count >= wc.w
}

func wcError(code int32, msg string, wc writeConcern) bson.D {
	return bson.D{{Key: "code", Value: int32(code)}, {Key: "codeName", Value: codeNames[code]}, {Key: "errmsg", Value: msg},
		{Key: "errInfo", Value: bson.D{{Key: "writeConcern", Value: wc.raw}}}}
}
