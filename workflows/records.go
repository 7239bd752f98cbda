package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// recordSet is one simple-record change: the record as last seen, where *now says what
// it holds (updated as soon as the batch went in, or was found applied, so a change
// record always says what the record holds), and the values it gets.
type recordSet struct {
	ZoneID string
	Seen   activities.RecordSet
	Now    *[]string
	Values []string
	// Comment is the change batch's comment ("ferry database cutover db/...").
	Comment string
	// Frozen picks tight options for a step taken while writes are frozen.
	Frozen bool
	// Changed runs once *now was updated (the kind publishes its progress).
	Changed func(ctx workflow.Context)
}

// setSimpleRecord replaces a simple record's values, conditional on the values last seen,
// and waits INSYNC. Shared by the database cutover and the broker move.
func setSimpleRecord(ctx workflow.Context, s *Steering, c Common, r recordSet) error {
	opts := workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: stepAttempt(s, c),
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 5 * time.Second,
			NonRetryableErrorTypes: []string{activities.ErrRecordDrifted, activities.ErrNoSuchRecord, activities.ErrAccessDenied}},
		Summary: fmt.Sprintf("point %s at %s", r.Seen.Name, strings.Join(r.Values, ",")),
	}
	poll := 2 * time.Second
	if r.Frozen {
		opts = frozenOpts(opts.Summary, 5*time.Second)
		opts.RetryPolicy.NonRetryableErrorTypes = []string{activities.ErrRecordDrifted, activities.ErrNoSuchRecord, activities.ErrAccessDenied}
		poll = 100 * time.Millisecond
	}
	seen := r.Seen
	seen.Values = *r.Now
	var out activities.SetRecordOutput
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), r53.SetRecord, activities.SetRecordInput{
		ZoneID: r.ZoneID, Seen: seen, Values: r.Values, Comment: r.Comment,
	}).Get(ctx, &out); err != nil {
		return err
	}
	*r.Now = r.Values
	if r.Changed != nil {
		r.Changed(ctx)
	}
	s.Audit(ctx, SystemIdentity, "dns", fmt.Sprintf("%s %s -> %s", seen.Name, seen.Type, strings.Join(r.Values, ",")), "")
	if out.ChangeID == "" {
		return nil
	}
	wopts := opts
	wopts.Summary = "wait INSYNC " + out.ChangeID
	wopts.HeartbeatTimeout = 0
	if !r.Frozen {
		wopts.StartToCloseTimeout, wopts.HeartbeatTimeout = 10*time.Minute, 30*time.Second
	}
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, wopts), r53.WaitInsync, activities.WaitInsyncInput{ChangeID: out.ChangeID, PollInterval: poll}).Get(ctx, nil)
}
