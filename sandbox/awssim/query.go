package awssim

import (
	"sort"
	"strconv"
	"strings"
)

// list returns the values of prefix.1, prefix.2, ... in index order (EC2 flattened lists).
func (q query) list(prefix string) []string {
	var out []string
	for _, m := range q.structs(prefix) {
		if v, ok := m[""]; ok {
			out = append(out, v)
		}
	}
	return out
}

// structs returns the members of a flattened list of structures: for prefix "Filter" the
// keys Filter.1.Name and Filter.1.Value.2 become {"Name": .., "Value.2": ..}; a scalar
// member (ImageId.1) is stored under "".
func (q query) structs(prefix string) []map[string]string {
	byIdx := map[int]map[string]string{}
	p := prefix + "."
	for k, v := range q {
		rest, ok := strings.CutPrefix(k, p)
		if !ok || len(v) == 0 {
			continue
		}
		idxStr, field, _ := strings.Cut(rest, ".")
		idx, err := strconv.Atoi(idxStr)
		if err != nil {
			continue
		}
		if byIdx[idx] == nil {
			byIdx[idx] = map[string]string{}
		}
		byIdx[idx][field] = v[0]
	}
	idxs := make([]int, 0, len(byIdx))
	for i := range byIdx {
		idxs = append(idxs, i)
	}
	sort.Ints(idxs)
	out := make([]map[string]string, 0, len(idxs))
	for _, i := range idxs {
		out = append(out, byIdx[i])
	}
	return out
}

// sub returns the values of a list nested in a struct member map: for m from structs("Filter")
// sub(m, "Value") lists Value.1, Value.2, ...
func sub(m map[string]string, prefix string) []string {
	type kv struct {
		i int
		v string
	}
	var vals []kv
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(rest)
		if err != nil {
			continue
		}
		vals = append(vals, kv{i, v})
	}
	sort.Slice(vals, func(a, b int) bool { return vals[a].i < vals[b].i })
	out := make([]string, len(vals))
	for i, x := range vals {
		out[i] = x.v
	}
	return out
}

type filter struct {
	name   string
	values []string
}

func (q query) filters() []filter {
	var out []filter
	for _, m := range q.structs("Filter") {
		out = append(out, filter{name: m["Name"], values: sub(m, "Value")})
	}
	return out
}

// tagSpecs returns the tags of TagSpecification.N for one resource type.
func (q query) tagSpecs(resourceType string) map[string]string {
	tags := map[string]string{}
	for _, m := range q.structs("TagSpecification") {
		if m["ResourceType"] != resourceType {
			continue
		}
		for i := 1; ; i++ {
			k, ok := m["Tag."+strconv.Itoa(i)+".Key"]
			if !ok {
				break
			}
			tags[k] = m["Tag."+strconv.Itoa(i)+".Value"]
		}
	}
	return tags
}

func (q query) boolean(k string) bool {
	return strings.EqualFold(q.get(k), "true")
}

// matchValue applies EC2 filter wildcards: * any run, ? one character.
func matchValue(pattern, v string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return pattern == v
	}
	return wildcard(pattern, v)
}

func wildcard(p, s string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if wildcard(p[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && wildcard(p[1:], s[1:])
	default:
		return s != "" && s[0] == p[0] && wildcard(p[1:], s[1:])
	}
}

func anyMatch(patterns []string, v string) bool {
	for _, p := range patterns {
		if matchValue(p, v) {
			return true
		}
	}
	return false
}

// tagFilter handles the tag filters shared by every Describe: tag:Key, tag-key, tag-value.
// handled is false for other filter names.
func tagFilter(f filter, tags map[string]string) (match, handled bool) {
	switch {
	case strings.HasPrefix(f.name, "tag:"):
		v, ok := tags[strings.TrimPrefix(f.name, "tag:")]
		return ok && anyMatch(f.values, v), true
	case f.name == "tag-key":
		for k := range tags {
			if anyMatch(f.values, k) {
				return true, true
			}
		}
		return false, true
	case f.name == "tag-value":
		for _, v := range tags {
			if anyMatch(f.values, v) {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}
