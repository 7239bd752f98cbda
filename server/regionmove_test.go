package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// TestRegionMoveThroughAPI runs the marketplace region move the way a platform team does:
// plan, start pinned to the plan, and approve every gate — the parent's and its children's —
// through the parent's id over the API (a raw signal claiming an approver is refused), with the real worker and the sandbox's AWS and
// MongoDB. The initiator's own approval is refused.
func TestRegionMoveThroughAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("boots the embedded stack")
	}
	st := testenv.StartStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rs := st.Mongo.Cluster("rs0")
	source, target := hostsByRegion(rs, "eu-west-1"), hostsByRegion(rs, "eu-west-2")
	m, err := spec.Parse([]byte(fmt.Sprintf(`
name: shop
reason: api region move
approvals: {requiredApprovers: 1}
regionMove:
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  approveBetweenPhases: true
  amiShare: {sourceRegion: eu-west-1, imageTags: {app: shop}, targetRegions: [eu-west-2]}
  mongoPrimaryMove:
    uri: mongodb://%s/?replicaSet=rs0
    sourceRegion: eu-west-1
    targetRegion: eu-west-2
    newMembers: [%s]
    maxLag: 1s
    catchUpPeriod: 1s
    takeoverTimeout: 3s
  dnsShift:
    hostedZone: shop.example.
    recordName: www.shop.example.
    from: eu-west-1
    to: eu-west-2
    schedule: [50, 100]
    approveAt: [50]
    bakeTime: 2s
    gateInterval: 1s
    gates: [{http: {url: "%s/_apps/eu-west-2/healthz", timeout: 2s}}]
`, strings.Join(source, ","), strings.Join(target, ", "), st.Sandbox.Addr())), ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	alice := st.APIClient(testenv.TokenAliceApprover, false)
	plan, err := alice.PlanMigration(ctx, connect.NewRequest(&ferryv1.PlanMigrationRequest{Spec: m}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m, PlanHash: plan.Msg.GetPlanHash()}))
	if err != nil {
		t.Fatal(err)
	}
	id := res.Msg.GetMigration().GetId()

	// Approve whatever the parent lists, always through the parent's id.
	bob := st.APIClient(testenv.TokenBob, true)
	carol := st.APIClient(testenv.TokenCarol, false)
	var approved []string
	selfRefused, forged, pausedOnce := false, false, false
	for {
		r, err := alice.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
		if err != nil {
			t.Fatal(err)
		}
		mig := r.Msg.GetMigration()
		if mig.GetCloseTime() != nil {
			break
		}
		for _, a := range mig.GetPendingApprovals() {
			if !selfRefused {
				_, err := alice.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id}))
				if code(err) != connect.CodeFailedPrecondition {
					t.Fatalf("the initiator approving %q: %v; want FailedPrecondition", a.GetStep(), err)
				}
				selfRefused = true
			}
			if slices.Contains(approved, a.GetStep()) {
				continue // forwarded approvals land asynchronously; one is enough
			}
			if strings.HasPrefix(a.GetStep(), "mongo-primary-move: ") && !pausedOnce {
				// Pause and resume the move while its phase waits: the move passes both on to
				// the phase, the resume with the proof the API signed for the move. A phase
				// that refused it would stay paused after its approval and the move hang.
				if _, err := alice.PauseMigration(ctx, connect.NewRequest(&ferryv1.PauseMigrationRequest{Id: id, Reason: "check"})); err != nil {
					t.Fatalf("pause: %v", err)
				}
				waitPhasePaused(ctx, t, alice, mig, "mongo-primary-move")
				if _, err := alice.ResumeMigration(ctx, connect.NewRequest(&ferryv1.ResumeMigrationRequest{Id: id, Reason: "checked"})); err != nil {
					t.Fatalf("resume: %v", err)
				}
				pausedOnce = true
			}
			if strings.HasPrefix(a.GetStep(), "dns-shift: ") {
				// As the Temporal UI would: a raw signal to the parent claiming carol. The API
				// did not sign it, so the move refuses it (and audits the refusal); carol's
				// approval through the API is forwarded to the running child.
				if !forged {
					if err := st.Client.SignalWorkflow(ctx, id, "", workflows.SignalApprove, workflows.ActionRequest{Identity: "carol", Reason: "signal"}); err != nil {
						t.Fatal(err)
					}
					forged = true
					continue
				}
				if _, err := carol.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id})); err == nil {
					approved = append(approved, a.GetStep())
				}
				continue
			}
			if _, err := bob.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id, Comment: "looks good"})); err == nil {
				approved = append(approved, a.GetStep())
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("region move did not finish; approved %v", approved)
		}
		time.Sleep(200 * time.Millisecond)
	}
	final := watchToEnd(ctx, t, alice, id)
	if final.GetState() != ferryv1.MigrationState_MIGRATION_STATE_COMPLETED {
		t.Fatalf("region move ended %v: %s (approved %v)", final.GetState(), final.GetMessage(), approved)
	}
	for _, ph := range final.GetPhases() {
		if ph.GetState() != "completed" {
			t.Errorf("phase %s ended %s", ph.GetName(), ph.GetState())
		}
	}
	if !slices.ContainsFunc(approved, func(s string) bool { return strings.HasPrefix(s, "dns-shift: ") }) {
		t.Errorf("the DNS child's gate was not listed on the parent; approved %v", approved)
	}
	if !slices.Contains(target, rs.Primary()) {
		t.Errorf("primary is %s, want an eu-west-2 member", rs.Primary())
	}
	assertWeights(ctx, t, st, 0, 100)
	t.Logf("approved through the parent: %v", approved)
	refused := false
	for _, e := range final.GetAudit() {
		if e.GetAction() == "approve refused" && e.GetIdentity() == "carol (unverified)" && strings.Contains(e.GetReason(), "not signed by ferry's API") {
			refused = true
		}
	}
	if !refused {
		t.Errorf("the raw approve signal claiming carol was not refused and audited on the move")
	}
}

// waitPhasePaused waits until the region move's phase reports itself paused (the move
// forwarded the pause to it).
func waitPhasePaused(ctx context.Context, t *testing.T, c ferryv1connect.MigrationServiceClient, move *ferryv1.Migration, phase string) {
	t.Helper()
	var id string
	for _, ph := range move.GetPhases() {
		if ph.GetName() == phase {
			id = ph.GetMigrationId()
		}
	}
	if id == "" {
		t.Fatalf("the move lists no phase %s", phase)
	}
	for ctx.Err() == nil {
		r, err := c.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
		if err == nil && r.Msg.GetMigration().GetState() == ferryv1.MigrationState_MIGRATION_STATE_PAUSED {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("phase %s (%s) never showed paused", phase, id)
}
