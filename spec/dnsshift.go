package spec

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

// Defaults applied to a DNS shift spec.
var (
	DefaultSchedule = []int{1, 10, 25, 50, 100}
)

const (
	DefaultRecordType   = "A"
	DefaultBakeTime     = 60 * time.Second
	DefaultGateInterval = 10 * time.Second
	DefaultTotalWeight  = 100
)

// weightedTypes are the record types Route 53 allows in weighted record sets.
var weightedTypes = []string{"A", "AAAA", "CAA", "CNAME", "DS", "MX", "NAPTR", "PTR", "SPF", "SRV", "TXT"}

var zoneIDRE = regexp.MustCompile(`^(/hostedzone/)?Z[A-Z0-9]{1,32}$`)

// Approvals normalises an approval policy: at least one approver, four-eyes unless the
// spec allows self-approval.
func Approvals(p *ferryv1.ApprovalPolicy) workflows.ApprovalPolicy {
	return workflows.ApprovalPolicy{
		RequiredApprovers: max(1, int(min(p.GetRequiredApprovers(), 100))),
		AllowSelfApproval: p.GetAllowSelfApproval(),
	}
}

// DNSShiftInput builds a DNSShift workflow's input from a whole spec (see Input).
func DNSShiftInput(m *ferryv1.MigrationSpec, initiator string) (workflows.DNSShiftInput, error) {
	if m.GetDnsShift() == nil {
		return workflows.DNSShiftInput{}, fieldErr("dnsShift", "missing; the spec must describe a migration (dnsShift)")
	}
	_, in, err := Input(m, initiator, "")
	if err != nil {
		return workflows.DNSShiftInput{}, err
	}
	return in.(workflows.DNSShiftInput), nil
}

// DNSShift validates a DNS shift spec statically (no cloud calls) and applies defaults.
// The first problem found is returned as a *FieldError naming the field.
func DNSShift(s *ferryv1.DnsShiftSpec) (workflows.DNSShiftSpec, error) {
	const p = "dnsShift"
	if s == nil {
		return workflows.DNSShiftSpec{}, fieldErr(p, "missing")
	}
	out := workflows.DNSShiftSpec{}

	zone := strings.TrimSpace(s.GetHostedZone())
	switch {
	case zone == "":
		return out, fieldErr(p+".hostedZone", "required: a hosted zone name such as shop.example. or an id such as Z0123456789ABC")
	case strings.Contains(zone, "."):
		zone = fqdn(zone)
	case !zoneIDRE.MatchString(zone):
		return out, fieldErr(p+".hostedZone", "%q is neither a zone name (with a dot, e.g. shop.example.) nor a zone id (Z followed by letters and digits)", zone)
	default:
		zone = strings.TrimPrefix(zone, "/hostedzone/")
	}
	out.Zone = zone

	name := strings.TrimSpace(s.GetRecordName())
	if name == "" {
		return out, fieldErr(p+".recordName", "required: the fully qualified record name, e.g. www.shop.example.")
	}
	name = fqdn(name)
	if strings.Contains(zone, ".") && name != zone && !strings.HasSuffix(name, "."+zone) {
		return out, fieldErr(p+".recordName", "%s is not in hosted zone %s; use a name ending in .%s", name, zone, zone)
	}
	out.RecordName = name

	rtype := strings.ToUpper(strings.TrimSpace(s.GetRecordType()))
	if rtype == "" {
		rtype = DefaultRecordType
	}
	if !slices.Contains(weightedTypes, rtype) {
		return out, fieldErr(p+".recordType", "%q cannot be weighted; use one of %s", s.GetRecordType(), strings.Join(weightedTypes, ", "))
	}
	out.RecordType = rtype

	out.From, out.To = strings.TrimSpace(s.GetFrom()), strings.TrimSpace(s.GetTo())
	switch {
	case out.From == "":
		return out, fieldErr(p+".from", "required: the set identifier serving traffic now, e.g. eu-west-1")
	case out.To == "":
		return out, fieldErr(p+".to", "required: the set identifier to move traffic to, e.g. eu-west-2")
	case out.From == out.To:
		return out, fieldErr(p+".to", "equals from (%q); a shift needs two different set identifiers", out.From)
	case len(out.From) > 128:
		return out, fieldErr(p+".from", "longer than Route 53's 128-character set identifier limit")
	case len(out.To) > 128:
		return out, fieldErr(p+".to", "longer than Route 53's 128-character set identifier limit")
	}

	total := int(s.GetTotalWeight())
	if total == 0 {
		total = DefaultTotalWeight
	}
	if total < 1 || total > 255 {
		return out, fieldErr(p+".totalWeight", "%d is outside 1..255 (Route 53 weights are 0..255)", s.GetTotalWeight())
	}
	out.TotalWeight = total

	sched, err := schedule(p, s)
	if err != nil {
		return out, err
	}
	out.Percents = sched
	if err := checkWeights(p, sched, total, out.From, out.To); err != nil {
		return out, err
	}

	out.ApproveAfter = make([]bool, len(sched))
	for i, pct := range s.GetApproveAt() {
		idx := slices.Index(sched, int(pct))
		if idx < 0 {
			return out, fieldErr(fmt.Sprintf("%s.approveAt[%d]", p, i), "%d is not a step of the schedule (%s); approvals happen after a step", pct, joinInts(sched))
		}
		out.ApproveAfter[idx] = true
	}
	if s.GetApproveEveryStep() {
		for i := range out.ApproveAfter {
			out.ApproveAfter[i] = true
		}
	}

	if out.BakeTime, err = duration(p+".bakeTime", s.GetBakeTime(), DefaultBakeTime, 0, 24*time.Hour); err != nil {
		return out, err
	}
	if out.GateInterval, err = duration(p+".gateInterval", s.GetGateInterval(), DefaultGateInterval, time.Second, time.Hour); err != nil {
		return out, err
	}

	seen := map[string]int{}
	for i, g := range s.GetGates() {
		gp := fmt.Sprintf("%s.gates[%d]", p, i)
		gate, err := convertGate(gp, g)
		if err != nil {
			return out, err
		}
		if j, dup := seen[gate.Name]; dup {
			return out, fieldErr(gp+".name", "%q is also the name of gates[%d]; gate names must be unique (progress and failure counts go by name)", gate.Name, j)
		}
		seen[gate.Name] = i
		out.Gates = append(out.Gates, gate)
	}

	switch s.GetRollbackMode() {
	case ferryv1.RollbackMode_ROLLBACK_MODE_UNSPECIFIED, ferryv1.RollbackMode_ROLLBACK_MODE_IMMEDIATE:
		out.RollbackMode = workflows.RollbackImmediate
	case ferryv1.RollbackMode_ROLLBACK_MODE_GRADUAL:
		out.RollbackMode = workflows.RollbackGradual
	default:
		return out, fieldErr(p+".rollbackMode", "unknown value %d; use immediate or gradual", s.GetRollbackMode())
	}
	switch s.GetOnGateFailure() {
	case ferryv1.GateFailureAction_GATE_FAILURE_ACTION_UNSPECIFIED, ferryv1.GateFailureAction_GATE_FAILURE_ACTION_ROLLBACK:
		out.OnGateFailure = workflows.OnGateFailRollback
	case ferryv1.GateFailureAction_GATE_FAILURE_ACTION_PAUSE:
		out.OnGateFailure = workflows.OnGateFailPause
	default:
		return out, fieldErr(p+".onGateFailure", "unknown value %d; use rollback or pause", s.GetOnGateFailure())
	}
	return out, nil
}

