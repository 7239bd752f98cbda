package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/ferryhq/ferry/activities"
)

// Resource locks. A migration's workflow id names the resource as the spec spells it
// (dns/shop.example./www/A), which two spellings of one record, or two companies' sets
// named rs0, get wrong. So once a run has read the cloud (its preflight), it takes a lock
// per resource named by the cloud's own identity (the hosted-zone id, the replica set's
// replicaSetId, the image id and region): a child workflow with the lock's id, in the
// style of the Temporal mutex sample. Starting a workflow under an id that runs is refused
// by the Temporal server itself, so taking a lock is atomic; the lock child does nothing
// but wait, and its parent-close policy ends it when its holder ends however that happens
// (completed, failed, cancelled, terminated), so a lock is never left behind.
//
// A composite (the region move) takes the locks of all its phases' resources before its
// first phase and holds them to its end; its phases and undo runs run under them
// (Common.LockedBy) and take none of their own. A run that finds a lock taken changes
// nothing and ends failed with ErrResourceLocked, naming the holder.

// ErrResourceLocked is a run refused because another migration holds one of its resources.
const ErrResourceLocked = "ResourceLocked"

// LockWorkflowName is the lock child's registered workflow type.
const LockWorkflowName = "ferry.ResourceLock"

// UpdateLocks is the update that answers once a run has taken its locks or been refused
// (LockResult): StartMigration waits for it, so a conflict is refused at the API.
const UpdateLocks = "ferry.locks"

// Resource is something a migration changes, named as the cloud knows it.
type Resource struct {
	// ID is canonical: the same resource always gives the same id, however the spec
	// spells it, e.g. "route53/Z0SHOP/www.shop.example./A".
	ID string
	// Display names it for people, e.g. "Route 53 record www.shop.example. A (zone Z0SHOP)".
	Display string
}

// LockWorkflowID is the id of the lock child of resource id.
func LockWorkflowID(resourceID string) string { return "lock/" + resourceID }

// DNSRecordResource is a weighted record's name and type in a hosted zone (by id).
func DNSRecordResource(zoneID, name, typ string) Resource {
	name = strings.ToLower(fqdnName(name))
	return Resource{
		ID:      "route53/" + zoneID + "/" + name + "/" + strings.ToUpper(typ),
		Display: fmt.Sprintf("Route 53 record %s %s (zone %s)", name, strings.ToUpper(typ), zoneID),
	}
}

// ReplicaSetResource is a MongoDB replica set by its replicaSetId (the name is only for
// people: many companies have a set named rs0). A set whose config has no replicaSetId
// (older than MongoDB 3.2) is named by its name and its sorted hosts instead.
func ReplicaSetResource(name, replicaSetID string, hosts []string) Resource {
	if replicaSetID == "" {
		return Resource{ID: "mongodb/" + name + "@" + strings.Join(hosts, ","), Display: "replica set " + name + " (" + strings.Join(hosts, ",") + ")"}
	}
	return Resource{ID: "mongodb/" + replicaSetID, Display: fmt.Sprintf("replica set %s (replicaSetId %s)", name, replicaSetID)}
}

// ImageResource is a source image (or an instance to image) in its region.
func ImageResource(region, id string) Resource {
	return Resource{ID: "ec2/" + region + "/" + id, Display: id + " in " + region}
}

func fqdnName(n string) string {
	if strings.HasSuffix(n, ".") {
		return n
	}
	return n + "."
}

// LockInput is the lock child's input: who holds the lock, for the refusal's message.
type LockInput struct {
	Resource  Resource
	Holder    string // the holder's workflow id
	RunID     string
	Initiator string
	Since     time.Time
	// WatchHolder: the lock is not ended by its holder's close (the holder continues as
	// new), so it watches the holder's chain instead.
	WatchHolder bool `json:",omitempty"`
}

// Lock states of LockResult.
const (
	LocksHeld      = "held"      // the run holds every lock it needs
	LocksRefused   = "refused"   // another migration holds one
	LocksInherited = "inherited" // a parent holds them (a phase, an undo run)
	LocksNone      = "none"      // the run ended before it took any (e.g. its preflight failed)
)

