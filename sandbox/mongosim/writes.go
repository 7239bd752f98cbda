package mongosim

import (
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// session holds what a retryable write sends: lsid and txnNumber.
type session struct {
	lsid      string
	txnNumber int64
	retryable bool
}

func parseSession(body bson.Raw) session {
	var s session
	if l, ok := body.Lookup("lsid").DocumentOK(); ok {
		s.lsid = string(l.Lookup("id").Value)
	}
	if t, ok := asInt64(body.Lookup("txnNumber")); ok && s.lsid != "" {
		s.txnNumber, s.retryable = t, true
	}
	return s
}

func (s session) key(stmt int) *txnKey {
	if !s.retryable {
		return nil
	}
	return &txnKey{lsid: s.lsid, txn: s.txnNumber, stmt: int32(stmt)}
}

func (s session) done(n *node, stmt int) bool {
	k := s.key(stmt)
	if k == nil {
		return false
	}
	_, ok := n.txns[*k]
	return ok
}

// awaitWritable holds a write while a stepdown decides the primary's fate (the
// stepdown blocks writes, as the RSTL does in mongod), then admits it only on a
// writable primary.
func (c *Cluster) awaitWritable(cc *connCtx, retryable bool) error {
	n := cc.n
	far := time.Now().Add(24 * time.Hour)
	for n.up && n.state == statePrimary && n.stepdownPending {
		if !c.waitLocked(far, cc.stop) {
			break
		}
	}
	if !n.up || n.state != statePrimary || n.stepdownPending {
		return notWritablePrimary(retryable)
	}
	return nil
}

// payload reads a bulk argument from its kind-1 sequence or, failing that, the body.
func payload(req *request, field string) ([]bson.Raw, error) {
	if docs := req.seq(field); docs != nil {
		return docs, nil
	}
	arr, ok := req.body.Lookup(field).ArrayOK()
	if !ok {
		return nil, errf(codeFailedToParse, "BSON field '%s.%s' is missing but a required field", req.name, field)
	}
	vals, _ := arr.Values()
	out := make([]bson.Raw, 0, len(vals))
	for _, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, errf(codeTypeMismatch, "BSON field '%s.%s' is the wrong type", req.name, field)
		}
		out = append(out, d)
	}
	return out, nil
}

func ordered(body bson.Raw) bool {
	if v := body.Lookup("ordered"); v.Type != 0 {
		return truthy(v)
	}
	return true
}

func writeErrorDoc(index int, code int32, msg string) bson.D {
	return bson.D{{Key: "index", Value: int32(index)}, {Key: "code", Value: code},
		{Key: "codeName", Value: codeNames[code]}, {Key: "errmsg", Value: msg}}
}

// finishWrite waits for the write concern and assembles the reply.
func (c *Cluster) finishWrite(cc *connCtx, req *request, sess session, wc writeConcern, out bson.D, writeErrs bson.A) (bson.D, error) {
	n := cc.n
	if len(writeErrs) > 0 {
		out = append(out, bson.E{Key: "writeErrors", Value: writeErrs})
	}
	// Wait on the member's latest entry: it covers this write and, for a
	// retried write found in history, the original.
	idx := len(n.oplog)
	var ts bson.Timestamp
	if idx > 0 {
		ts = n.oplog[idx-1].TS
	}
	if wce, stateChange := c.awaitWriteConcern(cc, idx, ts, wc); wce != nil {
		out = append(out, bson.E{Key: "writeConcernError", Value: wce})
		if stateChange && sess.retryable {
			out = append(out, bson.E{Key: "errorLabels", Value: bson.A{labelRetryableWrite}})
		}
	}
	return out, nil
}

// beginWrite does what every write command does first: read the namespace, the
// statements (a document sequence or a body array named field), the write concern and the
// session, then wait until this member may take writes.
func (c *Cluster) beginWrite(cc *connCtx, req *request, field string) (ns string, stmts []bson.Raw, wc writeConcern, sess session, err error) {
	if ns, err = collName(req); err != nil {
		return
	}
	if stmts, err = payload(req, field); err != nil {
		return
	}
	if wc, err = parseWriteConcern(req.body); err != nil {
		return
	}
	sess = parseSession(req.body)
	err = c.awaitWritable(cc, sess.retryable)
	return
}

