package testenv

import (
	"fmt"

	"github.com/ferryhq/ferry/sandbox/mongosim"
)

// ReplicaSetConfig is a replica set's config as the simulator reports it: host -> votes and
// priority and region tag, for every member in the config (members started but outside it are left out).
// Two equal maps are the same members with the same votes and priorities, e.g. a rollback
// that restored the config the set started with.
func ReplicaSetConfig(ms []mongosim.MemberStatus) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		if m.InConfig {
			out[m.Host] = fmt.Sprintf("votes %d priority %g region %s", m.Votes, m.Priority, m.Region)
		}
	}
	return out
}

// PrimaryRegion is the region tag of the set's writable primary as the simulator itself
// reports it, or "" while the set has none.
func PrimaryRegion(c *mongosim.Cluster) string {
	p := c.Primary()
	for _, m := range c.Members() {
		if m.Host == p {
			return m.Region
		}
	}
	return ""
}
