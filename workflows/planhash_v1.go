package workflows

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/ferryhq/ferry/activities"
)

// Plan hashes of the first encoding (v1): sha256 over a JSON document that kept zero values,
// so adding a spec field changed every hash. PlanHash (v2) replaced it. A run pinned to a v1
// hash (started before the upgrade, or from a plan made before it) is still accepted: the
// drift check compares the pin with both, and a history recorded under v1 replays the same
// decision. Remove these once no v1-pinned migration can be running.

func v1Hash(version string, doc any) string {
	b, err := json.Marshal(doc)
	if err != nil {
		b = fmt.Appendf(nil, "%s unencodable: %v", version, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:planHashChars]
}

func dnsShiftPlanHashV1(spec DNSShiftSpec, obs activities.PreflightOutput) string {
	others := make([]canonicalSet, len(obs.Others))
	for i, o := range obs.Others {
		others[i] = canon(o)
	}
	const version = "ferry/dns-shift/plan/v1"
	return v1Hash(version, struct {
		Version  string
		Spec     DNSShiftSpec
		ZoneID   string
		From, To canonicalSet
		Others   []canonicalSet
	}{version, spec, obs.ZoneID, canon(obs.From), canon(obs.To), others})
}

// v1AMISpec is AMIShareSpec as v1 encoded it: with the OnFailure field it then had (always
// "fail" from a spec file) between ApproveBeforeSharing and PollInterval.
func v1AMISpec(s AMIShareSpec) json.RawMessage {
	b, _ := json.Marshal(s)
	return bytes.Replace(b, []byte(`,"PollInterval":`), []byte(`,"OnFailure":"fail","PollInterval":`), 1)
}

func amiSharePlanHashV1(spec AMIShareSpec, images, instances, enabled any) string {
	const version = "ferry/ami-share/plan/v1"
	return v1Hash(version, struct {
		Version   string
		Spec      json.RawMessage
		Images    any
		Instances any
		Enabled   any
	}{version, v1AMISpec(spec), images, instances, enabled})
}

func mongoPlanHashV1(doc any) string {
	return v1Hash("ferry/mongo-primary-move/plan/v1", doc)
}

func regionMovePlanHashV1(spec RegionMoveSpec, childHashes []string) string {
	const version = "ferry/region-move/plan/v1"
	b, _ := json.Marshal(spec)
	if spec.AMI != nil {
		ami, _ := json.Marshal(*spec.AMI)
		b = bytes.Replace(b, ami, v1AMISpec(*spec.AMI), 1)
	}
	return v1Hash(version, struct {
		Version  string
		Spec     json.RawMessage
		Children []string
	}{version, b, childHashes})
}