func (c *Cluster) cmdInsert(cc *connCtx, req *request) (bson.D, error) {
	ns, docs, wc, sess, err := c.beginWrite(cc, req, "documents")
	if err != nil {
		return nil, err
	}
	n := cc.n
	count := 0
	var writeErrs bson.A
	for i, doc := range docs {
		if sess.done(n, i) {
			count++
			continue
		}
		id := doc.Lookup("_id")
		if id.Type == 0 {
			// mongod generates _id first in the stored document.
			var d bson.D
			if err := bson.Unmarshal(doc, &d); err != nil {
				return nil, errf(codeBadValue, "invalid document: %v", err)
			}
			d = append(bson.D{{Key: "_id", Value: bson.NewObjectID()}}, d...)
			doc, _ = bson.Marshal(d)
			id = doc.Lookup("_id")
		}
		if n.data.hasID(ns, id) {
			db, coll, _ := strings.Cut(ns, ".")
			writeErrs = append(writeErrs, writeErrorDoc(i, codeDuplicateKey,
				"E11000 duplicate key error collection: "+db+"."+coll+" index: _id_ dup key: { _id: "+id.String()+" }"))
			if ordered(req.body) {
				break
			}
			continue
		}
		c.appendLocal(n, opEntry{Op: "i", NS: ns, Doc: doc, Txn: sess.key(i)})
		count++
	}
	return c.finishWrite(cc, req, sess, wc, bson.D{{Key: "n", Value: int32(count)}}, writeErrs)
}

func (c *Cluster) cmdDelete(cc *connCtx, req *request) (bson.D, error) {
	ns, stmts, wc, sess, err := c.beginWrite(cc, req, "deletes")
	if err != nil {
		return nil, err
	}
	n := cc.n
	count := 0
	var writeErrs bson.A
	for i, st := range stmts {
		if sess.done(n, i) {
			continue
		}
		q, _ := st.Lookup("q").DocumentOK()
		limit, _ := asInt64(st.Lookup("limit"))
		found, err := n.data.find(ns, q)
		if err != nil {
			ce := asCmdError(err)
			writeErrs = append(writeErrs, writeErrorDoc(i, ce.Code, ce.Msg))
			if ordered(req.body) {
				break
			}
			continue
		}
		if limit == 1 && len(found) > 1 {
			found = found[:1]
		}
		for _, d := range found {
			c.appendLocal(n, opEntry{Op: "d", NS: ns, ID: d.Lookup("_id"), Txn: sess.key(i)})
			count++
		}
	}
	return c.finishWrite(cc, req, sess, wc, bson.D{{Key: "n", Value: int32(count)}}, writeErrs)
}

func (c *Cluster) cmdUpdate(cc *connCtx, req *request) (bson.D, error) {
	ns, stmts, wc, sess, err := c.beginWrite(cc, req, "updates")
	if err != nil {
		return nil, err
	}
	n := cc.n
	matched, modified := 0, 0
	var upserted, writeErrs bson.A
	for i, st := range stmts {
		if sess.done(n, i) {
			continue
		}
		q, _ := st.Lookup("q").DocumentOK()
		u, ok := st.Lookup("u").DocumentOK()
		if !ok {
			writeErrs = append(writeErrs, writeErrorDoc(i, codeFailedToParse, "pipeline updates are not supported by mongosim"))
			break
		}
		multi := truthy(st.Lookup("multi"))
		found, err := n.data.find(ns, q)
		if err == nil && len(found) == 0 && truthy(st.Lookup("upsert")) {
			var doc bson.Raw
			doc, err = upsertDoc(q, u)
			if err == nil {
				c.appendLocal(n, opEntry{Op: "i", NS: ns, Doc: doc, Txn: sess.key(i)})
				upserted = append(upserted, bson.D{{Key: "index", Value: int32(i)}, {Key: "_id", Value: doc.Lookup("_id")}})
				matched++
				continue
			}
		}
		if !multi && len(found) > 1 {
			found = found[:1]
		}
		for _, d := range found {
			var nd bson.Raw
			if nd, err = applyUpdate(d, u); err != nil {
				break
			}
			matched++
			if string(nd) == string(d) {
				continue
			}
			c.appendLocal(n, opEntry{Op: "u", NS: ns, ID: d.Lookup("_id"), Doc: nd, Txn: sess.key(i)})
			modified++
		}
		if err != nil {
			ce := asCmdError(err)
			writeErrs = append(writeErrs, writeErrorDoc(i, ce.Code, ce.Msg))
			if ordered(req.body) {
				break
			}
		}
	}
	out := bson.D{{Key: "n", Value: int32(matched)}, {Key: "nModified", Value: int32(modified)}}
	if len(upserted) > 0 {
		out = append(out, bson.E{Key: "upserted", Value: upserted})
	}
	return c.finishWrite(cc, req, sess, wc, out, writeErrs)
}

