package server_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/spec"
)

// TestListByRegionFindsEachTarget: an AMI share to two regions is listed by `--region` for
// its source and for each target. Before FerryTargetRegions (a KeywordList), the targets
// were one comma-joined Keyword, and a filter on either target alone missed the share.
func TestListByRegionFindsEachTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("boots the embedded stack")
	}
	st := testenv.StartStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alice := st.APIClient(testenv.TokenAliceApprover, false)
	m, err := spec.Parse([]byte(`
name: two targets
approvals: {requiredApprovers: 1}
amiShare:
  sourceRegion: eu-west-1
  imageTags: {app: shop}
  targetRegions: [eu-west-2, us-east-1]
  shareWithAccounts: ["111122223333"]
  approveBeforeSharing: true
`), ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
	if err != nil {
		t.Fatal(err)
	}
	id := res.Msg.GetMigration().GetId()
	defer func() {
		_, _ = alice.CancelMigration(context.Background(), connect.NewRequest(&ferryv1.CancelMigrationRequest{Id: id, Reason: "test done"}))
	}()
	listed := func(region string) bool {
		r, err := alice.ListMigrations(ctx, connect.NewRequest(&ferryv1.ListMigrationsRequest{Region: region}))
		if err != nil {
			t.Fatalf("list --region %s: %v", region, err)
		}
		for _, mig := range r.Msg.GetMigrations() {
			if mig.GetId() == id {
				return true
			}
		}
		return false
	}
	for _, region := range []string{"eu-west-1", "eu-west-2", "us-east-1"} {
		testenv.Eventually(t, 20*time.Second, id+" listed for "+region, func() bool { return listed(region) })
	}
	if listed("ap-south-1") {
		t.Fatal("the share is listed for a region it does not touch")
	}
}
