//go:build chaos

package chaos

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/mongosim"
	"github.com/ferryhq/ferry/sandbox/topology"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// How a rehearsal's replica set loses a member.
const (
	downNone    = ""
	downWhole   = "whole run"
	downBounded = "bounded"
)

// rehearsal is one region move and the resources only it touches.
type rehearsal struct {
	i        int
	name     string // the region move's name: chaos<i>
	set      string // replica set rs<i>
	record   string // weighted record app<i>.shop.example.
	app      string // tag app=shop<i> of its AMIs
	images   []string
	rollback bool   // its DNS gate can never pass, so the move must roll back
	mode     string // the DNS shift's rollback mode
	down     string // whether (and how long) an old-region secondary is down
	slowSync bool   // one new member's initial sync is slowed down
	id       string // region move workflow id

	sourceHosts, targetHosts []string
	before                   map[string]string // the set's config at start

	mu       sync.Mutex
	downHost string
	downFor  time.Duration
	tagged   bool // a person tagged a member of its set while it moved (tagsMember)
	// recordEdited: a person changed its eu-west-2 record set's TTL mid-shift
	// (editsRecord); driftResumed counts the resumes that person sent to a drift pause.
	recordEdited bool
	driftResumed int

	res workflows.RegionMoveResult
	err error

	took time.Duration            // the region move, start to close
	wait map[string]time.Duration // its workflows' activity waits, by type (see historyStats)
}

// owns reports whether a workflow id is this rehearsal's: the move, its plan children and
// its phases (and their undos, which reuse the phase ids).
func (r *rehearsal) owns(id string) bool {
	return id == r.id || strings.HasPrefix(id, r.id+"/") || id == workflows.AMIShareWorkflowID(source, "tags:app="+r.app) ||
		id == r.mongoID() || id == workflows.DNSShiftWorkflowID(zone, r.record, "A")
}

// mongoID is the id of the move's MongoDB phase (and its undo).
func (r *rehearsal) mongoID() string {
	return workflows.MongoPrimaryMoveWorkflowID(r.set, "mongodb://"+strings.Join(r.sourceHosts, ",")+"/?replicaSet="+r.set)
}

// longestWaits names the activity types this rehearsal's workflows waited on longest.
func (r *rehearsal) longestWaits(k int) string {
	types := slices.Collect(maps.Keys(r.wait))
	slices.SortFunc(types, func(a, b string) int { return cmp.Compare(r.wait[b], r.wait[a]) })
	var parts []string
	for _, ty := range types[:min(k, len(types))] {
		if r.wait[ty] >= time.Second {
			parts = append(parts, fmt.Sprintf("%s %s", ty, r.wait[ty].Round(time.Second)))
		}
	}
	return strings.Join(parts, ", ")
}

func newRehearsal(i int) *rehearsal {
	r := &rehearsal{
		i: i, name: fmt.Sprintf("chaos%d", i), set: fmt.Sprintf("rs%d", i), record: recordName(i), app: fmt.Sprintf("shop%d", i),
		rollback: i%3 == 2, mode: "immediate", slowSync: i%2 == 0,
	}
	if r.rollback && i%2 == 0 {
		r.mode = "gradual"
	}
	switch i % 4 {
	case 1:
		r.down = downWhole
	case 2:
		r.down = downBounded
	}
	for k := range 1 + (i+1)%2 {
		r.images = append(r.images, fmt.Sprintf("ami-0c0ffee%010x", i*8+k))
	}
	r.id = workflows.RegionMoveWorkflowID(r.name, source, target)
	return r
}

func recordName(i int) string { return fmt.Sprintf("app%d.%s", i, zone) }

// addTo gives the rehearsal its AMIs and replica set in the topology (the record comes from
// testenv.AddShiftRecords): three voting members in eu-west-1 and three started in
// eu-west-2 outside the config, on free ports, with little data so initial sync is quick.
func (r *rehearsal) addTo(topo *topology.Topology) {
	roles := []string{"web", "worker"}
	for k, id := range r.images {
		topo.Images = append(topo.Images, topology.Image{
			Region: source, Name: fmt.Sprintf("%s-%s", r.app, roles[k]), ID: id, SizeGiB: 8,
			Description: "chaos rehearsal " + r.app, Tags: map[string]string{"app": r.app, "role": roles[k]},
		})
	}
	rs := topology.ReplicaSet{Name: r.set, DataSizeMiB: 64}
	for range 3 {
		rs.Members = append(rs.Members, topology.MongoMember{Port: 0, Region: source, InConfig: true})
	}
	for range 3 {
		rs.Members = append(rs.Members, topology.MongoMember{Port: 0, Region: target})
	}
	topo.Mongo.ReplicaSets = append(topo.Mongo.ReplicaSets, rs)
}

