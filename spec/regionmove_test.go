package spec

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/workflows"
)

func TestRegionMoveExample(t *testing.T) {
	m, err := ParseFile("../examples/region-move.yaml")
	require.NoError(t, err)
	in, err := RegionMoveInput(m, "alice")
	require.NoError(t, err)
	s := in.Spec
	require.Equal(t, "shop", in.Name)
	require.Equal(t, "alice", in.Initiator)
	require.Equal(t, workflows.ApprovalPolicy{RequiredApprovers: 1}, in.Approvals)
	require.Equal(t, "region/shop/eu-west-1/eu-west-2", workflows.RegionMoveWorkflowID(in.Name, s.SourceRegion, s.TargetRegion))
	require.True(t, s.ApproveBetweenPhases)
	require.Equal(t, &workflows.MaintenanceWindow{Start: "22:00", End: "04:00", Zone: "Europe/London"}, s.Window)

	require.NotNil(t, s.AMI)
	require.Equal(t, map[string]string{"app": "shop"}, s.AMI.ImageTags)
	require.Equal(t, []string{"eu-west-2"}, s.AMI.TargetRegions)
	require.Equal(t, "ami/eu-west-1/tags:app=shop", workflows.AMIShareWorkflowID(s.AMI.SourceRegion, workflows.AMISelection(*s.AMI)))

	require.NotNil(t, s.Mongo)
	require.Equal(t, "rs0", s.Mongo.ReplicaSet)
	require.Equal(t, []string{"127.0.0.1:27020", "127.0.0.1:27021", "127.0.0.1:27022"}, s.Mongo.NewMembers)
	require.Equal(t, "eu-west-2", s.Mongo.TargetRegion)

	require.NotNil(t, s.DNS)
	require.Equal(t, "www.shop.example.", s.DNS.RecordName)
	require.Equal(t, []int{10, 50, 100}, s.DNS.Percents)
	require.Equal(t, "eu-west-1", s.DNS.From)
	require.Equal(t, "eu-west-2", s.DNS.To)
	require.Equal(t, 20*time.Second, s.DNS.BakeTime)
}

// regionSpec is a valid region move in YAML; tests edit one line to break it.
const regionSpec = `
name: shop
regionMove:
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  amiShare:
    sourceRegion: eu-west-1
    imageTags: {app: shop}
    targetRegions: [eu-west-2]
  mongoPrimaryMove:
    uri: mongodb://127.0.0.1:27017/?replicaSet=rs0
    sourceRegion: eu-west-1
    targetRegion: eu-west-2
    newMembers: [127.0.0.1:27020]
  dnsShift:
    hostedZone: shop.example.
    recordName: www.shop.example.
    from: eu-west-1
    to: eu-west-2
  maintenanceWindow: {start: "22:00", end: "04:00", timeZone: Europe/London}
`

func TestRegionMoveValid(t *testing.T) {
	m, err := Parse([]byte(regionSpec), ".yaml")
	require.NoError(t, err)
	in, err := RegionMoveInput(m, "alice")
	require.NoError(t, err)
	require.Equal(t, DefaultSchedule, in.Spec.DNS.Percents, "the phases get their own defaults")
	require.Equal(t, DefaultRegionTag, in.Spec.Mongo.RegionTag)
	require.False(t, in.Spec.ApproveBetweenPhases)
}

