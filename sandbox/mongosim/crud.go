package mongosim

import (
	"sort"
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

func (c *Cluster) checkReadable(cc *connCtx, req *request) error {
	switch cc.n.state {
	case statePrimary:
		return nil
	case stateSecondary:
		if req.secondaryOk {
			return nil
		}
		return errf(codeNotPrimaryNoSecondaryOk, "not primary and secondaryOk=false").retryable(false)
	}
	return errf(codeNotPrimaryOrSecondary, "node is not in primary or recovering state").retryable(false)
}

func collName(req *request) (string, error) {
	v := req.body.Lookup(req.name)
	s, ok := v.StringValueOK()
	if !ok || s == "" {
		return "", errf(codeInvalidNamespace, "Invalid namespace specified '%s.'", req.db)
	}
	if req.db == "" {
		return "", errf(codeInvalidNamespace, "Invalid namespace: no $db")
	}
	return req.db + "." + s, nil
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

func (c *Cluster) cmdInsert(cc *connCtx, req *request) (bson.D, error) {
	ns, err := collName(req)
	if err != nil {
		return nil, err
	}
	docs, err := payload(req, "documents")
	if err != nil {
		return nil, err
	}
	wc, err := parseWriteConcern(req.body)
	if err != nil {
		return nil, err
	}
	sess := parseSession(req.body)
	if err := c.awaitWritable(cc, sess.retryable); err != nil {
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
	ns, err := collName(req)
	if err != nil {
		return nil, err
	}
	stmts, err := payload(req, "deletes")
	if err != nil {
		return nil, err
	}
	wc, err := parseWriteConcern(req.body)
	if err != nil {
		return nil, err
	}
	sess := parseSession(req.body)
	if err := c.awaitWritable(cc, sess.retryable); err != nil {
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
	ns, err := collName(req)
	if err != nil {
		return nil, err
	}
	stmts, err := payload(req, "updates")
	if err != nil {
		return nil, err
	}
	wc, err := parseWriteConcern(req.body)
	if err != nil {
		return nil, err
	}
	sess := parseSession(req.body)
	if err := c.awaitWritable(cc, sess.retryable); err != nil {
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

func cursorReply(ns string, batch []bson.Raw) bson.D {
	arr := make(bson.A, len(batch))
	for i, d := range batch {
		arr[i] = d
	}
	return bson.D{{Key: "cursor", Value: bson.D{{Key: "firstBatch", Value: arr}, {Key: "id", Value: int64(0)},
		{Key: "ns", Value: ns}}}}
}

func (c *Cluster) cmdFind(cc *connCtx, req *request) (bson.D, error) {
	ns, err := collName(req)
	if err != nil {
		return nil, err
	}
	if err := c.checkReadable(cc, req); err != nil {
		return nil, err
	}
	filter, _ := req.body.Lookup("filter").DocumentOK()
	docs, err := cc.n.data.find(ns, filter)
	if err != nil {
		return nil, err
	}
	if s, ok := req.body.Lookup("sort").DocumentOK(); ok {
		sortDocs(docs, s)
	}
	if k, _ := asInt64(req.body.Lookup("skip")); k > 0 {
		docs = docs[min(int(k), len(docs)):]
	}
	if l, _ := asInt64(req.body.Lookup("limit")); l != 0 {
		if l < 0 {
			l = -l
		}
		docs = docs[:min(int(l), len(docs))]
	}
	if p, ok := req.body.Lookup("projection").DocumentOK(); ok {
		docs = project(docs, p)
	}
	// Everything fits in the first batch; cursor id 0 tells the driver there is no more.
	return cursorReply(ns, docs), nil
}

func sortDocs(docs []bson.Raw, spec bson.Raw) {
	keys, _ := spec.Elements()
	sort.SliceStable(docs, func(i, j int) bool {
		for _, k := range keys {
			dir, _ := asInt64(k.Value())
			a, _ := docs[i].LookupErr(strings.Split(k.Key(), ".")...)
			b, _ := docs[j].LookupErr(strings.Split(k.Key(), ".")...)
			c, _ := compareValues(a, b)
			if c != 0 {
				return (c < 0) == (dir >= 0)
			}
		}
		return false
	})
}

// project applies a top-level inclusion or exclusion projection.
func project(docs []bson.Raw, p bson.Raw) []bson.Raw {
	fields, _ := p.Elements()
	if len(fields) == 0 {
		return docs
	}
	incl := map[string]bool{}
	inclusive := false
	idShown := true
	for _, f := range fields {
		on := truthy(f.Value())
		if f.Key() == "_id" {
			idShown = on
			continue
		}
		incl[f.Key()] = on
		inclusive = inclusive || on
	}
	out := make([]bson.Raw, 0, len(docs))
	for _, d := range docs {
		elems, _ := d.Elements()
		var nd bson.D
		for _, e := range elems {
			k := e.Key()
			keep := (k == "_id" && idShown) || (k != "_id" && ((inclusive && incl[k]) || (!inclusive && !hasFalse(incl, k))))
			if keep {
				nd = append(nd, bson.E{Key: k, Value: e.Value()})
			}
		}
		raw, _ := bson.Marshal(nd)
		out = append(out, raw)
	}
	return out
}

func hasFalse(m map[string]bool, k string) bool {
	v, ok := m[k]
	return ok && !v
}

// cmdAggregate runs $match, $sort, $skip, $limit, $count, $project and a
// constant-key $group with $sum: the shapes CountDocuments and simple reports use.
func (c *Cluster) cmdAggregate(cc *connCtx, req *request) (bson.D, error) {
	ns, err := collName(req)
	if err != nil {
		return nil, err
	}
	if err := c.checkReadable(cc, req); err != nil {
		return nil, err
	}
	arr, ok := req.body.Lookup("pipeline").ArrayOK()
	if !ok {
		return nil, errf(codeTypeMismatch, "'pipeline' option must be specified as an array")
	}
	docs, _ := cc.n.data.find(ns, nil)
	stages, _ := arr.Values()
	for _, sv := range stages {
		st, ok := sv.DocumentOK()
		if !ok {
			return nil, errf(codeTypeMismatch, "Each element of the 'pipeline' array must be an object")
		}
		el, err := st.IndexErr(0)
		if err != nil {
			return nil, errf(codeLocation40324, "A pipeline stage specification object must contain exactly one field.")
		}
		arg := el.Value()
		switch el.Key() {
		case "$match":
			f, _ := arg.DocumentOK()
			var kept []bson.Raw
			for _, d := range docs {
				m, err := matches(d, f)
				if err != nil {
					return nil, err
				}
				if m {
					kept = append(kept, d)
				}
			}
			docs = kept
		case "$sort":
			s, _ := arg.DocumentOK()
			sortDocs(docs, s)
		case "$skip":
			k, _ := asInt64(arg)
			docs = docs[min(int(k), len(docs)):]
		case "$limit":
			l, _ := asInt64(arg)
			docs = docs[:min(int(l), len(docs))]
		case "$project":
			p, _ := arg.DocumentOK()
			docs = project(docs, p)
		case "$count":
			name, _ := arg.StringValueOK()
			if len(docs) == 0 {
				docs = nil
				continue
			}
			raw, _ := bson.Marshal(bson.D{{Key: name, Value: int32(len(docs))}})
			docs = []bson.Raw{raw}
		case "$group":
			g, _ := arg.DocumentOK()
			out, err := group(docs, g)
			if err != nil {
				return nil, err
			}
			docs = out
		default:
			return nil, errf(codeLocation40324, "Unrecognized pipeline stage name: '%s'", el.Key())
		}
	}
	return cursorReply(ns, docs), nil
}

func group(docs []bson.Raw, g bson.Raw) ([]bson.Raw, error) {
	id := g.Lookup("_id")
	if s, ok := id.StringValueOK(); ok && strings.HasPrefix(s, "$") {
		return nil, errf(codeLocation40324, "mongosim: $group supports a constant _id only")
	}
	if len(docs) == 0 {
		return nil, nil
	}
	out := bson.D{{Key: "_id", Value: id}}
	fields, _ := g.Elements()
	for _, f := range fields[1:] {
		acc, ok := f.Value().DocumentOK()
		if !ok {
			return nil, errf(codeLocation40324, "The field '%s' must be an accumulator object", f.Key())
		}
		sumArg := acc.Lookup("$sum")
		if sumArg.Type == 0 {
			return nil, errf(codeLocation40324, "mongosim: only the $sum accumulator is supported")
		}
		if field, ok := sumArg.StringValueOK(); ok && strings.HasPrefix(field, "$") {
			var total float64
			allInt := true
			for _, d := range docs {
				v, err := d.LookupErr(strings.Split(field[1:], ".")...)
				if err != nil {
					continue
				}
				if x, ok := asFloat(v); ok {
					total += x
					allInt = allInt && v.Type != bson.TypeDouble
				}
			}
			if allInt {
				out = append(out, bson.E{Key: f.Key(), Value: int64(total)})
			} else {
				out = append(out, bson.E{Key: f.Key(), Value: total})
			}
			continue
		}
		k, _ := asInt64(sumArg)
		total := k * int64(len(docs))
		if total <= 1<<31-1 {
			out = append(out, bson.E{Key: f.Key(), Value: int32(total)})
		} else {
			out = append(out, bson.E{Key: f.Key(), Value: total})
		}
	}
	raw, err := bson.Marshal(out)
	if err != nil {
		return nil, err
	}
	return []bson.Raw{raw}, nil
}

func (c *Cluster) cmdCount(cc *connCtx, req *request) (bson.D, error) {
	ns, err := collName(req)
	if err != nil {
		return nil, err
	}
	if err := c.checkReadable(cc, req); err != nil {
		return nil, err
	}
	q, _ := req.body.Lookup("query").DocumentOK()
	docs, err := cc.n.data.find(ns, q)
	if err != nil {
		return nil, err
	}
	n := len(docs)
	if k, _ := asInt64(req.body.Lookup("skip")); k > 0 {
		n = max(0, n-int(k))
	}
	if l, _ := asInt64(req.body.Lookup("limit")); l > 0 {
		n = min(n, int(l))
	}
	return bson.D{{Key: "n", Value: int32(n)}}, nil
}

func (c *Cluster) cmdGetMore(_ *connCtx, req *request) (bson.D, error) {
	id, _ := asInt64(req.body.Lookup("getMore"))
	return nil, errf(codeCursorNotFound, "cursor id %d not found", id)
}

func (c *Cluster) cmdKillCursors(_ *connCtx, req *request) (bson.D, error) {
	ids := bson.A{}
	if arr, ok := req.body.Lookup("cursors").ArrayOK(); ok {
		vals, _ := arr.Values()
		for _, v := range vals {
			ids = append(ids, v)
		}
	}
	return bson.D{{Key: "cursorsKilled", Value: bson.A{}}, {Key: "cursorsNotFound", Value: ids},
		{Key: "cursorsAlive", Value: bson.A{}}, {Key: "cursorsUnknown", Value: bson.A{}}}, nil
}

func (c *Cluster) cmdListDatabases(cc *connCtx, req *request) (bson.D, error) {
	if err := c.checkReadable(cc, &request{secondaryOk: true}); err != nil {
		return nil, err
	}
	sizes := cc.n.data.databases()
	names := make([]string, 0, len(sizes))
	for k := range sizes {
		names = append(names, k)
	}
	sort.Strings(names)
	dbs := bson.A{}
	var total int64
	for _, k := range names {
		total += int64(sizes[k])
		if truthy(req.body.Lookup("nameOnly")) {
			dbs = append(dbs, bson.D{{Key: "name", Value: k}})
			continue
		}
		dbs = append(dbs, bson.D{{Key: "name", Value: k}, {Key: "sizeOnDisk", Value: int64(sizes[k])}, {Key: "empty", Value: false}})
	}
	return bson.D{{Key: "databases", Value: dbs}, {Key: "totalSize", Value: total}, {Key: "totalSizeMb", Value: total >> 20}}, nil
}

func (c *Cluster) cmdListCollections(cc *connCtx, req *request) (bson.D, error) {
	if err := c.checkReadable(cc, req); err != nil {
		return nil, err
	}
	var batch []bson.Raw
	for _, name := range cc.n.data.namespaces(req.db) {
		raw, _ := bson.Marshal(bson.D{{Key: "name", Value: name}, {Key: "type", Value: "collection"},
			{Key: "options", Value: bson.D{}}, {Key: "info", Value: bson.D{{Key: "readOnly", Value: false}}}})
		batch = append(batch, raw)
	}
	return cursorReply(req.db+".$cmd.listCollections", batch), nil
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
