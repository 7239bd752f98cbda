package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/activities"
)

// goldenFixtures is a fixed spec and observed state per kind. The hashes below pin what
// each kind's plan hash is for them: a change that alters them alters the hash of every
// running migration pinned to a plan, so it must come with a new version string and the
// old encoding kept acceptable (as planhash_v1.go keeps v1).
func goldenFixtures() (DNSShiftSpec, activities.PreflightOutput, AMIShareSpec, activities.ResolveAMIsOutput, MongoMoveSpec, activities.MongoReadOutput) {
	dns := DNSShiftSpec{Zone: "shop.example.", RecordName: "www.shop.example.", RecordType: "A", From: "eu-west-1", To: "eu-west-2",
		Percents: []int{10, 50, 100}, ApproveAfter: []bool{false, true, false}, TotalWeight: 100, BakeTime: time.Minute, GateInterval: 10 * time.Second,
		Gates:        []Gate{{Name: "health", FailureThreshold: 1, HTTP: &HTTPProbe{URL: "http://x/healthz", ExpectStatus: 200, Timeout: time.Second}}},
		RollbackMode: RollbackGradual, OnGateFailure: OnGateFailRollback}
	pre := activities.PreflightOutput{ZoneID: "Z1", ZoneName: "shop.example.",
		From: activities.RecordSet{Name: "www.shop.example.", Type: "A", SetIdentifier: "eu-west-1", Weight: 100, TTL: 60, Values: []string{"10.1.0.10"}},
		To:   activities.RecordSet{Name: "www.shop.example.", Type: "A", SetIdentifier: "eu-west-2", Weight: 0, TTL: 60, Values: []string{"10.2.0.10"}}}
	ami := AMIShareSpec{SourceRegion: "eu-west-1", ImageTags: map[string]string{"app": "shop"}, TargetRegions: []string{"eu-west-2"}, MaxParallel: 2, CopyTags: true}
	res := activities.ResolveAMIsOutput{Images: []activities.SourceImage{{ID: "ami-1", Name: "web", State: "available", SnapshotIDs: []string{"snap-1"}, Tags: map[string]string{"app": "shop"}}},
		EnabledRegions: []string{"eu-west-1", "eu-west-2"}}
	mongo := MongoMoveSpec{URI: "mongodb://a:27017/?replicaSet=rs0", ReplicaSet: "rs0", RegionTag: "region", SourceRegion: "eu-west-1", TargetRegion: "eu-west-2",
		NewMembers: []string{"b:27017"}, Priorities: MongoPriorities{TargetFirst: 2, TargetRest: 1, SourceFirst: 0.5}, MaxLag: time.Second}
	read := activities.MongoReadOutput{Config: activities.MongoConfig{SetName: "rs0", Version: 3, Members: []activities.MongoMember{
		{ID: 0, Host: "a:27017", Votes: 1, Priority: 1, Tags: map[string]string{"region": "eu-west-1"}, BuildIndexes: true}}}, Primary: "a:27017",
		Probes: []activities.MongoProbe{{Host: "b:27017", Reachable: true}}}
	return dns, pre, ami, res, mongo, read
}

// The v1 values were printed by the code before PlanHash (ab50d4c) from these fixtures: a
// migration pinned then must still pass its drift check now. The current (v2) values pin
// every kind's hash as it is computed today. (The recorded histories in testdata/ are
// pinned to their plans too, so TestReplayHistories also fails when a hash changes.)
func TestPlanHashGolden(t *testing.T) {
	dns, pre, ami, res, mongo, read := goldenFixtures()
	region := RegionMoveSpec{SourceRegion: "eu-west-1", TargetRegion: "eu-west-2", AMI: &ami, Mongo: &mongo, DNS: &dns}
	children := []string{"ami-share=a", "dns-shift=d"}

	require.Equal(t, "8d512017438e9c85", dnsShiftPlanHashV1(dns, pre))
	require.Equal(t, "336a4f48532ee041", amiPlanHashV1(ami, res))
	require.Equal(t, "5db1b24a39c9a58b", mongoPlanHashesV1(mongo, read))
	require.Equal(t, "e019327739b48575", regionMovePlanHashV1(region, children))

	require.Equal(t, "21f742534827a138", DNSShiftPlanHash(dns, pre))
	require.Equal(t, "cc43c53724eea324", AMISharePlanHash(ami, res))
	require.Equal(t, "9be1dcaf228fd6ef", MongoPlanHash(mongo, read))
	require.Equal(t, "365321f72250bbf9", RegionMovePlanHash(region, children))

	// The hash a plan reports, and a run pinned to it compares in its drift check, is the
	// one above: the planners put these functions' values in Plan.Hash. (The MongoDB
	// fixture's member has no health, so it cannot be planned; ComputeMongoMovePlan uses
	// MongoPlanHash the same way.)
	dnsPlan, err := ComputeDNSShiftPlan(dns, pre)
	require.NoError(t, err)
	require.Equal(t, "21f742534827a138", dnsPlan.Plan.Hash)
	require.Equal(t, "cc43c53724eea324", ComputeAMISharePlan(ami, res).Plan.Hash)

	// A region move's hash as planRegionMove computes it: over "phase=hash" of its phases in
	// the order they run, here the current hashes of the three fixtures above, so a change
	// to a phase's hash or to how the move composes them shows here too.
	require.Equal(t, "e5c86dc44525ddbf", RegionMovePlanHash(region, []string{
		PhaseAMIShare + "=cc43c53724eea324", PhaseMongoPrimaryMove + "=9be1dcaf228fd6ef", PhaseDNSShift + "=21f742534827a138"}))
	var phases []string
	for _, ph := range regionPhases(region) {
		phases = append(phases, ph.name)
	}
	require.Equal(t, []string{PhaseAMIShare, PhaseMongoPrimaryMove, PhaseDNSShift}, phases, "the order the region move's hash covers its phases in")
}