// applyUpdate supports replacement documents and $set/$unset/$inc on top-level fields.
func applyUpdate(doc, u bson.Raw) (bson.Raw, error) {
	var d bson.D
	if err := bson.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	if !isOperatorDoc(u) {
		var r bson.D
		if err := bson.Unmarshal(u, &r); err != nil {
			return nil, err
		}
		out := bson.D{{Key: "_id", Value: doc.Lookup("_id")}}
		for _, e := range r {
			if e.Key != "_id" {
				out = append(out, e)
			}
		}
		return bson.Marshal(out)
	}
	ops, _ := u.Elements()
	for _, op := range ops {
		args, ok := op.Value().DocumentOK()
		if !ok {
			return nil, errf(codeFailedToParse, "Modifiers operate on fields but we found type %s instead", op.Value().Type)
		}
		fields, _ := args.Elements()
		for _, f := range fields {
			k := f.Key()
			if strings.Contains(k, ".") {
				return nil, errf(codeBadValue, "mongosim: dotted update paths are not supported")
			}
			if k == "_id" {
				return nil, errf(66, "Performing an update on the path '_id' would modify the immutable field '_id'")
			}
			i := indexOf(d, k)
			switch op.Key() {
			case "$set":
				if i >= 0 {
					d[i].Value = f.Value()
				} else {
					d = append(d, bson.E{Key: k, Value: f.Value()})
				}
			case "$unset":
				if i >= 0 {
					d = append(d[:i], d[i+1:]...)
				}
			case "$inc":
				inc, ok := asFloat(f.Value())
				if !ok {
					return nil, errf(codeTypeMismatch, "Cannot increment with non-numeric argument: {%s: %s}", k, f.Value())
				}
				if i < 0 {
					d = append(d, bson.E{Key: k, Value: f.Value()})
					continue
				}
				cur, err := bson.Marshal(bson.D{{Key: "v", Value: d[i].Value}})
				if err != nil {
					return nil, err
				}
				cv := bson.Raw(cur).Lookup("v")
				switch {
				case cv.Type == bson.TypeInt32 && f.Value().Type == bson.TypeInt32:
					d[i].Value = cv.Int32() + f.Value().Int32()
				case (cv.Type == bson.TypeInt32 || cv.Type == bson.TypeInt64) && f.Value().Type != bson.TypeDouble:
					a, _ := asInt64(cv)
					b, _ := asInt64(f.Value())
					d[i].Value = a + b
				default:
					a, ok := asFloat(cv)
					if !ok {
						return nil, errf(codeTypeMismatch, "Cannot apply $inc to a value of non-numeric type")
					}
					d[i].Value = a + inc
				}
			default:
				return nil, errf(codeFailedToParse, "Unknown modifier: %s", op.Key())
			}
		}
	}
	return bson.Marshal(d)
}

func upsertDoc(q, u bson.Raw) (bson.Raw, error) {
	base := bson.D{}
	if qe, err := q.Elements(); err == nil {
		for _, e := range qe {
			if !strings.HasPrefix(e.Key(), "$") {
				if sub, ok := e.Value().DocumentOK(); ok && isOperatorDoc(sub) {
					continue
				}
				base = append(base, bson.E{Key: e.Key(), Value: e.Value()})
			}
		}
	}
	if indexOf(base, "_id") < 0 {
		base = append(bson.D{{Key: "_id", Value: bson.NewObjectID()}}, base...)
	}
	raw, err := bson.Marshal(base)
	if err != nil {
		return nil, err
	}
	return applyUpdate(raw, u)
}

func indexOf(d bson.D, k string) int {
	for i, e := range d {
		if e.Key == k {
			return i
		}
	}
	return -1
}

func (c *Cluster) cmdDrop(cc *connCtx, req *request) (bson.D, error) {
	ns, err := collName(req)
	if err != nil {
		return nil, err
	}
	wc, err := parseWriteConcern(req.body)
	if err != nil {
		return nil, err
	}
	if err := c.awaitWritable(cc, false); err != nil {
		return nil, err
	}
	if cc.n.data.coll(ns, false) != nil {
		c.appendLocal(cc.n, opEntry{Op: "c", NS: ns})
	}
	return c.finishWrite(cc, req, session{}, wc, bson.D{{Key: "ns", Value: ns}}, nil)
}

func (c *Cluster) cmdDropDatabase(cc *connCtx, req *request) (bson.D, error) {
	wc, err := parseWriteConcern(req.body)
	if err != nil {
		return nil, err
	}
	if err := c.awaitWritable(cc, false); err != nil {
		return nil, err
	}
	for _, coll := range cc.n.data.namespaces(req.db) {
		c.appendLocal(cc.n, opEntry{Op: "c", NS: req.db + "." + coll})
	}
	return c.finishWrite(cc, req, session{}, wc, bson.D{{Key: "dropped", Value: req.db}}, nil)
}

// cmdCreate accepts explicit collection creation; collections otherwise appear on first insert.
func (c *Cluster) cmdCreate(cc *connCtx, req *request) (bson.D, error) {
	if _, err := collName(req); err != nil {
		return nil, err
	}
	if err := c.awaitWritable(cc, false); err != nil {
		return nil, err
	}
	return bson.D{}, nil
}
