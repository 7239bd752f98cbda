// The AMI share's pairs: imaging instances, copying one image to one region (exactly once,
// by client token), waiting for it, sharing it, and the bounded parallelism over them.

package workflows

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/ferryhq/ferry/activities"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// runBounded runs fn(i) for i in [0, n) with at most MaxParallel in flight, as coroutines
// whose futures one selector waits on; done(i, err) runs on the workflow's main coroutine
// as each finishes. A pause holds new starts (running ones go on); a rollback request
// stops new starts; it returns once nothing is in flight.
func (w *amiShare) runBounded(ctx workflow.Context, n int, fn func(workflow.Context, int) error, done func(workflow.Context, int, error)) error {
	limit := max(1, w.spec.MaxParallel)
	sel := workflow.NewSelector(ctx)
	next, inflight, watching := 0, 0, false
	stop := func() bool { return !w.rollingBack && w.s.RollbackRequest() != nil || ctx.Err() != nil }
	for {
		for inflight < limit && next < n && !stop() && !w.s.Paused() {
			i := next
			next++
			inflight++
			f, set := workflow.NewFuture(ctx)
			workflow.Go(ctx, func(gctx workflow.Context) { set.Set(nil, fn(gctx, i)) })
			sel.AddFuture(f, func(f workflow.Future) {
				inflight--
				done(ctx, i, f.Get(ctx, nil))
			})
		}
		if next >= n && inflight == 0 || stop() && inflight == 0 {
			return ctx.Err()
		}
		if inflight == 0 {
			if err := w.s.WaitWhilePaused(ctx); err != nil {
				return err
			}
			continue
		}
		if w.s.Paused() && next < n && !watching {
			// Wake the loop on resume, not only when a running copy ends.
			watching = true
			f, set := workflow.NewFuture(ctx)
			workflow.Go(ctx, func(gctx workflow.Context) {
				set.Set(nil, workflow.Await(gctx, func() bool { return !w.s.Paused() || stop() }))
			})
			sel.AddFuture(f, func(workflow.Future) { watching = false })
		}
		sel.Select(ctx)
	}
}

func (w *amiShare) copyOpts(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// A few API calls (look for our copy, CopyImage, tag it); the bound is also how
		// long a dead worker holds the pair before another takes it over.
		StartToCloseTimeout:    shortCallTimeout,
		ScheduleToCloseTimeout: stepAttempt(w.s, w.in.Common),
		// RequestLimitExceeded (the CopyImage bucket refills at 1/s) and
		// ResourceLimitExceeded (concurrent copy quotas) come back retryable; the backoff
		// up to a minute lets the buckets refill and other copies finish. Every attempt
		// sends the same client token and first looks for its own tagged copy.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 30},
		Summary:     summary,
	})
}

func (w *amiShare) waitOpts(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// AWS copy time is best effort: large images take hours.
		StartToCloseTimeout:    12 * time.Hour,
		ScheduleToCloseTimeout: 24 * time.Hour,
		// A dead worker is noticed within a few polls and the wait resumes elsewhere.
		HeartbeatTimeout: max(30*time.Second, 3*w.spec.PollInterval),
		RetryPolicy:      &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
		Summary:          summary,
	})
}

func (w *amiShare) shortOpts(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: shortCallTimeout,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
		Summary:             summary,
	})
}

// createFromInstance images instance i in the source region and resolves the image, so
// its pairs can be copied like any other.
func (w *amiShare) createFromInstance(ctx, waitCtx workflow.Context, i int) error {
	inst := w.spec.CreateFromInstances[i]
	step := w.plan.CreateSteps[i]
	w.s.StartStep(ctx, step)
	name := fmt.Sprintf("ferry-%s-%s", inst, AMICopyToken(w.id, w.runID, inst, w.spec.SourceRegion)[:12])
	var out activities.CreateAMIOutput
	err := holdThrough(ctx, w.s, w.in.budgets(), "image "+inst, func(ctx workflow.Context) error {
		return workflow.ExecuteActivity(w.copyOpts(ctx, fmt.Sprintf("create image from %s", inst)), ec2a.CreateAMI, activities.CreateAMIInput{
			Region: w.spec.SourceRegion, InstanceID: inst, Name: name, Reboot: w.spec.Reboot, MigrationID: w.id, RunChain: w.runID,
		}).Get(ctx, &out)
	})
	if err != nil {
		return err
	}
	w.record(w.spec.SourceRegion, out.ImageID, nil, true)
	w.s.EndStep(ctx, step, "running", "image "+out.ImageID+" pending")
	if w.s.RollbackRequest() != nil {
		return errStoppedForRollback
	}
	var wo activities.WaitAMIOutput
	err = workflow.ExecuteActivity(w.waitOpts(waitCtx, fmt.Sprintf("wait %s (from %s) available in %s", out.ImageID, inst, w.spec.SourceRegion)), ec2a.WaitAMI, activities.WaitAMIInput{
		Region: w.spec.SourceRegion, ImageID: out.ImageID, PollInterval: w.spec.PollInterval,
	}).Get(ctx, &wo)
	if err != nil {
		return err
	}
	w.record(w.spec.SourceRegion, out.ImageID, wo.SnapshotIDs, true)
	// The new image gets the same checks as a selected one (state, keys for sharing).
	sp := w.spec
	sp.ImageIDs, sp.ImageTags = []string{out.ImageID}, nil
	obs, err := resolveAMIs(ctx, sp, []string{})
	if err != nil {
		return err
	}
	if len(obs.Images) != 1 {
		return fmt.Errorf("resolve image %s of %s: got %d images", out.ImageID, inst, len(obs.Images))
	}
	w.sources[out.ImageID] = obs.Images[0]
	for _, p := range w.pairs {
		if p.SourceInstanceID == inst {
			p.SourceImageID = out.ImageID
		}
	}
	return nil
}

