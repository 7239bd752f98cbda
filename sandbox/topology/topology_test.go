package topology

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultLoadsAndValidates(t *testing.T) {
	d := Default()
	require.NoError(t, d.Validate())
	assert.Equal(t, "000000000000", d.Account)
	assert.Equal(t, []string{"eu-west-1", "eu-west-2", "us-east-1"}, d.Regions)
	assert.Len(t, d.Images, 2)
	assert.Equal(t, 2*time.Second, d.Timing.CopyTimePerGiB.D())
	assert.Equal(t, 5*time.Second, d.Timing.Route53InsyncDelay.D())
	require.Len(t, d.Mongo.ReplicaSets, 1)
	rs := d.Mongo.ReplicaSets[0]
	assert.Equal(t, "rs0", rs.Name)
	require.Len(t, rs.Members, 6)
	assert.True(t, rs.Members[0].InConfig)
	assert.False(t, rs.Members[5].InConfig)
	assert.Equal(t, 27022, rs.Members[5].Port)
	w := d.HostedZones[0].Records[0].Weighted
	assert.Equal(t, int64(100), w[0].Weight)
	assert.Equal(t, int64(0), w[1].Weight)
}

func TestExamplesFileEqualsDefault(t *testing.T) {
	ex, err := Load(filepath.Join("..", "..", "examples", "sandbox-topology.yaml"))
	require.NoError(t, err)
	assert.Equal(t, Default(), ex)
}

func TestBadFilesNameTheField(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"unknown field":  {"regions: [eu-west-1]\nimagez: []\n", `unknown field "imagez"`},
		"bad account":    {"account: '12'\nregions: [eu-west-1]\n", "account: must be 12 digits"},
		"unknown region": {"regions: [eu-west-1]\nimages: [{region: eu-west-9, name: a, sizeGiB: 1}]\n", "images[0].region: unknown region eu-west-9"},
		"weight":         {"regions: [eu-west-1]\nhostedZones: [{name: a.example., records: [{name: www.a.example., type: A, weighted: [{setIdentifier: x, weight: 256, values: [1.2.3.4]}]}]}]\n", "hostedZones[0].records[0].weighted[0].weight: must be 0-255"},
		"duration":       {"regions: [eu-west-1]\ntiming: {copyTimePerGiB: 2}\n", "duration must be a string"},
		"mongo port":     {"regions: [eu-west-1]\nmongo: {replicaSets: [{name: rs0, members: [{port: 27017, region: eu-west-1, inConfig: true}, {port: 27017, region: eu-west-1, inConfig: true}]}]}\n", "mongo.replicaSets[0].members[1].port: 27017 already used"},
		"mongo votes":    {"regions: [eu-west-1]\nmongo: {replicaSets: [{name: rs0, members: [{port: 1, region: eu-west-1, inConfig: true, votes: 2}]}]}\n", "members[0].votes: must be 0 or 1"},
		"app region":     {"regions: [eu-west-1]\napps: [{name: shop, region: us-east-1, address: 1.2.3.4}]\n", "apps[0].region: unknown region us-east-1"},
		"mongo set name": {twoSets("name: rs0", "name: rs0"), "mongo.replicaSets[1].id: mongo.replicaSets[0] is also named \"rs0\"; two sets may share a name, but then the sandbox needs an id to tell them apart: give one of them `id: rs0-b`"},
		"mongo set id":   {twoSets("{name: rs0, id: shop}", "{name: rs1, id: shop}"), "mongo.replicaSets[1].id: \"shop\" is already the id of mongo.replicaSets[0] (a set without an id goes by its name); ids tell sets apart in fault targets and events: give one of them `id: shop-b`"},
		"id is a name":   {twoSets("{name: rs0, id: rs0-b}", "name: rs0-b"), "mongo.replicaSets[1].id: \"rs0-b\" is already the id of mongo.replicaSets[0]"},
		"fix is free":    {twoSets("{name: rs0, id: rs0-b}", "name: rs0", "name: rs0"), "give one of them `id: rs0-c`"},
		"mongo id chars": {twoSets("{name: rs0, id: 'rs0:b'}"), `mongo.replicaSets[0].id: "rs0:b": use letters, digits`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

// twoSets is a topology with a replica set per head (YAML flow mappings without braces,
// e.g. "name: rs0, id: rs0-b"), each with one member on its own port.
func twoSets(heads ...string) string {
	var sets []string
	for i, h := range heads {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "{"), "}")
		sets = append(sets, fmt.Sprintf("{%s, members: [{port: %d, region: eu-west-1, inConfig: true}]}", h, 27017+i))
	}
	return "regions: [eu-west-1]\nmongo: {replicaSets: [" + strings.Join(sets, ", ") + "]}\n"
}

// TestSetsShareANameWithIDs: two companies' rs0 side by side are valid once ids tell them
// apart, and a set without an id goes by its name.
func TestSetsShareANameWithIDs(t *testing.T) {
	top, err := Parse([]byte(twoSets("{name: rs0, id: rs0}", "{name: rs0, id: rs0-b}")))
	require.NoError(t, err)
	assert.Equal(t, "rs0", top.Mongo.ReplicaSets[0].Key())
	assert.Equal(t, "rs0-b", top.Mongo.ReplicaSets[1].Key())
	top, err = Parse([]byte(twoSets("name: rs0", "{name: rs0, id: rs0-b}")))
	require.NoError(t, err)
	assert.Equal(t, "rs0", top.Mongo.ReplicaSets[0].Key())
	assert.Empty(t, top.Mongo.ReplicaSets[0].ID, "the default is not written back, so the file round-trips")
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "t.yaml")
	require.NoError(t, os.WriteFile(p, []byte("regions: []\n"), 0o600))
	_, err := Load(p)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), p+": "), err.Error())
}