func (r *rehearsal) input(t *testing.T, sandboxURL string) workflows.RegionMoveInput {
	t.Helper()
	gate := sandboxURL + "/_apps/eu-west-2/healthz"
	if r.rollback {
		gate = sandboxURL + "/_apps/eu-west-9/healthz" // no app there: 404, never passes
	}
	doc := fmt.Sprintf(`
name: %s
reason: chaos rehearsal
regionMove:
  sourceRegion: %s
  targetRegion: %s
  amiShare: {sourceRegion: %s, imageTags: {app: %s}, targetRegions: [%s]}
  mongoPrimaryMove:
    uri: mongodb://%s/?replicaSet=%s
    sourceRegion: %s
    targetRegion: %s
    newMembers: [%s]
    skipPrimaryApproval: true
    maxLag: 2s
    catchUpPeriod: 2s
    takeoverTimeout: 3s
  dnsShift:
    hostedZone: %s
    recordName: %s
    from: %s
    to: %s
    schedule: [50, 100]
    bakeTime: 1s
    gateInterval: 1s
    rollbackMode: %s
    gates: [{name: eu-west-2 health, http: {url: "%s", timeout: 2s}}]
`, r.name, source, target, source, r.app, target,
		strings.Join(r.sourceHosts, ","), r.set, source, target, strings.Join(r.targetHosts, ", "),
		zone, r.record, source, target, r.mode, gate)
	m, err := spec.Parse([]byte(doc), ".yaml")
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	in, err := spec.RegionMoveInput(m, "chaos")
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	in.Spec.AMI.PollInterval = 200 * time.Millisecond // the default 15s suits AWS, not the fast sandbox
	in.Budgets = chaosBudgets
	return in
}

func (r *rehearsal) plan() string {
	var b strings.Builder
	if r.rollback {
		fmt.Fprintf(&b, "roll back (%s)", r.mode)
	} else {
		b.WriteString("complete")
	}
	if r.down != downNone {
		fmt.Fprintf(&b, ", member down (%s)", r.down)
	}
	if r.slowSync {
		b.WriteString(", slow sync")
	}
	if r.editsRecord() {
		b.WriteString(", record edited behind ferry's back")
	}
	if r.tagsMember() {
		b.WriteString(", config edited behind ferry's back")
	}
	return b.String()
}

// memberDownWhileNeeded stops an old-region secondary of the set for 3-10 s once the move
// needs the set: when the MongoDB phase has added the new members, or, for a move that
// must roll back, once its traffic shift has begun (so the undo runs with it down).
func (r *rehearsal) memberDownWhileNeeded(ctx context.Context, stop <-chan struct{}, sb *sandbox.Sandbox, c *mongosim.Cluster, rnd *rand.Rand) error {
	needed := func() bool {
		if r.rollback {
			for _, call := range sb.AWS().Calls(control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets"}) {
				if call.Result == "ok" && call.Params["Change.1.Name"] == r.record {
					return true
				}
			}
			return false
		}
		for _, m := range c.Members() {
			if m.Region == target && m.InConfig {
				return true
			}
		}
		return false
	}
	wait := func(d time.Duration) bool {
		select {
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	for !needed() {
		if !wait(100 * time.Millisecond) {
			return nil
		}
	}
	if !wait(time.Duration(rnd.IntN(2000)) * time.Millisecond) {
		return nil
	}
	host := ""
	primary := c.Primary()
	for _, m := range c.Members() {
		if m.Region == source && m.InConfig && m.Up && m.Host != primary {
			host = m.Host
		}
	}
	if host == "" {
		return fmt.Errorf("no old-region secondary to take down (primary %s)", primary)
	}
	hold := time.Duration(3000+rnd.IntN(7000)) * time.Millisecond
	f, err := sb.Faults().Add(control.Fault{Target: mongoTarget(r.set, host), Kind: mongosim.FaultDown})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.downHost, r.downFor = host, hold
	r.mu.Unlock()
	wait(hold)
	// Deleting the fault brings the member back (a durationSec would too; the hold here is
	// the test's own, so the table can say how long it was).
	if _, err := sb.Faults().Delete(f.ID); err != nil {
		return fmt.Errorf("bring %s back: %w", host, err)
	}
	return nil
}

func mongoTarget(set, host string) string {
	_, port, _ := strings.Cut(host, ":")
	return "mongo:" + set + ":" + port
}

// weights are the record's eu-west-1 and eu-west-2 weights as the sandbox holds them.
func weights(sb *sandbox.Sandbox, record string) [2]int64 {
	out := [2]int64{-1, -1}
	for _, a := range sb.AWS().Resolve(record, "A") {
		switch a.SetIdentifier {
		case source:
			out[0] = a.Weight
		case target:
			out[1] = a.Weight
		}
	}
	return out
}
