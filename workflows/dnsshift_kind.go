package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
)

// dnsShiftKind describes the DNS shift for the kind contract (see KindDef).
// dnsShiftWorkflowName is the DNS shift's registered workflow type.
const dnsShiftWorkflowName = "DNSShift"

var dnsShiftKind = describe(KindDef{Name: KindDNSShift, WorkflowName: dnsShiftWorkflowName, Workflow: DNSShift, PlanName: "PlanDNSShift", Plan: PlanDNSShift},
	typedKind[DNSShiftInput, DNSShiftSpec]{
		input: func(s DNSShiftSpec, c Common) DNSShiftInput { return DNSShiftInput{Spec: s, Common: c} },
		plan:  func(in DNSShiftInput) any { return PlanDNSShiftInput{Spec: in.Spec} },
		lock: func(in DNSShiftInput) string {
			return DNSShiftWorkflowID(in.Spec.Zone, in.Spec.RecordName, in.Spec.RecordType)
		},
		summary: func(in DNSShiftInput) string {
			return fmt.Sprintf("DNS shift %s %s: %s -> %s", in.Spec.RecordName, in.Spec.RecordType, in.Spec.From, in.Spec.To)
		},
		regions: func(in DNSShiftInput) (string, []string) { return in.Spec.From, []string{in.Spec.To} },
	})

// dnsWeights is what one batch set.
type dnsWeights struct{ From, To int }

// dnsUndoRecord is the DNS shift's change record: the weights it found and every batch it
// applied since, so an undo can retrace them (gradual) or restore the original in one
// batch (immediate).
type dnsUndoRecord struct {
	Spec         DNSShiftSpec
	OriginalFrom int
	OriginalTo   int
	Applied      []dnsWeights
}

// changes reports what the shift has changed: nothing until a batch may have been sent,
// and nothing once the original weights are confirmed back.
func (w *dnsShift) changes() Changes {
	orig := w.from == w.plan.OriginalFrom && w.to == w.plan.OriginalTo
	inEffect := ""
	switch {
	case !w.attempted || (orig && !w.uncertain):
	case w.uncertain:
		inEffect = fmt.Sprintf("%s %s: weights may have changed (the last batch's outcome is unknown); last confirmed %s=%d %s=%d, originally %s=%d %s=%d",
			w.spec.RecordName, w.spec.RecordType, w.spec.From, w.from, w.spec.To, w.to, w.spec.From, w.plan.OriginalFrom, w.spec.To, w.plan.OriginalTo)
	default:
		inEffect = fmt.Sprintf("%s %s weights %s=%d %s=%d (originally %s=%d %s=%d)",
			w.spec.RecordName, w.spec.RecordType, w.spec.From, w.from, w.spec.To, w.to, w.spec.From, w.plan.OriginalFrom, w.spec.To, w.plan.OriginalTo)
	}
	return newChanges(w.owner, KindDNSShift, inEffect, dnsUndoRecord{
		Spec: w.spec, OriginalFrom: w.plan.OriginalFrom, OriginalTo: w.plan.OriginalTo, Applied: w.applied,
	})
}

// undoRecorded is an undo run: it reads the record set now and takes the weights back to
// the recorded original, retracing the recorded batches in reverse when the spec's
// rollback is gradual. It ends rolled-back.
func (w *dnsShift) undoRecorded(ctx workflow.Context) (DNSShiftResult, error) {
	rec := w.undoRec
	w.s.SetPhase(ctx, "undo: preflight", "reading the record sets to undo "+w.in.Undo.ID)
	obs, err := preflight(ctx, w.spec)
	if err != nil {
		return DNSShiftResult{}, err
	}
	w.obs = obs
	dwell := max(w.spec.BakeTime, time.Duration(max(obs.From.TTL, obs.To.TTL))*time.Second)
	w.plan = DNSShiftPlan{OriginalFrom: rec.OriginalFrom, OriginalTo: rec.OriginalTo, Dwell: dwell}
	names := make([]string, len(rec.Applied))
	for i, a := range rec.Applied {
		pct := 0
		if a.From+a.To > 0 {
			pct = a.To * 100 / (a.From + a.To)
		}
		w.plan.Steps = append(w.plan.Steps, DNSStep{Percent: pct, FromWeight: a.From, ToWeight: a.To, Dwell: dwell,
			Name: fmt.Sprintf("shift to %d%%", pct)})
		names[i] = w.plan.Steps[i].Name
	}
	w.s.SetSteps(ctx, names, nil)
	w.from, w.to = int(obs.From.Weight), int(obs.To.Weight)
	// The record's batches were applied, so whatever is there now is this run's to undo.
	w.attempted, w.applied = true, rec.Applied
	w.step = len(rec.Applied) - 1
	w.s.Update(ctx, func(p *Progress) {
		p.DNS = &DNSProgress{FromWeight: w.from, ToWeight: w.to, StepIndex: w.step}
	})
	w.s.Audit(ctx, SystemIdentity, "undo plan", fmt.Sprintf("undo of %s: weights now %s=%d %s=%d, back to %s=%d %s=%d (%s)",
		w.in.Undo.ID, w.spec.From, w.from, w.spec.To, w.to, w.spec.From, rec.OriginalFrom, w.spec.To, rec.OriginalTo, strings.TrimSpace(w.in.Reason)), "")
	return w.rollback(ctx)
}
