package awssim

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// ec2Region holds one region's EC2 resources: EC2 is regional, so an image id means
// nothing in another region.
type ec2Region struct {
	name       string
	images     map[string]*image
	snapshots  map[string]*snapshot
	instances  map[string]*instance
	copyTokens map[string]string // CopyImage ClientToken -> image id
	runTokens  map[string]string // RunInstances ClientToken -> reservation id
	kmsKeys    map[string]bool   // key ids, aliases and ARNs usable in this region
}

func newEC2Region(name string) *ec2Region {
	return &ec2Region{
		name:       name,
		images:     map[string]*image{},
		snapshots:  map[string]*snapshot{},
		instances:  map[string]*instance{},
		copyTokens: map[string]string{},
		runTokens:  map[string]string{},
		kmsKeys:    map[string]bool{"alias/aws/ebs": true},
	}
}

type image struct {
	id, name, description string
	owner                 string
	created               time.Time
	availableAt           time.Time // pending until then (copies and CreateImage take time)
	sizeGiB               int
	encrypted             bool
	kmsKeyID              string
	snapshotID            string
	tags                  map[string]string
	public                bool
	launchUsers           map[string]bool
	launchOrgs            map[string]bool
	launchOUs             map[string]bool
	// Where a copy came from, for the concurrent-copy limits.
	sourceRegion, sourceImage string
}

func (im *image) state(now time.Time) string {
	if now.Before(im.availableAt) {
		return "pending"
	}
	return "available"
}

type snapshot struct {
	id, description string
	owner           string
	volumeID        string
	started         time.Time
	completeAt      time.Time
	sizeGiB         int
	encrypted       bool
	kmsKeyID        string
	tags            map[string]string
	volumeUsers     map[string]bool
	volumePublic    bool
}

func (sn *snapshot) state(now time.Time) (status, progress string) {
	if now.Before(sn.completeAt) {
		total := sn.completeAt.Sub(sn.started)
		done := now.Sub(sn.started)
		pct := 0
		if total > 0 {
			pct = int(100 * done / total)
		}
		return "pending", itoa(pct) + "%"
	}
	return "completed", "100%"
}

type instance struct {
	id, imageID, instanceType, reservationID string
	launched, runningAt                      time.Time
	terminatedAt                             time.Time
	sizeGiB                                  int
	tags                                     map[string]string
	az                                       string
}

func (in *instance) state(now time.Time) (code int, name string) {
	switch {
	case !in.terminatedAt.IsZero():
		return 48, "terminated"
	case now.Before(in.runningAt):
		return 0, "pending"
	default:
		return 16, "running"
	}
}

var (
	amiIDRE      = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
	snapIDRE     = regexp.MustCompile(`^snap-([0-9a-f]{8}|[0-9a-f]{17})$`)
	instanceIDRE = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
)

func newAMIID() string      { return "ami-" + randHex(17) }
func newSnapshotID() string { return "snap-" + randHex(17) }
func newInstanceID() string { return "i-" + randHex(17) }
func newVolumeID() string   { return "vol-" + randHex(17) }

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func itoa(i int) string { return strconv.Itoa(i) }

var accountIDRE = regexp.MustCompile(`^[0-9]{12}$`)
