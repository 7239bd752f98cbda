package testenv

import (
	"context"
	"fmt"
	"testing"

	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/mongosim"
	"github.com/ferryhq/ferry/sandbox/topology"
)

// AddReplicaSet appends to topo a copy of the default topology's rs0 (three eu-west-1
// members in the config, three eu-west-2 members started outside it, for a primary move)
// named name, with id id ("" for none: the set goes by its name), every member on a free
// port. Two calls with name "rs0" and ids "rs0" and "rs0-b" give the two companies' rs0
// that sandbox.StartMongo runs side by side, faults reaching each by its id
// (mongo:rs0-b:*). Ports 0 are for StartMongo only: topology.Validate refuses them.
func AddReplicaSet(topo *topology.Topology, name, id string) {
	rs := topology.Default().Mongo.ReplicaSets[0]
	rs.Name, rs.ID = name, id
	for i := range rs.Members {
		rs.Members[i].Port = 0
	}
	topo.Mongo.ReplicaSets = append(topo.Mongo.ReplicaSets, rs)
}

// StartReplicaSet starts a replica set of its own, outside any sandbox: AddReplicaSet's
// set named name, with fast timings; it stops when the test ends. Each call starts another
// set, with its own ports and settings.replicaSetId (Cluster.ReplicaSetID) even when the
// name repeats, e.g. a second rs0 beside a Stack's. No sandbox routes faults to it: apply
// them with Cluster.ApplyFault, target mongo:<name>:<port|*>.
func StartReplicaSet(t testing.TB, name string) *mongosim.Cluster {
	t.Helper()
	topo := &topology.Topology{}
	AddReplicaSet(topo, name, "")
	ms, err := sandbox.StartMongo(context.Background(), topo, true, nil)
	if err != nil {
		t.Fatalf("start replica set %s: %v", name, err)
	}
	t.Cleanup(func() { _ = ms.Close() })
	return ms.Cluster(name)
}

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
