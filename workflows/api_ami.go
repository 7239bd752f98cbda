package workflows

// --- AMI copy and share (contract) ---------------------------------------------------------

// AMIShareWorkflowID derives the workflow id from the source region and the image selection,
// so two migrations can never copy the same selection at once.
func AMIShareWorkflowID(sourceRegion, selection string) string {
	return "ami/" + sourceRegion + "/" + selection
}

// AMIProgress is the AMI-specific part of Progress: one entry per (image, region) pair.
type AMIProgress struct {
	Copies []AMICopyProgress
}

// AMICopyProgress is one (source image, target region) copy.
type AMICopyProgress struct {
	SourceImageID string
	Region        string
	ImageID       string
	State         string // pending, copying, available, shared, failed, rolled-back
	Detail        string
}
