package workflows

import (
	"fmt"
	"strings"
)

// amiShareKind describes the AMI share for the kind contract.
var amiShareKind = describe(KindDef{Name: KindAMIShare, WorkflowName: "AMIShare", Workflow: AMIShare, PlanName: "PlanAMIShare", Plan: PlanAMIShare},
	typedKind[AMIShareInput, AMIShareSpec]{
		input: func(s AMIShareSpec, c Common) AMIShareInput { return AMIShareInput{Spec: s, Common: c} },
		plan:  func(in AMIShareInput) any { return PlanAMIShareInput{Spec: in.Spec} },
		// AMISelection sorts the tag keys before use, so map order never reaches the id.
		//workflowcheck:ignore
		lock: func(in AMIShareInput) string { return AMIShareWorkflowID(in.Spec.SourceRegion, AMISelection(in.Spec)) },
		summary: func(in AMIShareInput) string {
			//workflowcheck:ignore
			return fmt.Sprintf("AMI share %s from %s to %s", AMISelection(in.Spec), in.Spec.SourceRegion, strings.Join(in.Spec.TargetRegions, ","))
		},
		regions: func(in AMIShareInput) (string, []string) { return in.Spec.SourceRegion, in.Spec.TargetRegions },
	})

// amiUndoRecord is the AMI share's change record: every image the run made (copies in the
// target regions, images of instances in the source region), recorded as soon as the call
// that made it returned. Its undo removes exactly these, and only those tagged as made by
// the owner.
type amiUndoRecord struct {
	Spec    AMIShareSpec
	Created []createdImage
}

// changes reports the images the run made that are still there.
func (w *amiShare) changes() Changes {
	inEffect := ""
	if n := len(w.created); n > 0 {
		items := make([]string, n)
		for i, c := range w.created {
			items[i] = c.ImageID + " in " + c.Region
		}
		inEffect = fmt.Sprintf("%d image(s) made by %s: %s", n, w.owner.ID, strings.Join(items, ", "))
	}
	return newChanges(w.owner, KindAMIShare, inEffect, amiUndoRecord{Spec: w.spec, Created: w.created})
}

// forget drops an image from the record once it is removed.
func (w *amiShare) forget(c createdImage) {
	for i := range w.created {
		if w.created[i].Region == c.Region && w.created[i].ImageID == c.ImageID {
			w.created = append(w.created[:i:i], w.created[i+1:]...)
			return
		}
	}
}