func (w *amiShare) instanceDone(ctx workflow.Context, i int, err error) {
	inst := w.spec.CreateFromInstances[i]
	step := w.plan.CreateSteps[i]
	if err == nil {
		w.s.EndStep(ctx, step, StepDone, "")
		w.publish(ctx)
		return
	}
	detail := "could not create the image: " + failureLine(err)
	w.s.EndStep(ctx, step, StepFailed, detail)
	for _, p := range w.pairs {
		if p.SourceInstanceID == inst && p.SourceImageID == "" {
			p.State, p.Detail = AMICopyFailed, detail
			w.s.EndStep(ctx, p.step, StepFailed, detail)
		}
	}
	w.publish(ctx)
	w.s.Audit(ctx, SystemIdentity, "create image failed", detail, "create image from "+inst)
}

// copyPair copies one pair, waits until available, tags, and shares unless sharing waits
// for an approval.
func (w *amiShare) copyPair(ctx, waitCtx workflow.Context, p *amiPair, share bool) error {
	src, ok := w.sources[p.SourceImageID]
	if !ok {
		return fmt.Errorf("copy %s to %s: source image not resolved", pairSource(p), p.Region)
	}
	w.s.StartStep(ctx, p.step)
	w.setPair(ctx, p, AMICopyCopying, "starting CopyImage")
	token := AMICopyToken(w.id, w.runID, p.SourceImageID, p.Region)
	var out activities.CopyAMIOutput
	// EC2 failing past the step's budget (throttling that never lets up, 5xx) holds the
	// share blocked instead of failing the pair; a refusal (no permission, a bad key) ends it.
	err := holdThrough(ctx, w.s, w.in.budgets(), "copy "+p.SourceImageID+" to "+p.Region, func(ctx workflow.Context) error {
		return workflow.ExecuteActivity(w.copyOpts(ctx, fmt.Sprintf("copy %s to %s", p.SourceImageID, p.Region)), ec2a.CopyAMI, activities.CopyAMIInput{
			SourceRegion: w.spec.SourceRegion, SourceImageID: p.SourceImageID, Region: p.Region,
			Name: src.Name, Description: copyDescription(src, w.spec.SourceRegion), KMSKeyID: w.spec.KMSKeys[p.Region],
			ClientToken: token, MigrationID: w.id, RunChain: w.runID,
		}).Get(ctx, &out)
	})
	if err != nil {
		return err
	}
	if out.NotOurs {
		return w.reuseEarlierCopy(ctx, waitCtx, p, out)
	}
	w.record(p.Region, out.ImageID, nil, false)
	p.ImageID, p.Adopted = out.ImageID, out.Adopted
	how := "copy started"
	if out.Adopted {
		how = "found the copy an earlier attempt started"
	}
	w.setPair(ctx, p, AMICopyCopying, how+"; waiting until available")
	if w.s.RollbackRequest() != nil {
		return errStoppedForRollback
	}
	var wo activities.WaitAMIOutput
	err = workflow.ExecuteActivity(w.waitOpts(waitCtx, fmt.Sprintf("wait %s (copy of %s) available in %s", out.ImageID, p.SourceImageID, p.Region)), ec2a.WaitAMI, activities.WaitAMIInput{
		Region: p.Region, ImageID: out.ImageID, PollInterval: w.spec.PollInterval,
	}).Get(ctx, &wo)
	if err != nil {
		return err
	}
	w.record(p.Region, out.ImageID, wo.SnapshotIDs, false)
	p.snapshotIDs = wo.SnapshotIDs

	tags := map[string]string{}
	if w.spec.CopyTags {
		maps.Copy(tags, copyableTags(src.Tags))
	}
	maps.Copy(tags, w.spec.AddTags)
	// Ferry's tags last, so neither the source nor the spec can disguise where a copy
	// came from.
	tags[activities.TagMigration] = w.id
	tags[activities.TagSourceImage] = p.SourceImageID
	tags[activities.TagSourceRegion] = w.spec.SourceRegion
	err = workflow.ExecuteActivity(w.shortOpts(waitCtx, fmt.Sprintf("tag %s in %s", out.ImageID, p.Region)), ec2a.TagAMI, activities.TagAMIInput{
		Region: p.Region, ImageID: out.ImageID, SnapshotIDs: wo.SnapshotIDs, Tags: tags,
	}).Get(ctx, nil)
	if err != nil {
		return err
	}
	w.setPair(ctx, p, AMICopyAvailable, fmt.Sprintf("available after %d poll(s), %d tag(s)", wo.Polls, len(tags)))
	if share && w.spec.Sharing() {
		return w.sharePair(ctx, waitCtx, p)
	}
	return nil
}

