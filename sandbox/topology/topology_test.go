package topology

import (
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
		"mongo set name": {"regions: [eu-west-1]\nmongo: {replicaSets: [{name: rs0, members: [{port: 1, region: eu-west-1, inConfig: true}]}, {name: rs0, members: [{port: 2, region: eu-west-1, inConfig: true}]}]}\n", `mongo.replicaSets[1].name: "rs0" is already the name of mongo.replicaSets[0]`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "t.yaml")
	require.NoError(t, os.WriteFile(p, []byte("regions: []\n"), 0o600))
	_, err := Load(p)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), p+": "), err.Error())
}
