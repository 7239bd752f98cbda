package workflows

// --- Region move (contract) ------------------------------------------------------------------

// RegionMoveWorkflowID derives the workflow id from the application's move, so one region
// move of an application runs at a time; the children hold their own resource locks.
func RegionMoveWorkflowID(name, sourceRegion, targetRegion string) string {
	return "region/" + name + "/" + sourceRegion + "/" + targetRegion
}

// PhaseProgress is one phase of a region move as Progress reports it.
type PhaseProgress struct {
	Name        string
	MigrationID string
	State       string // pending, running, completed, rolled-back, failed, skipped
}