// reuseEarlierCopy takes an earlier run's copy of the pair as it is: waited for, reported,
// never recorded as made by this run (so no rollback of this run deletes it), and neither
// tagged nor shared, since it is not this run's to change.
func (w *amiShare) reuseEarlierCopy(ctx, waitCtx workflow.Context, p *amiPair, out activities.CopyAMIOutput) error {
	owner := out.OwnerRun
	if owner == "" {
		owner = "a run before run tags"
	}
	p.ImageID, p.NotOurs = out.ImageID, true
	w.setPair(ctx, p, AMICopyCopying, fmt.Sprintf("exists already, made by %s, not this run: used read-only", owner))
	w.s.Audit(ctx, SystemIdentity, "copy exists, not ours", fmt.Sprintf("%s in %s was made by %s; this run uses it read-only and never deletes it", out.ImageID, p.Region, owner), fmt.Sprintf("copy %s to %s", pairSource(p), p.Region))
	var wo activities.WaitAMIOutput
	err := workflow.ExecuteActivity(w.waitOpts(waitCtx, fmt.Sprintf("wait %s (an earlier run's copy of %s) available in %s", out.ImageID, p.SourceImageID, p.Region)), ec2a.WaitAMI, activities.WaitAMIInput{
		Region: p.Region, ImageID: out.ImageID, PollInterval: w.spec.PollInterval,
	}).Get(ctx, &wo)
	if err != nil {
		return err
	}
	p.snapshotIDs = wo.SnapshotIDs
	w.setPair(ctx, p, AMICopyAvailable, fmt.Sprintf("exists already, made by %s, not this run: used read-only, not tagged, shared or deleted by it", owner))
	return nil
}

func copyDescription(src activities.SourceImage, region string) string {
	d := fmt.Sprintf("Copy of %s (%s) from %s by ferry", src.ID, src.Name, region)
	if len(d) > 255 {
		d = d[:255]
	}
	return d
}

func (w *amiShare) sharePair(ctx, waitCtx workflow.Context, p *amiPair) error {
	if w.s.RollbackRequest() != nil {
		return errStoppedForRollback
	}
	if p.NotOurs {
		return nil // an earlier run's copy: not this run's to share
	}
	var out activities.ShareAMIOutput
	err := workflow.ExecuteActivity(w.shortOpts(waitCtx, fmt.Sprintf("share %s in %s", p.ImageID, p.Region)), ec2a.ShareAMI, activities.ShareAMIInput{
		Region: p.Region, ImageID: p.ImageID, SnapshotIDs: p.snapshotIDs,
		Accounts: w.spec.ShareWithAccounts, Organizations: w.spec.ShareWithOrganizations, OrganizationalUnits: w.spec.ShareWithOrganizationalUnits,
	}).Get(ctx, &out)
	if err != nil {
		return err
	}
	w.setPair(ctx, p, AMICopyShared, fmt.Sprintf("shared: %d launch permission(s), %d snapshot(s)", out.LaunchPermissions, out.Snapshots))
	return nil
}

// pairDone records a pair's outcome; finalStep says the pair's step ends here.
func (w *amiShare) pairDone(ctx workflow.Context, p *amiPair, err error, finalStep bool) {
	switch {
	case err == nil:
		if finalStep {
			w.s.EndStep(ctx, p.step, StepDone, p.Detail)
		} else {
			w.s.EndStep(ctx, p.step, StepDone, p.Detail+"; sharing waits for approval")
		}
	case w.s.RollbackRequest() != nil && (errors.Is(err, errStoppedForRollback) || temporal.IsCanceledError(err)):
		w.setPair(ctx, p, p.State, "stopped: rollback requested")
	default:
		detail := failureLine(err)
		w.log.Warn("pair failed", "source", pairSource(p), "region", p.Region, "error", detail)
		w.setPair(ctx, p, AMICopyFailed, detail)
		w.s.EndStep(ctx, p.step, StepFailed, detail)
		w.s.Audit(ctx, SystemIdentity, "copy failed", detail, fmt.Sprintf("copy %s to %s", pairSource(p), p.Region))
	}
}
