// Package clustersetup prepares a Temporal cluster for ferry: the namespace, ferry's search
// attributes (workflows.SearchAttributeKeys, the one declaration) and a check of the server
// features ferry relies on. `ferry setup` runs it against any cluster and `ferry dev` runs
// it against the embedded one, so both paths are the same code. Every step reads before it
// writes, so a second run changes nothing and says so.
package clustersetup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	updatepb "go.temporal.io/api/update/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ferryhq/ferry/workflows"
)

// MinServerVersion is the oldest Temporal server ferry supports: workflow updates (every
// approval, pause and rollback is one) are generally available from 1.25, and ferry is
// tested against the 1.29 it embeds.
const MinServerVersion = "1.25.0"

// Options says what to prepare.
type Options struct {
	// Namespace to create or check. Default "default".
	Namespace string
	// Retention of closed workflows, used only when the namespace is created (an existing
	// namespace's retention is reported, never changed). Default 30 days.
	Retention time.Duration
	// Progress, when set, receives a line as each step is done.
	Progress func(line string)
	// Wait bounds how long newly added search attributes may take to become visible
	// (frontends refresh their namespace cache periodically). Default 30 s.
	Wait time.Duration
}

// Result is what a run found and did.
type Result struct {
	ServerVersion string
	// Changes lists what this run changed; empty on a run that found everything in place.
	Changes []string
	// Lines is the full report, one line per check, as printed.
	Lines []string
}

// Run creates or checks the namespace, registers the search attributes that are missing,
// fails on one registered with another type, and checks the server version and that
// workflow updates are enabled.
func Run(ctx context.Context, c client.Client, o Options) (Result, error) {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Retention == 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if o.Wait == 0 {
		o.Wait = 30 * time.Second
	}
	r := &run{c: c, o: o}
	if err := r.server(ctx); err != nil {
		return r.res, err
	}
	if err := r.namespace(ctx); err != nil {
		return r.res, err
	}
	if err := r.searchAttributes(ctx); err != nil {
		return r.res, err
	}
	if err := r.updates(ctx); err != nil {
		return r.res, err
	}
	if len(r.res.Changes) == 0 {
		r.say("nothing to change: the cluster is ready for ferry")
	} else {
		r.say(fmt.Sprintf("%d change(s): %s", len(r.res.Changes), strings.Join(r.res.Changes, "; ")))
	}
	return r.res, nil
}

type run struct {
	c   client.Client
	o   Options
	res Result
}

func (r *run) say(line string) {
	r.res.Lines = append(r.res.Lines, line)
	if r.o.Progress != nil {
		r.o.Progress(line)
	}
}

func (r *run) changed(what string) {
	r.res.Changes = append(r.res.Changes, what)
}

// server checks the server's version against MinServerVersion.
func (r *run) server(ctx context.Context) error {
	info, err := r.c.WorkflowService().GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{})
	if err != nil {
		return fmt.Errorf("temporal unreachable (check --temporal-address, TLS and API key): %w", err)
	}
	v := info.GetServerVersion()
	r.res.ServerVersion = v
	if v != "" && compareVersions(v, MinServerVersion) < 0 {
		return fmt.Errorf("temporal server %s is older than %s, the oldest ferry supports (workflow updates); upgrade the cluster", v, MinServerVersion)
	}
	if v == "" {
		v = "unknown version"
	}
	r.say("temporal server " + v)
	return nil
}

