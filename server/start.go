package server

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

func (s *migrationService) PlanMigration(ctx context.Context, req *connect.Request[ferryv1.PlanMigrationRequest]) (*connect.Response[ferryv1.PlanMigrationResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, errors.New("planning is not wired yet"))
}

func (s *migrationService) StartMigration(ctx context.Context, req *connect.Request[ferryv1.StartMigrationRequest]) (*connect.Response[ferryv1.StartMigrationResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, errors.New("starting is not wired yet"))
}
