package workflows

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ferryhq/ferry/activities"
)

// Rollback modes and gate-failure actions of DNSShiftSpec.
const (
	RollbackImmediate  = "immediate"
	RollbackGradual    = "gradual"
	OnGateFailRollback = "rollback"
	OnGateFailPause    = "pause"
	dnsPlanHashVersion = "ferry/dns-shift/plan/v2"
)

// DNSStep is one weight change of a DNS shift.
type DNSStep struct {
	Percent       int // share of traffic on To after the step
	FromWeight    int
	ToWeight      int
	Dwell         time.Duration
	NeedsApproval bool
	Name          string
	Description   string
}

// DNSShiftPlan is a computed plan: the steps the workflow executes, the weights a rollback
// returns to, and the Plan shown to people.
type DNSShiftPlan struct {
	Steps        []DNSStep
	OriginalFrom int
	OriginalTo   int
	Dwell        time.Duration
	Plan         Plan
}

// StepWeights returns the weights for pct percent of total on To: to = round(pct*total/100)
// and from = total - to, so the sum is always total (>= 1) and never both zero.
func StepWeights(pct, total int) (from, to int) {
	to = int(math.Round(float64(pct) * float64(total) / 100))
	return total - to, to
}

// ComputeDNSShiftPlan computes the steps of a shift from the spec and the observed state.
// It is pure, so the plan shown by `ferry plan` and the one executed are the same function
// of the same inputs, and the hash over those inputs detects drift between them.
func ComputeDNSShiftPlan(spec DNSShiftSpec, obs activities.PreflightOutput) (DNSShiftPlan, error) {
	if spec.TotalWeight < 1 || spec.TotalWeight > 255 {
		return DNSShiftPlan{}, fmt.Errorf("total weight %d is outside 1..255", spec.TotalWeight)
	}
	if len(spec.Percents) == 0 || spec.Percents[len(spec.Percents)-1] != 100 {
		return DNSShiftPlan{}, fmt.Errorf("schedule %v must end at 100", spec.Percents)
	}
	origFrom, origTo := int(obs.From.Weight), int(obs.To.Weight)
	if origFrom+origTo == 0 {
		return DNSShiftPlan{}, fmt.Errorf("%s and %s both have weight 0", spec.From, spec.To)
	}
	dwell := max(spec.BakeTime, time.Duration(max(obs.From.TTL, obs.To.TTL))*time.Second)
	// A gate with a count is asked at least that many times per step.
	evals := 0
	for _, g := range spec.Gates {
		evals = max(evals, g.Count)
	}
	dwell = max(dwell, time.Duration(evals)*spec.GateInterval)
	p := DNSShiftPlan{OriginalFrom: origFrom, OriginalTo: origTo, Dwell: dwell}

	obsLines := []string{
		fmt.Sprintf("hosted zone %s (%s)", obs.ZoneName, obs.ZoneID),
		describeSet(obs.From),
		describeSet(obs.To),
		dwellLine(dwell, spec.BakeTime, max(obs.From.TTL, obs.To.TTL), evals, spec.GateInterval),
	}
	for _, o := range obs.Others {
		obsLines = append(obsLines, "also weighted (left alone): "+describeSet(o))
	}
	var skipped []string
	for i, pct := range spec.Percents {
		// Steps at or below the share To already has would move traffic back; skipping
		// them lets a shift resume from where an earlier run stopped.
		if pct*(origFrom+origTo) <= 100*origTo && pct < 100 {
			skipped = append(skipped, fmt.Sprintf("%d%%", pct))
			continue
		}
		from, to := StepWeights(pct, spec.TotalWeight)
		approve := i < len(spec.ApproveAfter) && spec.ApproveAfter[i]
		st := DNSStep{Percent: pct, FromWeight: from, ToWeight: to, Dwell: dwell, NeedsApproval: approve,
			Name: fmt.Sprintf("shift to %d%%", pct)}
		var d strings.Builder
		fmt.Fprintf(&d, "one batch setting %s=%d %s=%d on the record sets as last seen (refused if changed outside ferry), wait INSYNC, dwell %s", spec.From, from, spec.To, to, dwell)
		if n := len(spec.Gates); n > 0 {
			fmt.Fprintf(&d, " checking %d gate(s) every %s", n, spec.GateInterval)
		}
		if approve {
			d.WriteString(", then wait for approval")
		}
		st.Description = d.String()
		p.Steps = append(p.Steps, st)
	}
	if len(skipped) > 0 {
		obsLines = append(obsLines, fmt.Sprintf("%s already has %d of %d weight: skipping %s", spec.To, origTo, origFrom+origTo, strings.Join(skipped, ", ")))
	}
	rb := "rollback: one batch back to " + fmt.Sprintf("%s=%d %s=%d", spec.From, origFrom, spec.To, origTo)
	if spec.RollbackMode == RollbackGradual {
		rb = "rollback: retrace completed steps in reverse with the same dwell and gates, then " + fmt.Sprintf("%s=%d %s=%d", spec.From, origFrom, spec.To, origTo)
	}
	obsLines = append(obsLines, rb, "on gate failure: "+spec.OnGateFailure)

	planned := make([]PlannedStep, len(p.Steps))
	for i, st := range p.Steps {
		planned[i] = PlannedStep{Name: st.Name, Description: st.Description, NeedsApproval: st.NeedsApproval, Wait: st.Dwell}
	}
	p.Plan = Plan{
		ID:           DNSShiftWorkflowID(spec.Zone, spec.RecordName, spec.RecordType),
		Kind:         KindDNSShift,
		Steps:        planned,
		Observations: obsLines,
		Hash:         DNSShiftPlanHash(spec, obs),
		Resources:    []Resource{DNSRecordResource(obs.ZoneID, spec.RecordName, spec.RecordType)},
	}
	return p, nil
}

