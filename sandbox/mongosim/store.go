package mongosim

import (
	"bytes"
	"math"
	"sort"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// store is one member's data: namespaces ("db.coll") of documents in insertion order.
type store struct {
	colls map[string]*collection
}

type collection struct {
	docs []bson.Raw
	ids  map[string]int // idKey -> index in docs
}

func newStore() *store { return &store{colls: map[string]*collection{}} }

// idKey makes _id values comparable as map keys; numbers compare by value as
// they do in MongoDB (1, 1L and 1.0 are the same _id).
func idKey(v bson.RawValue) string {
	if f, ok := asFloat(v); ok {
		return "n:" + strconv.FormatFloat(f, 'g', -1, 64)
	}
	return string([]byte{byte(v.Type)}) + string(v.Value)
}

func (s *store) coll(ns string, create bool) *collection {
	c := s.colls[ns]
	if c == nil && create {
		c = &collection{ids: map[string]int{}}
		s.colls[ns] = c
	}
	return c
}

func (s *store) hasID(ns string, id bson.RawValue) bool {
	c := s.coll(ns, false)
	if c == nil {
		return false
	}
	_, ok := c.ids[idKey(id)]
	return ok
}

func (s *store) insert(ns string, doc bson.Raw) bool {
	c := s.coll(ns, true)
	k := idKey(doc.Lookup("_id"))
	if _, dup := c.ids[k]; dup {
		return false
	}
	c.ids[k] = len(c.docs)
	c.docs = append(c.docs, doc)
	return true
}

func (s *store) replace(ns string, id bson.RawValue, doc bson.Raw) {
	c := s.coll(ns, true)
	if i, ok := c.ids[idKey(id)]; ok {
		c.docs[i] = doc
		return
	}
	s.insert(ns, doc)
}

func (s *store) deleteID(ns string, id bson.RawValue) {
	c := s.coll(ns, false)
	if c == nil {
		return
	}
	i, ok := c.ids[idKey(id)]
	if !ok {
		return
	}
	c.docs = append(c.docs[:i], c.docs[i+1:]...)
	c.ids = make(map[string]int, len(c.docs))
	for j, d := range c.docs {
		c.ids[idKey(d.Lookup("_id"))] = j
	}
}

func (s *store) drop(ns string) { delete(s.colls, ns) }

// find returns the documents of ns that match filter, in natural order.
func (s *store) find(ns string, filter bson.Raw) ([]bson.Raw, error) {
	c := s.coll(ns, false)
	if c == nil {
		return nil, nil
	}
	var out []bson.Raw
	for _, d := range c.docs {
		ok, err := matches(d, filter)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, d)
		}
	}
	return out, nil
}

func (s *store) namespaces(db string) []string {
	var out []string
	for ns := range s.colls {
		if strings.HasPrefix(ns, db+".") {
			out = append(out, strings.TrimPrefix(ns, db+"."))
		}
	}
	sort.Strings(out)
	return out
}

func (s *store) databases() map[string]int {
	out := map[string]int{}
	for ns, c := range s.colls {
		db, _, _ := strings.Cut(ns, ".")
		for _, d := range c.docs {
			out[db] += len(d)
		}
	}
	return out
}

