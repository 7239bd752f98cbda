package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	enumspb "go.temporal.io/api/enums/v1"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// Resource locks are named by the cloud's identity of a resource, not by how a spec spells
// it, and a region move holds all of its resources for its whole life. Each case judges
// the refused run from Temporal's record (it failed) and the resource from the sandbox's
// (nothing changed). On the code before locks, every refused start here was accepted.
func TestResourceLocks(t *testing.T) {
	if testing.Short() {
		t.Skip("boots the embedded stack")
	}
	st := testenv.StartStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	alice := st.APIClient(testenv.TokenAliceApprover, false)
	rs := st.Mongo.Cluster("rs0")

	// refused asserts a start was refused with AlreadyExists naming holder, and that the
	// run it started ended failed without changing the record's weights or the set.
	refused := func(t *testing.T, m *ferryv1.MigrationSpec, holder string) {
		t.Helper()
		mongoBefore, weightsBefore := len(rs.Events()), weights(ctx, t, st)
		_, err := alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
		if code(err) != connect.CodeAlreadyExists || !strings.Contains(err.Error(), holder) {
			t.Fatalf("start: %v; want AlreadyExists naming %s", err, holder)
		}
		t.Logf("refused: %v", err)
		if after := weights(ctx, t, st); fmt.Sprint(after) != fmt.Sprint(weightsBefore) {
			t.Fatalf("the refused run changed the weights: %v, before %v", after, weightsBefore)
		}
		if after := len(rs.Events()); after != mongoBefore {
			t.Fatalf("the refused run touched the replica set: %v", rs.Events()[mongoBefore:])
		}
	}
	// stop cancels a migration if it still runs, so a failed case does not hold its locks
	// into the next.
	stop := func(id string) {
		_, _ = alice.CancelMigration(context.Background(), connect.NewRequest(&ferryv1.CancelMigrationRequest{Id: id, Reason: "test done"}))
	}
	endOf := func(t *testing.T, id string) enumspb.WorkflowExecutionStatus {
		t.Helper()
		var status enumspb.WorkflowExecutionStatus
		testenv.Eventually(t, time.Minute, id+" to end", func() bool {
			d, err := st.Client.DescribeWorkflowExecution(ctx, id, "")
			if err != nil {
				t.Fatal(err)
			}
			status = d.GetWorkflowExecutionInfo().GetStatus()
			return status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
		})
		return status
	}
	awaitApproval := func(t *testing.T, id string) {
		t.Helper()
		testenv.Eventually(t, 2*time.Minute, id+" to await approval", func() bool {
			r, err := alice.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
			if err != nil {
				t.Fatal(err)
			}
			return len(r.Msg.GetMigration().GetPendingApprovals()) > 0
		})
	}

	t.Run("one record spelled by name and by zone id", func(t *testing.T) {
		first := withSandbox(shiftSpec(t, "", "  approveAt: [10]\n"), st.Sandbox.Addr())
		res, err := alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: first}))
		if err != nil {
			t.Fatal(err)
		}
		id := res.Msg.GetMigration().GetId()
		defer stop(id)
		awaitApproval(t, id)

		zoneID, _ := st.Sandbox.AWS().ZoneID("shop.example.")
		second := withSandbox(shiftSpec(t, "", ""), st.Sandbox.Addr())
		second.GetDnsShift().HostedZone = zoneID
		second.GetDnsShift().RecordName = "WWW.shop.example"                       // no trailing dot, other case
		secondID := workflows.DNSShiftWorkflowID(zoneID, "www.shop.example.", "A") // spec normalises the name
		if secondID == id {
			t.Fatalf("the spellings give one workflow id %s: the case tests nothing", id)
		}
		refused(t, second, id)
		if s := endOf(t, secondID); s != enumspb.WORKFLOW_EXECUTION_STATUS_FAILED {
			t.Fatalf("the refused run ended %v, want failed", s)
		}

		if _, err := alice.CancelMigration(ctx, connect.NewRequest(&ferryv1.CancelMigrationRequest{Id: id, Reason: "test done"})); err != nil {
			t.Fatal(err)
		}
		endOf(t, id)
		// The lock ended with its holder: the same record may be migrated again.
		again, err := alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: second}))
		if err != nil {
			t.Fatalf("start after the holder ended: %v", err)
		}
		if _, err := alice.CancelMigration(ctx, connect.NewRequest(&ferryv1.CancelMigrationRequest{Id: again.Msg.GetMigration().GetId(), Reason: "test done"})); err != nil {
			t.Fatal(err)
		}
		endOf(t, again.Msg.GetMigration().GetId())
		resetWeights(ctx, t, st)
	})

	t.Run("a region move holds its resources between phases", func(t *testing.T) {
		source, target := hostsByRegion(rs, "eu-west-1"), hostsByRegion(rs, "eu-west-2")
		mongoYAML := fmt.Sprintf(`
    uri: mongodb://%s/?replicaSet=rs0
    sourceRegion: eu-west-1
    targetRegion: eu-west-2
    newMembers: [%s]
    maxLag: 1s
    catchUpPeriod: 1s
    takeoverTimeout: 3s`, strings.Join(source, ","), strings.Join(target, ", "))
		move, err := spec.Parse([]byte(`
name: shop
reason: locks
approvals: {requiredApprovers: 1}
regionMove:
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  approveBetweenPhases: true
  amiShare: {sourceRegion: eu-west-1, imageTags: {app: shop}, targetRegions: [eu-west-2]}
  mongoPrimaryMove:`+mongoYAML+`
  dnsShift:
    hostedZone: shop.example.
    recordName: www.shop.example.
    from: eu-west-1
    to: eu-west-2
    schedule: [100]
    bakeTime: 1s
`), ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		res, err := alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: move}))
		if err != nil {
			t.Fatal(err)
		}
		id := res.Msg.GetMigration().GetId()
		defer stop(id)
		// The move waits for approval before its first phase: no child runs, yet every
		// resource is held.
		awaitApproval(t, id)

		refused(t, withSandbox(shiftSpec(t, "", ""), st.Sandbox.Addr()), id)
		mongo, err := spec.Parse([]byte("name: rs0 alone\nmongoPrimaryMove:"+strings.ReplaceAll(mongoYAML, "\n    ", "\n  ")), ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		refused(t, mongo, id)
		ami, err := spec.Parse([]byte("amiShare: {sourceRegion: eu-west-1, imageTags: {app: shop}, targetRegions: [us-east-1]}"), ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		refused(t, ami, id)

		if _, err := alice.CancelMigration(ctx, connect.NewRequest(&ferryv1.CancelMigrationRequest{Id: id, Reason: "test done"})); err != nil {
			t.Fatal(err)
		}
		endOf(t, id)
	})
}
