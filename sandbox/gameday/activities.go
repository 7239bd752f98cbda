// Package gameday is the sandbox's side of a GameDay: the activities that inject its faults
// (with the game's owner label) and read back what the sandbox and the migration recorded.
package gameday

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/ferryhq/ferry/activities"
	"github.com/ferryhq/ferry/sandbox/control"
)

// Activities inject a GameDay's faults into the sandbox and read back what happened from
// the sandbox's own records (the clients' per-second traffic, the Route 53 call record) and
// from the migration under test (its progress, through Temporal). Every fault carries the
// game's owner label, so a stop clears the game's faults and nobody else's. They live next
// to the sandbox, not in package activities: production activities do not talk to the
// simulator, and these talk to nothing else.
type Activities struct {
	// Sandbox is the sandbox's base URL (the worker's --aws-endpoint). Empty: the worker
	// talks to real AWS, where a GameDay refuses to run.
	Sandbox  string
	HTTP     *http.Client
	Temporal client.Client
}

// ErrNoSandbox is a GameDay on a worker that talks to real AWS.
const ErrNoSandbox = "NoSandbox"

// ErrBadInput is input no retry can fix.
const ErrBadInput = "BadInput"

func permanent(errType string, err error, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), errType, err)
}

func badInput(format string, args ...any) error {
	return permanent(ErrBadInput, nil, format, args...)
}

// fqdn is a name as Route 53 compares it: lower case, with its trailing dot.
func fqdn(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

func (g *Activities) control() (*control.Client, error) {
	if g.Sandbox == "" {
		return nil, permanent(ErrNoSandbox, nil, "a GameDay runs against the sandbox only, and this worker talks to real AWS: run it on `ferry dev`, or give the worker --aws-endpoint with the sandbox's address")
	}
	return &control.Client{BaseURL: g.Sandbox, HTTPClient: g.HTTP}, nil
}

// InjectFaultInput is one experiment's fault; Fault.ID, chosen by the game (its run and
// the experiment's index), names it for the retries.
type InjectFaultInput struct {
	Owner    string
	Fault    control.Fault
	Duration time.Duration
}

// InjectedFault is the fault as the sandbox stored it; Start is the sandbox's clock.
type InjectedFault struct {
	ID    string
	Start time.Time
}

// InjectFault adds the fault with the game's owner label and its duration, so the sandbox
// ends it on time even if no worker is there to clear it. A retry after a lost answer finds
// the fault it added by its id instead of adding a second one (two experiments on the same
// target and kind may overlap, so nothing else tells them apart).
func (g *Activities) InjectFault(ctx context.Context, in InjectFaultInput) (InjectedFault, error) {
	cc, err := g.control()
	if err != nil {
		return InjectedFault{}, err
	}
	if in.Owner == "" || in.Duration <= 0 || in.Fault.ID == "" {
		return InjectedFault{}, badInput("inject fault: owner, duration and the fault's id are required")
	}
	mine, err := cc.ListFaultsOf(ctx, in.Owner)
	if err != nil {
		return InjectedFault{}, err
	}
	for _, f := range mine {
		if f.ID == in.Fault.ID {
			return InjectedFault{ID: f.ID, Start: f.Created}, nil
		}
	}
	f := in.Fault
	f.Owner = in.Owner
	f.DurationSec = in.Duration.Seconds()
	added, err := cc.AddFault(ctx, f)
	var ae *control.APIError
	if errors.As(err, &ae) && ae.Status/100 == 4 {
		return InjectedFault{}, permanent(ErrBadInput, err, "the sandbox refused the fault %s %s: %v", f.Target, f.Kind, err)
	}
	if err != nil {
		return InjectedFault{}, err
	}
	return InjectedFault{ID: added.ID, Start: added.Created}, nil
}

// DeleteFault removes one fault; one the sandbox already ended is no error.
func (g *Activities) DeleteFault(ctx context.Context, id string) error {
	cc, err := g.control()
	if err != nil {
		return err
	}
	var ae *control.APIError
	if err := cc.DeleteFault(ctx, id); err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
		return err
	}
	return nil
}