// matches evaluates the query language subset the simulator supports:
// equality on (dotted) fields, $eq $ne $gt $gte $lt $lte $in $nin $exists, $and $or.
func matches(doc, filter bson.Raw) (bool, error) {
	elems, err := filter.Elements()
	if err != nil {
		return false, errf(codeBadValue, "invalid filter: %v", err)
	}
	for _, e := range elems {
		key := e.Key()
		switch key {
		case "$and", "$or":
			arr, ok := e.Value().ArrayOK()
			if !ok {
				return false, errf(codeBadValue, "%s must be an array", key)
			}
			vals, _ := arr.Values()
			any := false
			all := true
			for _, v := range vals {
				sub, ok := v.DocumentOK()
				if !ok {
					return false, errf(codeBadValue, "%s/$nor entries need to be full objects", key)
				}
				m, err := matches(doc, sub)
				if err != nil {
					return false, err
				}
				any = any || m
				all = all && m
			}
			if (key == "$and" && !all) || (key == "$or" && !any) {
				return false, nil
			}
			continue
		}
		if strings.HasPrefix(key, "$") {
			return false, errf(codeBadValue, "unknown top level operator: %s", key)
		}
		field, err := doc.LookupErr(strings.Split(key, ".")...)
		present := err == nil
		cond := e.Value()
		if sub, ok := cond.DocumentOK(); ok && isOperatorDoc(sub) {
			ops, _ := sub.Elements()
			for _, op := range ops {
				m, err := applyOp(op.Key(), field, present, op.Value())
				if err != nil || !m {
					return false, err
				}
			}
			continue
		}
		if !present || !valuesEqual(field, cond) {
			return false, nil
		}
	}
	return true, nil
}

func isOperatorDoc(d bson.Raw) bool {
	el, err := d.IndexErr(0)
	return err == nil && strings.HasPrefix(el.Key(), "$")
}

func applyOp(op string, field bson.RawValue, present bool, arg bson.RawValue) (bool, error) {
	switch op {
	case "$eq":
		return present && valuesEqual(field, arg), nil
	case "$ne":
		return !present || !valuesEqual(field, arg), nil
	case "$exists":
		return present == truthy(arg), nil
	case "$in", "$nin":
		arr, ok := arg.ArrayOK()
		if !ok {
			return false, errf(codeBadValue, "%s needs an array", op)
		}
		vals, _ := arr.Values()
		found := false
		for _, v := range vals {
			if present && valuesEqual(field, v) {
				found = true
				break
			}
		}
		return found == (op == "$in"), nil
	case "$gt", "$gte", "$lt", "$lte":
		if !present {
			return false, nil
		}
		c, ok := compareValues(field, arg)
		if !ok {
			return false, nil
		}
		switch op {
		case "$gt":
			return c > 0, nil
		case "$gte":
			return c >= 0, nil
		case "$lt":
			return c < 0, nil
		default:
			return c <= 0, nil
		}
	}
	return false, errf(codeBadValue, "unknown operator: %s", op)
}

func valuesEqual(a, b bson.RawValue) bool {
	if fa, ok := asFloat(a); ok {
		fb, ok := asFloat(b)
		return ok && fa == fb
	}
	return a.Type == b.Type && bytes.Equal(a.Value, b.Value)
}

// compareValues orders values of comparable types (numbers, strings, dates,
// ObjectIDs, booleans, timestamps); ok is false across types.
func compareValues(a, b bson.RawValue) (int, bool) {
	if fa, ok := asFloat(a); ok {
		fb, ok := asFloat(b)
		if !ok {
			return 0, false
		}
		switch {
		case fa < fb:
			return -1, true
		case fa > fb:
			return 1, true
		case math.IsNaN(fa) || math.IsNaN(fb):
			return 0, false
		}
		return 0, true
	}
	if a.Type != b.Type {
		return 0, false
	}
	switch a.Type {
	case bson.TypeString:
		return strings.Compare(a.StringValue(), b.StringValue()), true
	case bson.TypeDateTime:
		x, y := a.DateTime(), b.DateTime()
		return cmpInt(x, y), true
	case bson.TypeObjectID:
		x, y := a.ObjectID(), b.ObjectID()
		return bytes.Compare(x[:], y[:]), true
	case bson.TypeBoolean:
		x, y := a.Boolean(), b.Boolean()
		if x == y {
			return 0, true
		}
		if !x {
			return -1, true
		}
		return 1, true
	case bson.TypeTimestamp:
		x1, x2 := a.Timestamp()
		y1, y2 := b.Timestamp()
		if x1 != y1 {
			return cmpInt(int64(x1), int64(y1)), true
		}
		return cmpInt(int64(x2), int64(y2)), true
	}
	return 0, false
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