func describeSet(s activities.RecordSet) string {
	target := strings.Join(s.SortedValues(), ",")
	if s.Alias != nil {
		target = "alias " + s.Alias.DNSName
	}
	line := fmt.Sprintf("%s %s %q: weight %d, TTL %ds, %s", s.Name, s.Type, s.SetIdentifier, s.Weight, s.TTL, target)
	if s.HealthCheckID != "" {
		line += ", health check " + s.HealthCheckID
	}
	return line
}

// canonicalSet is a record set in a fixed, order-independent form for hashing.
type canonicalSet struct {
	Name, Type, SetIdentifier string
	Weight, TTL               int64
	Values                    []string
	HealthCheckID             string
	Alias                     *activities.Alias
}

func canon(s activities.RecordSet) canonicalSet {
	return canonicalSet{
		Name: strings.ToLower(s.Name), Type: s.Type, SetIdentifier: s.SetIdentifier,
		Weight: s.Weight, TTL: s.TTL, Values: s.SortedValues(), HealthCheckID: s.HealthCheckID, Alias: s.Alias,
	}
}

// DNSShiftPlanHash hashes (PlanHash) the spec and the observed record sets.
func DNSShiftPlanHash(spec DNSShiftSpec, obs activities.PreflightOutput) string {
	others := make([]canonicalSet, len(obs.Others))
	for i, o := range obs.Others {
		others[i] = canon(o)
	}
	return PlanHash(dnsPlanHashVersion, struct {
		Spec     DNSShiftSpec
		ZoneID   string
		From, To canonicalSet
		Others   []canonicalSet
	}{spec, obs.ZoneID, canon(obs.From), canon(obs.To), others})
}

// dwellLine explains the dwell in the plan. Without a gate count it reads as before counts
// existed, so plans of running shifts keep their text.
func dwellLine(dwell, bake time.Duration, ttl int64, evals int, interval time.Duration) string {
	if evals == 0 {
		return fmt.Sprintf("dwell per step %s = max(bake time %s, TTL %ds)", dwell, bake, ttl)
	}
	return fmt.Sprintf("dwell per step %s = max(bake time %s, TTL %ds, %d gate evaluations every %s)", dwell, bake, ttl, evals, interval)
}