// ClearFaults removes every fault owner injected that is still active and returns how
// many there were.
func (g *Activities) ClearFaults(ctx context.Context, owner string) (int, error) {
	cc, err := g.control()
	if err != nil {
		return 0, err
	}
	if owner == "" {
		return 0, badInput("clear faults: an owner is required (an empty one would clear everyone's)")
	}
	mine, err := cc.ListFaultsOf(ctx, owner)
	if err != nil || len(mine) == 0 {
		return 0, err
	}
	return len(mine), cc.ClearFaultsOf(ctx, owner)
}

// SteadyStateInput says what healthy is: each watched region's client error rate over
// the sandbox's window at most MaxErrorRate, for Hold in a row.
type SteadyStateInput struct {
	Regions      []string
	MaxErrorRate float64
	Hold         time.Duration
	Timeout      time.Duration
}

// SteadyStateOutput says whether the steady state came back, and when (sandbox traffic
// read at that moment).
type SteadyStateOutput struct {
	Healthy bool
	At      time.Time
	Detail  string
}

// AwaitSteadyState reads the clients' traffic every second until the watched regions have
// been healthy for Hold, or Timeout passes. The report computes recovery from the
// per-second series; this only tells the game when it may go on.
func (g *Activities) AwaitSteadyState(ctx context.Context, in SteadyStateInput) (SteadyStateOutput, error) {
	cc, err := g.control()
	if err != nil {
		return SteadyStateOutput{}, err
	}
	deadline := time.Now().Add(in.Timeout)
	var since time.Time
	detail := "no reading yet"
	for {
		tr, err := cc.Traffic(ctx)
		if err == nil {
			bad := unhealthyRegions(tr, in.Regions, in.MaxErrorRate)
			switch {
			case len(bad) > 0:
				since, detail = time.Time{}, strings.Join(bad, ", ")
			case since.IsZero():
				since, detail = time.Now(), "healthy"
			case time.Since(since) >= in.Hold:
				return SteadyStateOutput{Healthy: true, At: since}, nil
			}
		} else {
			detail = err.Error()
		}
		activity.RecordHeartbeat(ctx, detail)
		if time.Now().After(deadline) {
			return SteadyStateOutput{Detail: detail}, nil
		}
		select {
		case <-ctx.Done():
			return SteadyStateOutput{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// unhealthyRegions names the watched regions over maxRate; no regions watched means every
// region the clients reach (the steady state's default, as the report reads it too).
func unhealthyRegions(tr control.Traffic, regions []string, maxRate float64) []string {
	if len(regions) == 0 {
		for r := range tr.Regions {
			regions = append(regions, r)
		}
		slices.Sort(regions)
	}
	var bad []string
	for _, r := range regions {
		if rt := tr.Regions[r]; rt.WindowRequests > 0 && rt.ErrorRate > maxRate {
			bad = append(bad, fmt.Sprintf("%s error rate %.1f%% > %.1f%%", r, rt.ErrorRate*100, maxRate*100))
		}
	}
	return bad
}

// CollectInput is the stretch of time one experiment covers.
type CollectInput struct {
	From, To time.Time
	// WeightsSince is when the game read the start weights: changes from then on are
	// read, so the chart knows the weights at From.
	WeightsSince time.Time
	Record       *activities.RecordRef
	Migration    string // workflow id of the migration under test, "" for none
}

// WeightChange is a weight Route 53 accepted, from the sandbox's call record.
type WeightChange struct {
	Time          time.Time
	SetIdentifier string
	Weight        int64
}

// MigrationEvent is one audit entry of the migration under test (or one of its phases).
type MigrationEvent struct {
	Time     time.Time
	Workflow string
	Identity string
	Action   string
	Reason   string
	Step     string
}

// Records are what the sandbox and the migration recorded in [From, To).
type Records struct {
	Series  control.TrafficSeries
	Weights []WeightChange `json:",omitempty"`
	// Events: the migration's audit entries in [From, To), phases included.
	Events []MigrationEvent `json:",omitempty"`
	// MigrationState is the migration's state when read ("" without one).
	MigrationState string `json:",omitempty"`
}

// Collect reads the records of [From, To): the clients' traffic second by second, the
// weight changes Route 53 accepted for the record, the migration's audit entries.
func (g *Activities) Collect(ctx context.Context, in CollectInput) (Records, error) {
	cc, err := g.control()
	if err != nil {
		return Records{}, err
	}
	var out Records
	if out.Series, err = cc.Series(ctx, in.From, in.To); err != nil {
		return Records{}, err
	}
	if in.Record != nil {
		calls, err := cc.Calls(ctx, control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets", Since: in.WeightsSince})
		if err != nil {
			return Records{}, err
		}
		out.Weights = weightChanges(calls, *in.Record, in.To)
	}
	if in.Migration != "" {
		st, events, err := g.migrationEvents(ctx, in.Migration)
		if err != nil {
			return Records{}, err
		}
		out.MigrationState = st
		for _, e := range events {
			if !e.Time.Before(in.From) && e.Time.Before(in.To) {
				out.Events = append(out.Events, e)
			}
		}
	}
	return out, nil
}

// weightChanges picks, from accepted ChangeResourceRecordSets calls before to, the weights
// set on ref's record (the query API's Change.N.* parameters).
func weightChanges(calls []control.Call, ref activities.RecordRef, to time.Time) []WeightChange {
	var out []WeightChange
	for _, c := range calls {
		if c.Result != "ok" || !c.Time.Before(to) {
			continue
		}
		for n := 1; ; n++ {
			p := "Change." + strconv.Itoa(n) + "."
			id, ok := c.Params[p+"SetIdentifier"]
			if !ok {
				break
			}
			w, err := strconv.ParseInt(c.Params[p+"Weight"], 10, 64)
			// A DELETE names the set's old weight (a conditional change deletes and creates).
			if err != nil || c.Params[p+"Action"] == "DELETE" || !strings.EqualFold(fqdn(c.Params[p+"Name"]), fqdn(ref.Name)) || !strings.EqualFold(c.Params[p+"Type"], ref.Type) {
				continue
			}
			out = append(out, WeightChange{Time: c.Time, SetIdentifier: id, Weight: w})
		}
	}
	return out
}

// MigrationEnd is the migration's state when the game read it last.
type MigrationEnd struct {
	State   string
	Message string
	Ended   bool
}

// AwaitMigrationEnd waits (heartbeating) until the migration's workflow has closed, or
// timeout passes, and returns its last state.
func (g *Activities) AwaitMigrationEnd(ctx context.Context, id string, timeout time.Duration) (MigrationEnd, error) {
	deadline := time.Now().Add(timeout)
	for {
		d, err := g.Temporal.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return MigrationEnd{}, err
		}
		ended := d.GetWorkflowExecutionInfo().GetCloseTime() != nil
		p, err := g.progress(ctx, id)
		if err != nil && !ended {
			return MigrationEnd{}, err
		}
		activity.RecordHeartbeat(ctx, p.State)
		if ended || time.Now().After(deadline) {
			return MigrationEnd{State: p.State, Message: p.Message, Ended: ended}, nil
		}
		select {
		case <-ctx.Done():
			return MigrationEnd{}, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// progressView is the part of a migration's progress (workflows.Progress, which this
// package cannot import) a game reads.
type progressView struct {
	State   string
	Message string
	Audit   []struct {
		Time                           time.Time
		Identity, Action, Reason, Step string
	}
	Phases []struct{ MigrationID string }
}

func (g *Activities) progress(ctx context.Context, id string) (progressView, error) {
	var p progressView
	if g.Temporal == nil {
		return p, permanent(ErrBadInput, nil, "this worker has no Temporal client")
	}
	v, err := g.Temporal.QueryWorkflow(ctx, id, "", "progress")
	if err != nil {
		return p, fmt.Errorf("read progress of %s: %w", id, err)
	}
	return p, v.Get(&p)
}

// migrationEvents returns the migration's state and its audit entries with its phases'.
func (g *Activities) migrationEvents(ctx context.Context, id string) (string, []MigrationEvent, error) {
	p, err := g.progress(ctx, id)
	if err != nil {
		return "", nil, err
	}
	events := auditEvents(id, p)
	for _, ph := range p.Phases {
		if ph.MigrationID == "" || ph.MigrationID == id {
			continue
		}
		// A phase not started yet has no workflow; one that ran has its own trail.
		if cp, err := g.progress(ctx, ph.MigrationID); err == nil {
			events = append(events, auditEvents(ph.MigrationID, cp)...)
		}
	}
	return p.State, events, nil
}

func auditEvents(id string, p progressView) []MigrationEvent {
	var out []MigrationEvent
	for _, a := range p.Audit {
		out = append(out, MigrationEvent{Time: a.Time, Workflow: id, Identity: a.Identity, Action: a.Action, Reason: a.Reason, Step: a.Step})
	}
	return out
}