func schedule(p string, s *ferryv1.DnsShiftSpec) ([]int, error) {
	raw, step := s.GetSchedule(), s.GetLinearStep()
	switch {
	case len(raw) > 0 && step > 0:
		return nil, fieldErr(p+".linearStep", "set either schedule or linearStep, not both")
	case step > 100:
		return nil, fieldErr(p+".linearStep", "%d is outside 1..100", step)
	case step > 0:
		var out []int
		for pct := int(step); pct < 100; pct += int(step) {
			out = append(out, pct)
		}
		return append(out, 100), nil
	case len(raw) == 0:
		return slices.Clone(DefaultSchedule), nil
	case len(raw) > 100:
		return nil, fieldErr(p+".schedule", "%d steps; at most 100 (one per percent)", len(raw))
	}
	out := make([]int, len(raw))
	for i, v := range raw {
		f := fmt.Sprintf("%s.schedule[%d]", p, i)
		if v < 1 || v > 100 {
			return nil, fieldErr(f, "%d is outside 1..100; each step is the percentage of traffic on `to` after it", v)
		}
		if i > 0 && int(v) <= out[i-1] {
			return nil, fieldErr(f, "%d is not greater than %d; percentages must strictly increase", v, out[i-1])
		}
		out[i] = int(v)
	}
	if last := out[len(out)-1]; last != 100 {
		return nil, fieldErr(fmt.Sprintf("%s.schedule[%d]", p, len(out)-1), "the schedule ends at %d, not 100; add 100 as the last step (pause or approve at %d to hold there)", last, last)
	}
	return out, nil
}

// checkWeights rejects schedules whose steps the total weight cannot express: a step that
// rounds to the previous step's weights would be an empty change dressed up as progress.
func checkWeights(p string, sched []int, total int, from, to string) error {
	prevTo := 0
	for i, pct := range sched {
		f := fmt.Sprintf("%s.schedule[%d]", p, i)
		fw, tw := workflows.StepWeights(pct, total)
		if fw < 0 || fw > 255 || tw < 0 || tw > 255 {
			return fieldErr(f, "%d%% gives weights %s=%d %s=%d, outside 0..255", pct, from, fw, to, tw)
		}
		if tw == prevTo {
			what := "the previous step"
			if i == 0 {
				what = "no shift at all"
			}
			return fieldErr(f, "%d%% of totalWeight %d rounds to %s=%d, the same as %s; raise totalWeight or drop the step", pct, total, to, tw, what)
		}
		prevTo = tw
	}
	return nil
}

func duration(field string, d *durationpb.Duration, def, lo, hi time.Duration) (time.Duration, error) {
	if d == nil {
		return def, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, fieldErr(field, "invalid duration: %v", err)
	}
	v := d.AsDuration()
	if v < lo || v > hi {
		return 0, fieldErr(field, "%s is outside %s..%s", v, lo, hi)
	}
	return v, nil
}

func fqdn(n string) string {
	n = strings.ToLower(strings.TrimSpace(n))
	if !strings.HasSuffix(n, ".") {
		n += "."
	}
	return n
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}
