package mongosim

import (
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

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