// LockResult answers UpdateLocks.
type LockResult struct {
	State     string
	Resources []Resource
	// Holder is set when refused: the lock that was taken and who holds it.
	Holder *activities.LockHolder `json:",omitempty"`
	// Message says what happened, for the API's answer.
	Message string
	// Taken are the locks this run started, and Outlive says they outlive its runs (a kind
	// that continues as new): its last run releases them (releaseLocks).
	Taken   []Resource `json:",omitempty"`
	Outlive bool       `json:",omitempty"`
}

// ResourceLock is the lock child: it holds its id, and with it the resource, until its
// parent ends (parent-close policy terminate) or it is told to release it. A lock that
// outlives its holder's runs (WatchHolder: the holder continues as new) is released by the
// holder's last run when it ends, and otherwise when an activity sees the holder's chain
// closed (terminated, timed out), so no end leaves it behind.
func ResourceLock(ctx workflow.Context, in LockInput) error {
	ch := workflow.GetSignalChannel(ctx, SignalReleaseLock)
	done := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
		var r LockRelease
		c.Receive(ctx, &r)
		// A release names its holder, so a late release from a run that held this lock
		// before cannot free it from the migration that holds it now.
		done = r.Holder == "" || r.Holder == in.Holder
	})
	if in.WatchHolder {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			// It runs as long as the holder does, heartbeating; a worker that dies hands it to
			// another within the heartbeat timeout, and retries add no history.
			StartToCloseTimeout: 24 * time.Hour,
			HeartbeatTimeout:    30 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: time.Minute},
			Summary:             "until " + in.Holder + " ends",
		})
		var l *activities.Locks
		sel.AddFuture(workflow.ExecuteActivity(actx, l.AwaitHolderEnd, in.Holder), func(workflow.Future) { done = true })
	}
	for !done {
		sel.Select(ctx)
	}
	return nil
}

// SignalReleaseLock ends a lock child early: its holder's last run sends it (LockRelease),
// and operators may (with no holder named).
const SignalReleaseLock = "ferry.release"

// LockRelease is SignalReleaseLock's payload.
type LockRelease struct {
	Holder string
}

// holdLocks takes the run's locks on rs, or reports them inherited when its parent holds
// them. It refuses with ErrResourceLocked, naming the holder, when one is taken; the locks
// it took before that end with the run.
func holdLocks(ctx workflow.Context, s *Steering, c Common, rs []Resource) error {
	if c.LockedBy != "" || c.Undo != nil {
		holder := c.LockedBy
		if holder == "" {
			holder = "the run whose changes this undoes"
		}
		s.setLocks(LockResult{State: LocksInherited, Resources: rs, Message: "locks held by " + holder})
		return nil
	}
	// Runs started before locks existed took none; their histories must replay unchanged.
	if workflow.GetVersion(ctx, "resource-locks", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		s.setLocks(LockResult{State: LocksNone, Message: "started before resource locks"})
		return nil
	}
	// A kind that continues as new closes its run at each hand-over, which would end locks
	// tied to the run; its locks watch the chain instead and its last run releases them.
	outlive := s.opts.ContinueAsNew &&
		workflow.GetVersion(ctx, "locks-outlive-runs", workflow.DefaultVersion, 1) != workflow.DefaultVersion
	policy := enumspb.PARENT_CLOSE_POLICY_TERMINATE // a lock ends with its holder, however it ends
	if outlive {
		policy = enumspb.PARENT_CLOSE_POLICY_ABANDON
	}
	var taken []Resource
	info := workflow.GetInfo(ctx)
	for _, r := range rs {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            LockWorkflowID(r.ID),
			ParentClosePolicy:     policy,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			StaticSummary:         "lock: " + r.Display + ", held by " + info.WorkflowExecution.ID,
			Memo:                  map[string]any{"holder": info.WorkflowExecution.ID, "initiator": c.Initiator, "resource": r.Display},
		})
		fut := workflow.ExecuteChildWorkflow(cctx, LockWorkflowName, LockInput{
			Resource: r, Holder: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID,
			Initiator: c.Initiator, Since: workflow.Now(ctx), WatchHolder: outlive,
		})
		err := fut.GetChildWorkflowExecution().Get(ctx, nil)
		var started *temporal.ChildWorkflowExecutionAlreadyStartedError
		if errors.As(err, &started) {
			return refuseLocked(ctx, s, rs, r, taken, outlive)
		}
		if err != nil {
			s.setLocks(LockResult{State: LocksNone, Taken: taken, Outlive: outlive, Message: "taking locks failed: " + err.Error()})
			return err
		}
		taken = append(taken, r)
	}
	s.setLocks(LockResult{State: LocksHeld, Resources: rs, Taken: taken, Outlive: outlive, Message: fmt.Sprintf("holding %d lock(s)", len(rs))})
	s.Audit(ctx, SystemIdentity, "locked", resourceList(rs), "")
	return nil
}