func TestRegionMoveValidationErrors(t *testing.T) {
	cases := []struct {
		name, old, new, field, msg string
	}{
		{"no name", "name: shop", "name: \"\"", "name", "required"},
		{"slash in name", "name: shop", "name: shop/eu", "name", "workflow id"},
		{"no source", "  sourceRegion: eu-west-1\n  targetRegion", "  targetRegion", "regionMove.sourceRegion", "required"},
		{"bad target", "  targetRegion: eu-west-2\n  amiShare", "  targetRegion: london\n  amiShare", "regionMove.targetRegion", "AWS region"},
		{"same regions", "  targetRegion: eu-west-2\n  amiShare", "  targetRegion: eu-west-1\n  amiShare", "regionMove.targetRegion", "two regions"},
		{"phase error is prefixed", "    imageTags: {app: shop}\n", "", "regionMove.amiShare", ""},
		{"ami from elsewhere", "    sourceRegion: eu-west-1\n    imageTags", "    sourceRegion: us-east-1\n    imageTags", "regionMove.amiShare.sourceRegion", "us-east-1"},
		{"ami not to target", "targetRegions: [eu-west-2]", "targetRegions: [us-east-1]", "regionMove.amiShare.targetRegions", "eu-west-2"},
		{"mongo phase error is prefixed", "    newMembers: [127.0.0.1:27020]\n", "", "regionMove.mongoPrimaryMove.newMembers", "required"},
		{"mongo other source", "    sourceRegion: eu-west-1\n    targetRegion: eu-west-2\n    newMembers", "    sourceRegion: us-east-1\n    targetRegion: eu-west-2\n    newMembers", "regionMove.mongoPrimaryMove.sourceRegion", "us-east-1"},
		{"mongo other target", "    targetRegion: eu-west-2\n    newMembers", "    targetRegion: us-east-1\n    newMembers", "regionMove.mongoPrimaryMove.targetRegion", "us-east-1"},
		{"dns phase error is prefixed", "    recordName: www.shop.example.\n", "", "regionMove.dnsShift.recordName", ""},
		{"dns swapped", "    from: eu-west-1\n    to: eu-west-2", "    from: eu-west-2\n    to: eu-west-1", "regionMove.dnsShift.from", "is a region"},
		{"dns swapped names", "    from: eu-west-1\n    to: eu-west-2", "    from: shop-eu-west-2\n    to: shop-eu-west-1", "regionMove.dnsShift.from", "swapped"},
		{"window start", `start: "22:00"`, `start: "22h"`, "regionMove.maintenanceWindow.start", "HH:MM"},
		{"window hour", `end: "04:00"`, `end: "24:00"`, "regionMove.maintenanceWindow.end", "HH:MM"},
		{"window empty", `end: "04:00"`, `end: "22:00"`, "regionMove.maintenanceWindow.end", "empty"},
		{"window zone", "timeZone: Europe/London", "timeZone: Europe/Atlantis", "regionMove.maintenanceWindow.timeZone", "IANA"},
		{"window local", "timeZone: Europe/London", "timeZone: Local", "regionMove.maintenanceWindow.timeZone", "IANA"},
		{"window without end", `, end: "04:00"`, "", "regionMove.maintenanceWindow.end", "required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Contains(t, regionSpec, c.old)
			m, err := Parse([]byte(strings.Replace(regionSpec, c.old, c.new, 1)), ".yaml")
			require.NoError(t, err)
			_, err = RegionMoveInput(m, "alice")
			fe, ok := AsFieldError(err)
			require.True(t, ok, "%v", err)
			require.True(t, strings.HasPrefix(fe.Field, c.field), "field %q, want %q (%v)", fe.Field, c.field, err)
			require.Contains(t, fe.Msg, c.msg)
		})
	}
}

func TestRegionMoveNeedsAPhase(t *testing.T) {
	m, err := Parse([]byte("name: shop\nregionMove:\n  sourceRegion: eu-west-1\n  targetRegion: eu-west-2\n"), ".yaml")
	require.NoError(t, err)
	_, err = RegionMoveInput(m, "alice")
	fe, ok := AsFieldError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "regionMove", fe.Field)
	require.Contains(t, fe.Msg, "no phase")

	// A window only holds the MongoDB and DNS phases.
	m, err = Parse([]byte(`
name: shop
regionMove:
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  amiShare: {sourceRegion: eu-west-1, imageIds: [ami-0a1b2c3d4e5f60001], targetRegions: [eu-west-2]}
  maintenanceWindow: {start: "22:00", end: "04:00"}
`), ".yaml")
	require.NoError(t, err)
	_, err = RegionMoveInput(m, "alice")
	require.ErrorContains(t, err, "regionMove.maintenanceWindow")
}

// Set identifiers need not be region names; free-text ones pass.
func TestRegionMoveFreeSetIdentifiers(t *testing.T) {
	m, err := Parse([]byte(strings.Replace(regionSpec, "    from: eu-west-1\n    to: eu-west-2", "    from: blue\n    to: green", 1)), ".yaml")
	require.NoError(t, err)
	in, err := RegionMoveInput(m, "alice")
	require.NoError(t, err)
	require.Equal(t, "green", in.Spec.DNS.To)
	require.Equal(t, "UTC", func() string {
		m, err := Parse([]byte(strings.Replace(regionSpec, ", timeZone: Europe/London", "", 1)), ".yaml")
		require.NoError(t, err)
		in, err := RegionMoveInput(m, "alice")
		require.NoError(t, err)
		return in.Spec.Window.Zone
	}())
}
