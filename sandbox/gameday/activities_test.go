package gameday

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ferryhq/ferry/sandbox/control"
)

func TestUnhealthyRegionsWatchesEveryRegionByDefault(t *testing.T) {
	tr := control.Traffic{Regions: map[string]control.RegionTraffic{
		"eu-west-1": {WindowRequests: 100, ErrorRate: 0},
		"eu-west-2": {WindowRequests: 100, ErrorRate: 0.5},
		"us-east-1": {WindowRequests: 0, ErrorRate: 0}, // no requests: nothing to judge
	}}
	assert.Equal(t, []string{"eu-west-2 error rate 50.0% > 1.0%"}, unhealthyRegions(tr, nil, 0.01))
	assert.Empty(t, unhealthyRegions(tr, []string{"eu-west-1"}, 0.01), "only the watched regions count")
}
