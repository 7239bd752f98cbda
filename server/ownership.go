package server

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"

	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// The namespace ferry's migrations live in may hold other workflows: ferry's own plans and
// resource locks, and other applications'. The API steers migrations only: cancelling a
// lock would free a resource under a running move, and another application's workflow is
// none of ferry's business (its updates and signals could even share a name).

// isMigration reports whether a described workflow is one of ferry's migrations: its
// type is a kind's workflow and its FerryKind search attribute names that kind. Both are
// set by ferry at start (StartMigration, a region move's phases), never by a caller.
func isMigration(info *workflowpb.WorkflowExecutionInfo) bool {
	k, ok := spec.KindByName(searchAttr(info, workflows.SAKind.GetName()))
	return ok && k.WorkflowName == info.GetType().GetName()
}

// describeMigration describes id, refusing with NotFound a workflow that is not a ferry
// migration (the same answer as no workflow at all: the API does not confirm what else
// runs in the namespace).
func (s *migrationService) describeMigration(ctx context.Context, id, op string) (*workflowpb.WorkflowExecutionInfo, error) {
	d, err := s.temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		if werr := waitError(ctx, err, op); werr != nil {
			return nil, werr
		}
		return nil, temporalError(err, op)
	}
	info := d.GetWorkflowExecutionInfo()
	if !isMigration(info) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf(
			"%s: no such migration: %s is not a ferry migration (ids look like dns/shop.example/www.shop.example/A; see `ferry list`)", op, id))
	}
	return info, nil
}

// searchAttr reads a keyword search attribute ("" when unset).
func searchAttr(info *workflowpb.WorkflowExecutionInfo, key string) string {
	var v string
	if p, ok := info.GetSearchAttributes().GetIndexedFields()[key]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &v)
	}
	return v
}