// refuseLocked ends the locking with a refusal naming r's holder.
func refuseLocked(ctx workflow.Context, s *Steering, rs []Resource, r Resource, taken []Resource, outlive bool) error {
	holder := activities.LockHolder{LockID: LockWorkflowID(r.ID)}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var l *activities.Locks
	if err := workflow.ExecuteActivity(actx, l.DescribeLock, holder.LockID).Get(ctx, &holder); err != nil {
		s.Logger().Warn("describe lock holder", "lock", holder.LockID, "error", err)
		holder.LockID = LockWorkflowID(r.ID)
	}
	msg := fmt.Sprintf("refused: %s is held by %s; wait for it to finish, or cancel it", r.Display, holder.Describe())
	s.setLocks(LockResult{State: LocksRefused, Resources: rs, Holder: &holder, Message: msg, Taken: taken, Outlive: outlive})
	return temporal.NewNonRetryableApplicationError(msg, ErrResourceLocked, nil, holder)
}

// releaseLocks releases the locks a run that continues as new took (LockResult.Outlive),
// once its chain ends: the parent-close policy does it for the others. It runs however
// the run ends (a cancelled run too), and is best effort: a lock left by a failed signal
// sees its holder closed and ends by itself.
func releaseLocks(ctx workflow.Context, s *Steering) {
	l := s.locks
	if l == nil || !l.Outlive || len(l.Taken) == 0 {
		return
	}
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	holder := workflow.GetInfo(ctx).WorkflowExecution.ID
	for _, r := range l.Taken {
		err := workflow.SignalExternalWorkflow(dctx, LockWorkflowID(r.ID), "", SignalReleaseLock, LockRelease{Holder: holder}).Get(dctx, nil)
		if err != nil {
			s.Logger().Warn("release lock", "lock", LockWorkflowID(r.ID), "error", err)
		}
	}
}

// resourceList names resources for messages.
func resourceList(rs []Resource) string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.Display
	}
	return strings.Join(names, "; ")
}

// registerLocks serves UpdateLocks: it answers once the run has taken its locks, been
// refused, or ended without reaching them.
func (s *Steering) registerLocks(ctx workflow.Context) error {
	err := workflow.SetUpdateHandler(ctx, UpdateLocks, func(ctx workflow.Context) (LockResult, error) {
		if err := workflow.Await(ctx, func() bool { return s.locks != nil || s.finished }); err != nil {
			return LockResult{}, err
		}
		if s.locks != nil {
			return *s.locks, nil
		}
		return LockResult{State: LocksNone, Message: s.p.Message}, nil
	})
	if err != nil {
		return fmt.Errorf("register update %s: %w", UpdateLocks, err)
	}
	return nil
}

func (s *Steering) setLocks(r LockResult) { s.locks = &r }

// RegisterLock registers the lock child on a worker or a test environment.
func RegisterLock(r interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}) {
	r.RegisterWorkflowWithOptions(ResourceLock, workflow.RegisterOptions{Name: LockWorkflowName})
}
