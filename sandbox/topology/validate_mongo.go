package topology

import (
	"fmt"
	"regexp"
)

// setIDRE is what a replica set's id may be: it is the <set> of mongo:<set>:<port> fault
// targets, so a colon, a "*" or a space in it would make targets ambiguous.
var setIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// validateMongo checks the replica sets; bad and region report as in Validate.
func (t *Topology) validateMongo(bad func(field, format string, args ...any), region func(field, r string)) {
	sets := t.Mongo.ReplicaSets
	keys := map[string]int{} // set key -> index of the first set with it
	for i, rs := range sets {
		if _, dup := keys[rs.Key()]; !dup {
			keys[rs.Key()] = i
		}
	}
	ports := map[int]string{}
	for i, rs := range sets {
		f := fmt.Sprintf("mongo.replicaSets[%d]", i)
		if rs.Name == "" {
			bad(f+".name", "is required")
		}
		if rs.ID != "" && !setIDRE.MatchString(rs.ID) {
			bad(f+".id", "%q: use letters, digits, '.', '_' and '-' (the id is the <set> of mongo:<set>:<port> fault targets)", rs.ID)
		}
		// Sets may share a name (many companies have several rs0), never a key: faults,
		// events and lookups find a set by it.
		if key := rs.Key(); key != "" && keys[key] != i {
			j := keys[key]
			fix := freeSetID(keys, key)
			if rs.ID == "" && sets[j].ID == "" {
				bad(f+".id", "mongo.replicaSets[%d] is also named %q; two sets may share a name, but then the sandbox needs an id to tell them apart: give one of them `id: %s`", j, key, fix)
			} else {
				bad(f+".id", "%q is already the id of mongo.replicaSets[%d] (a set without an id goes by its name); ids tell sets apart in fault targets and events: give one of them `id: %s`", key, j, fix)
			}
		}
		if len(rs.Members) == 0 {
			bad(f+".members", "at least one member is required")
		}
		inConfig := 0
		for j, m := range rs.Members {
			mf := fmt.Sprintf("%s.members[%d]", f, j)
			if m.Port <= 0 || m.Port > 65535 {
				bad(mf+".port", "out of range: %d", m.Port)
			} else if prev, dup := ports[m.Port]; dup {
				bad(mf+".port", "%d already used by %s", m.Port, prev)
			}
			ports[m.Port] = mf
			region(mf+".region", m.Region)
			if m.Priority < 0 || m.Priority > 1000 {
				bad(mf+".priority", "must be 0-1000, got %v", m.Priority)
			}
			if m.Votes != nil && *m.Votes != 0 && *m.Votes != 1 {
				bad(mf+".votes", "must be 0 or 1, got %d", *m.Votes)
			}
			if m.InConfig {
				inConfig++
			}
		}
		if len(rs.Members) > 0 && inConfig == 0 {
			bad(f+".members", "at least one member must be inConfig")
		}
		if rs.DataSizeMiB < 0 {
			bad(f+".dataSizeMiB", "must not be negative")
		}
	}
}

// freeSetID suggests an id no set has yet: key-b, key-c, ... so the fix the error names
// works when pasted.
func freeSetID(keys map[string]int, key string) string {
	for c := 'b'; c <= 'z'; c++ {
		id := fmt.Sprintf("%s-%c", key, c)
		if _, taken := keys[id]; !taken {
			return id
		}
	}
	return key + "-new"
}
