package server

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"connectrpc.com/connect"

	"github.com/ferryhq/ferry/workflows"
)

// Policy is the approval policy the server enforces on every start. It lives in the
// server's configuration, not in the spec, because the person it binds writes the spec: a
// spec may ask for more approvals than the policy, never fewer. The workflow trusts it
// because the server signs each start it checked (see sign.go).
type Policy struct {
	// MinApprovers is the fewest distinct approvers per gate, by kind (a FerryKind value);
	// "*" applies to kinds not listed. Missing: 1.
	MinApprovers map[string]int `json:"minApprovers,omitempty"`
	// AllowSelfApproval lets a spec turn four-eyes off (approvals.allowSelfApproval). Off,
	// such a spec is refused.
	AllowSelfApproval bool `json:"allowSelfApproval,omitempty"`
	// DNSApproveBy makes every DNS shift (alone or in a region move) wait for approval at
	// or before this share of traffic, so traffic never passes it unapproved (0: no rule).
	DNSApproveBy int `json:"dnsApproveBy,omitempty"`
	// PrimaryApproval makes every MongoDB primary move wait for approval before the primary
	// moves (a spec may not skip it).
	PrimaryApproval bool `json:"primaryApproval,omitempty"`
	// ShareApproval makes every AMI share that shares images with other accounts wait for
	// approval first.
	ShareApproval bool `json:"shareApproval,omitempty"`
}

// DefaultPolicy is what `ferry server` enforces without --approval-policy: four-eyes always,
// DNS traffic past 50% and a primary move only with approval, and images shared with
// other accounts only with approval.
func DefaultPolicy() Policy {
	return Policy{MinApprovers: map[string]int{"*": 1}, DNSApproveBy: 50, PrimaryApproval: true, ShareApproval: true}
}

// LoadPolicy reads a policy file (JSON; the fields of Policy).
func LoadPolicy(path string) (Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("approval policy: %w", err)
	}
	var p Policy
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("approval policy %s: %w (fields: minApprovers, allowSelfApproval, dnsApproveBy, primaryApproval, shareApproval)", path, err)
	}
	for k, n := range p.MinApprovers {
		if k != "*" && workflows.KindByName(k) == nil {
			return Policy{}, fmt.Errorf("approval policy %s: minApprovers names kind %q; kinds are %s", path, k, kindNames())
		}
		if n < 1 || n > 10 {
			return Policy{}, fmt.Errorf("approval policy %s: minApprovers.%s is %d; it must be 1..10", path, k, n)
		}
	}
	if p.DNSApproveBy < 0 || p.DNSApproveBy > 100 {
		return Policy{}, fmt.Errorf("approval policy %s: dnsApproveBy is %d; it must be 0..100", path, p.DNSApproveBy)
	}
	return p, nil
}

func kindNames() string {
	var names []string
	for _, k := range workflows.Kinds() {
		names = append(names, k.Name)
	}
	return strings.Join(names, ", ")
}

// minApprovers is the policy's minimum for kind.
func (p Policy) minApprovers(kind string) int {
	if n, ok := p.MinApprovers[kind]; ok {
		return n
	}
	return max(1, p.MinApprovers["*"])
}

// check refuses a start whose spec asks for fewer approvals than the policy, naming the
// rule and the spec field that would satisfy it.
func (p Policy) check(kind string, in any) error {
	var c workflows.Common
	var rules []string
	switch v := in.(type) {
	case workflows.DNSShiftInput:
		c, rules = v.Common, p.dnsRules("dnsShift", v.Spec)
	case workflows.MongoPrimaryMoveInput:
		c, rules = v.Common, p.mongoRules("mongoPrimaryMove", v.Spec)
	case workflows.AMIShareInput:
		c, rules = v.Common, p.amiRules("amiShare", v.Spec)
	case workflows.RegionMoveInput:
		c = v.Common
		if s := v.Spec.DNS; s != nil {
			rules = append(rules, p.dnsRules("regionMove.dnsShift", *s)...)
		}
		if s := v.Spec.Mongo; s != nil {
			rules = append(rules, p.mongoRules("regionMove.mongoPrimaryMove", *s)...)
		}
		if s := v.Spec.AMI; s != nil {
			rules = append(rules, p.amiRules("regionMove.amiShare", *s)...)
		}
	default:
		return nil
	}
	if n := p.minApprovers(kind); c.Approvals.RequiredApprovers < n {
		rules = append(rules, fmt.Sprintf("approvals.requiredApprovers is %d, the policy's minimum for %s is %d (minApprovers); set approvals.requiredApprovers: %d",
			c.Approvals.RequiredApprovers, kind, n, n))
	}
	if c.Approvals.AllowSelfApproval && !p.AllowSelfApproval {
		rules = append(rules, "approvals.allowSelfApproval is set, the policy does not allow self-approval (allowSelfApproval); remove it")
	}
	if len(rules) == 0 {
		return nil
	}
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("refused by the server's approval policy: %s", strings.Join(rules, "; ")))
}

func (p Policy) dnsRules(field string, s workflows.DNSShiftSpec) []string {
	if p.DNSApproveBy == 0 {
		return nil
	}
	for i, pct := range s.Percents {
		if pct > p.DNSApproveBy {
			break
		}
		if i < len(s.ApproveAfter) && s.ApproveAfter[i] {
			return nil
		}
	}
	return []string{fmt.Sprintf("%s waits for no approval at or before %d%% of traffic (dnsApproveBy); add a step at or below %d%% to %s.approveAt",
		field, p.DNSApproveBy, p.DNSApproveBy, field)}
}

func (p Policy) mongoRules(field string, s workflows.MongoMoveSpec) []string {
	if p.PrimaryApproval && s.SkipPrimaryApproval {
		return []string{fmt.Sprintf("%s skips the approval before the primary moves, which the policy requires (primaryApproval); remove skipPrimaryApproval", field)}
	}
	return nil
}

func (p Policy) amiRules(field string, s workflows.AMIShareSpec) []string {
	if p.ShareApproval && s.Sharing() && !s.ApproveBeforeSharing {
		return []string{fmt.Sprintf("%s shares images with other accounts without approval, which the policy requires (shareApproval); set %s.approveBeforeSharing: true", field, field)}
	}
	return nil
}