// namespace creates the namespace when it does not exist.
func (r *run) namespace(ctx context.Context) error {
	ns := r.o.Namespace
	d, err := r.c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	var notFound *serviceerror.NamespaceNotFound
	switch {
	case err == nil:
		r.say(fmt.Sprintf("namespace %s: exists (retention %s)", ns, d.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration()))
		return nil
	case !errors.As(err, &notFound):
		return fmt.Errorf("describe namespace %s: %w", ns, err)
	}
	_, err = r.c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        ns,
		Description:                      "ferry migrations",
		WorkflowExecutionRetentionPeriod: durationpb.New(r.o.Retention),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("register namespace %s: %w", ns, err)
	}
	r.changed("namespace " + ns + " created")
	r.say(fmt.Sprintf("namespace %s: created (retention %s)", ns, r.o.Retention))
	// A new namespace reaches the services' caches a moment later; registering attributes
	// in it before then fails with "not found".
	deadline := time.Now().Add(r.o.Wait)
	for {
		_, err := r.listed(ctx)
		if err == nil {
			return nil
		}
		if !errors.As(err, &notFound) || time.Now().After(deadline) {
			return err
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// searchAttributes registers the missing ones in one call and waits until all are listed.
func (r *run) searchAttributes(ctx context.Context) error {
	have, err := r.listed(ctx)
	if err != nil {
		return err
	}
	missing := map[string]enumspb.IndexedValueType{}
	var names []string
	for _, k := range workflows.SearchAttributeKeys {
		want := k.GetValueType()
		got, ok := have[k.GetName()]
		switch {
		case !ok:
			missing[k.GetName()] = want
			names = append(names, k.GetName())
		case got != want:
			return fmt.Errorf("search attribute %s is registered as %s in namespace %s but ferry needs %s; a type cannot change under one name: remove it (`temporal operator search-attribute remove --name %s`) if nothing else uses it, then run `ferry setup` again",
				k.GetName(), typeName(got), r.o.Namespace, typeName(want), k.GetName())
		default:
			r.say(fmt.Sprintf("search attribute %s (%s): in place", k.GetName(), typeName(want)))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = r.c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: r.o.Namespace, SearchAttributes: missing,
	})
	if err != nil {
		return fmt.Errorf("register search attributes %s in namespace %s: %w", strings.Join(names, ", "), r.o.Namespace, err)
	}
	deadline := time.Now().Add(r.o.Wait)
	for {
		have, err = r.listed(ctx)
		if err != nil {
			return err
		}
		var still []string
		for _, n := range names {
			if _, ok := have[n]; !ok {
				still = append(still, n)
			}
		}
		if len(still) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("search attributes %s were registered but not listed within %s", strings.Join(still, ", "), r.o.Wait)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	// Listed is not yet usable: each frontend maps names in list queries through a cache of
	// its own, refreshed periodically (up to a minute on the embedded server), and until then
	// a `ferry list --region` naming the new attribute is refused. Wait for a query naming
	// every new one to be accepted.
	r.say(fmt.Sprintf("waiting for the frontend to accept queries on %s (up to %s)", strings.Join(names, ", "), r.o.Wait))
	clauses := make([]string, len(names))
	for i, n := range names {
		clauses[i] = n + " IS NOT NULL"
	}
	query := strings.Join(clauses, " OR ")
	for {
		_, err := r.c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: r.o.Namespace, Query: query})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("search attributes %s were registered but queries on them are still refused after %s: %w", strings.Join(names, ", "), r.o.Wait, err)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	for _, n := range names {
		r.changed("search attribute " + n + " registered")
		r.say(fmt.Sprintf("search attribute %s (%s): registered", n, typeName(missing[n])))
	}
	return nil
}

func (r *run) listed(ctx context.Context) (map[string]enumspb.IndexedValueType, error) {
	sa, err := r.c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: r.o.Namespace})
	if err != nil {
		return nil, fmt.Errorf("list search attributes of namespace %s: %w", r.o.Namespace, err)
	}
	return sa.GetCustomAttributes(), nil
}

// updates asks the frontend to update a workflow that does not exist: a server with
// updates enabled answers NotFound, one with them disabled refuses the call itself.
func (r *run) updates(ctx context.Context) error {
	_, err := r.c.WorkflowService().UpdateWorkflowExecution(ctx, &workflowservice.UpdateWorkflowExecutionRequest{
		Namespace:         r.o.Namespace,
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: "ferry-setup-probe/" + uuid.NewString()},
		WaitPolicy:        &updatepb.WaitPolicy{LifecycleStage: enumspb.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED},
		Request: &updatepb.Request{
			Meta:  &updatepb.Meta{UpdateId: uuid.NewString(), Identity: "ferry setup"},
			Input: &updatepb.Input{Name: "ferry-setup-probe"},
		},
	})
	var notFound *serviceerror.NotFound
	switch {
	case err == nil, errors.As(err, &notFound):
		r.say("workflow updates: enabled")
		return nil
	case isDisabled(err):
		return fmt.Errorf("workflow updates are disabled on this cluster, and every ferry approval, pause and rollback is one: set the dynamic config frontend.enableUpdateWorkflowExecution=true (%w)", err)
	default:
		return fmt.Errorf("check workflow updates: %w", err)
	}
}

func isDisabled(err error) bool {
	var denied *serviceerror.PermissionDenied
	var unimpl *serviceerror.Unimplemented
	return errors.As(err, &denied) || errors.As(err, &unimpl) || strings.Contains(strings.ToLower(err.Error()), "disabled")
}

// typeName is the type as Temporal's CLI and UI spell it ("KeywordList").
func typeName(t enumspb.IndexedValueType) string { return t.String() }

// compareVersions compares dotted versions numerically ("1.29.1" > "1.25.0"); anything after
// a '-' or '+' (a pre-release tag) is ignored.
func compareVersions(a, b string) int {
	parse := func(v string) []int {
		v = strings.TrimPrefix(v, "v")
		if i := strings.IndexAny(v, "-+"); i >= 0 {
			v = v[:i]
		}
		var out []int
		for _, p := range strings.Split(v, ".") {
			n := 0
			_, _ = fmt.Sscanf(p, "%d", &n)
			out = append(out, n)
		}
		return out
	}
	return slices.Compare(parse(a), parse(b))
}
