package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"time"
)

// --- AMI copy and share (contract) ---------------------------------------------------------

// AMIShareWorkflowID derives the workflow id from the source region and the image selection,
// so two migrations can never copy the same selection at once.
func AMIShareWorkflowID(sourceRegion, selection string) string {
	return "ami/" + sourceRegion + "/" + selection
}

// maxSelectionChars bounds the selection part of a workflow id; longer selections are
// hashed so ids stay readable and under Temporal's length limit.
const maxSelectionChars = 160

// AMISelection is the canonical text of a spec's image selection, for AMIShareWorkflowID:
// sorted image ids joined with "+", then "tags:k=v,k=v" (sorted by key), then
// "instances:i-1+i-2" (sorted), joined with ";". The same selection always gives the same
// text however the spec orders it, e.g. "ami-0a1+ami-0b2" or "tags:app=shop".
func AMISelection(s AMIShareSpec) string {
	var parts []string
	if len(s.ImageIDs) > 0 {
		parts = append(parts, strings.Join(slices.Sorted(slices.Values(s.ImageIDs)), "+"))
	}
	if len(s.ImageTags) > 0 {
		kv := make([]string, 0, len(s.ImageTags))
		for _, k := range slices.Sorted(maps.Keys(s.ImageTags)) {
			kv = append(kv, k+"="+s.ImageTags[k])
		}
		parts = append(parts, "tags:"+strings.Join(kv, ","))
	}
	if len(s.CreateFromInstances) > 0 {
		parts = append(parts, "instances:"+strings.Join(slices.Sorted(slices.Values(s.CreateFromInstances)), "+"))
	}
	sel := strings.Join(parts, ";")
	if len(sel) > maxSelectionChars {
		sum := sha256.Sum256([]byte(sel))
		sel = sel[:maxSelectionChars-20] + "~" + hex.EncodeToString(sum[:])[:16]
	}
	return sel
}

// AMIShareSpec is the validated, normalised AMI share spec (built from the proto by
// package spec). Lists are sorted where order carries no meaning, so equal specs hash
// equally.
type AMIShareSpec struct {
	SourceRegion string
	// ImageIDs, ImageTags and CreateFromInstances select the images; together they select
	// at least one.
	ImageIDs            []string
	ImageTags           map[string]string
	CreateFromInstances []string
	// Reboot the instances for CreateImage (default no reboot).
	Reboot bool
	// TargetRegions in the order the spec lists them.
	TargetRegions []string
	// KMSKeys is the key per target region the copy is encrypted with.
	KMSKeys                      map[string]string
	ShareWithAccounts            []string
	ShareWithOrganizations       []string
	ShareWithOrganizationalUnits []string
	// CopyTags copies the source image's tags (except aws:*) onto the copy.
	CopyTags bool
	AddTags  map[string]string
	// MaxParallel copies in flight at once (1..25).
	MaxParallel          int
	ApproveBeforeSharing bool
	// PollInterval between DescribeImages while waiting for a copy; zero means 15s. Tests
	// and the sandbox set it short.
	PollInterval time.Duration
}

// Sharing reports whether the spec shares the copies with anyone.
func (s AMIShareSpec) Sharing() bool {
	return len(s.ShareWithAccounts)+len(s.ShareWithOrganizations)+len(s.ShareWithOrganizationalUnits) > 0
}

// AMIShareInput starts an AMI share workflow.
type AMIShareInput struct {
	Spec AMIShareSpec
	Common
}

// PlanAMIShareInput asks for an AMI share plan.
type PlanAMIShareInput struct {
	Spec AMIShareSpec
}

// AMIShareResult is how an AMI share ended, with every pair's outcome.
type AMIShareResult struct {
	Outcome
	Copies []AMICopyProgress
}

// AMIProgress is the AMI-specific part of Progress: one entry per (image, region) pair.
type AMIProgress struct {
	Copies []AMICopyProgress
}

// AMICopy states.
const (
	AMICopyPending    = "pending"
	AMICopyCopying    = "copying"
	AMICopyAvailable  = "available"
	AMICopyShared     = "shared"
	AMICopyFailed     = "failed"
	AMICopyRolledBack = "rolled-back"
)

// AMICopyProgress is one (source image, target region) copy.
type AMICopyProgress struct {
	SourceImageID string
	// SourceInstanceID is set for images created from an instance by this migration.
	SourceInstanceID string
	Region           string
	ImageID          string
	State            string // pending, copying, available, shared, failed, rolled-back
	Detail           string
	// Adopted is true when the copy was found from an earlier attempt or run of this
	// migration rather than started by this call.
	Adopted bool
	// NotOurs is true when an earlier run of this migration made the copy: it is used
	// read-only (not tagged, shared or deleted by this run) and reported as such.
	NotOurs bool `json:",omitempty"`
}
