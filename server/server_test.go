package server_test

import (
	"context"
	"errors"
	"fmt"
	"google.golang.org/protobuf/proto"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/gen/ferry/v1/ferryv1connect"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/mongosim"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// shiftSpec is the marketplace shift with sandbox-fast waits. extra is appended YAML under
// dnsShift (e.g. approvals).
func shiftSpec(t *testing.T, top, extra string) *ferryv1.MigrationSpec {
	t.Helper()
	y := top + `
dnsShift:
  hostedZone: shop.example.
  recordName: www.shop.example.
  from: eu-west-1
  to: eu-west-2
  schedule: [10, 50, 100]
  bakeTime: 1s
  gateInterval: 1s
  gates:
    - name: eu-west-2 health
      http: {url: "SANDBOX/_apps/eu-west-2/healthz", timeout: 1s}
` + extra
	m, err := spec.Parse([]byte(y), ".yaml")
	if err != nil {
		t.Fatalf("parse spec: %v\n%s", err, y)
	}
	return m
}

// withSandbox points the spec's probe URLs at the test's sandbox.
func withSandbox(m *ferryv1.MigrationSpec, addr string) *ferryv1.MigrationSpec {
	for _, g := range m.GetDnsShift().GetGates() {
		if h := g.GetHttp(); h != nil {
			h.Url = strings.Replace(h.Url, "SANDBOX", addr, 1)
		}
	}
	return m
}

func code(err error) connect.Code {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return connect.CodeUnknown
}

func protocols(t *testing.T, f func(t *testing.T, grpc bool)) {
	t.Run("connect", func(t *testing.T) { f(t, false) })
	t.Run("grpc", func(t *testing.T) { f(t, true) })
}

func TestAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("boots the embedded stack")
	}
	st := testenv.StartStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("roles", func(t *testing.T) {
		protocols(t, func(t *testing.T, grpc bool) {
			get := func(token string) error {
				_, err := st.APIClient(token, grpc).GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: "dns/none/none/A"}))
				return err
			}
			start := func(token string) error {
				_, err := st.APIClient(token, grpc).StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{}))
				return err
			}
			approve := func(token string) error {
				_, err := st.APIClient(token, grpc).ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: "dns/none/none/A"}))
				return err
			}
			cases := []struct {
				name  string
				call  func(string) error
				token string
				want  connect.Code // the code when the role check passes is the call's own
			}{
				{"no token", get, "", connect.CodeUnauthenticated},
				{"unknown token", get, "tok-nobody-000000000", connect.CodeUnauthenticated},
				{"viewer gets", get, testenv.TokenVera, connect.CodeNotFound},
				{"viewer may not start", start, testenv.TokenVera, connect.CodePermissionDenied},
				{"operator starts", start, testenv.TokenAlice, connect.CodeInvalidArgument},
				{"approver may not start", start, testenv.TokenBob, connect.CodePermissionDenied},
				{"operator may not approve", approve, testenv.TokenAlice, connect.CodePermissionDenied},
				{"approver approves", approve, testenv.TokenBob, connect.CodeNotFound},
				{"viewer may not approve", approve, testenv.TokenVera, connect.CodePermissionDenied},
			}
			for _, c := range cases {
				if got := code(c.call(c.token)); got != c.want {
					t.Errorf("%s: code %v, want %v", c.name, got, c.want)
				}
			}
		})
	})

	t.Run("bad spec changes nothing", func(t *testing.T) {
		before := len(st.Sandbox.AWS().Calls(control.CallFilter{}))
		bad := withSandbox(shiftSpec(t, "", ""), st.Sandbox.Addr())
		bad.GetDnsShift().Schedule = []uint32{50, 25, 100}
		protocols(t, func(t *testing.T, grpc bool) {
			_, err := st.APIClient(testenv.TokenAlice, grpc).StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: bad}))
			if code(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "dnsShift.schedule") {
				t.Fatalf("start with a decreasing schedule: %v; want InvalidArgument naming dnsShift.schedule", err)
			}
		})
		unknown := withSandbox(shiftSpec(t, "", ""), st.Sandbox.Addr())
		unknown.GetDnsShift().HostedZone = "nowhere.example."
		_, err := st.APIClient(testenv.TokenAlice, false).PlanMigration(ctx, connect.NewRequest(&ferryv1.PlanMigrationRequest{Spec: unknown}))
		if code(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "nowhere.example") {
			t.Fatalf("plan with an unknown zone: %v; want InvalidArgument naming the zone", err)
		}
		mongoBefore := len(st.Mongo.Cluster("rs0").Events())
		since := time.Now()
		for _, c := range invalidSpecs {
			m, err := spec.Parse([]byte(c.yaml), ".yaml")
			if err == nil {
				// Through the API both ways a caller can hand it a spec: to start, and to plan.
				for what, call := range map[string]func() error{
					"start": func() error {
						_, err := st.APIClient(testenv.TokenAlice, false).StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
						return err
					},
					"plan": func() error {
						_, err := st.APIClient(testenv.TokenAlice, true).PlanMigration(ctx, connect.NewRequest(&ferryv1.PlanMigrationRequest{Spec: m}))
						return err
					},
				} {
					err = call()
					if code(err) != connect.CodeInvalidArgument {
						t.Errorf("%s: %s answered %v; want InvalidArgument", c.name, what, err)
					} else if !strings.Contains(err.Error(), c.field) {
						t.Errorf("%s: %s error %q does not name %s", c.name, what, err, c.field)
					}
				}
				continue
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("%s: error %q does not name %s", c.name, err, c.field)
			}
		}
		// Nothing reached the sandbox (AWS calls of any kind, MongoDB commands that change or
		// elect anything) and no workflow was started, not even a plan.
		if after := len(st.Sandbox.AWS().Calls(control.CallFilter{})); after != before {
			t.Fatalf("bad specs reached the sandbox with %d AWS calls", after-before)
		}
		if after := len(st.Mongo.Cluster("rs0").Events()); after != mongoBefore {
			t.Fatalf("bad specs reached the replica set: %d events", after-mongoBefore)
		}
		// Visibility lags a start a little, so a sentinel started last must show up first;
		// then it is the only workflow started since the bad specs were sent.
		if _, err := st.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "sentinel-after-bad-specs", TaskQueue: workflows.TaskQueue},
			workflows.Ping, workflows.PingInput{Message: "sentinel"}); err != nil {
			t.Fatal(err)
		}
		query := fmt.Sprintf("StartTime > '%s'", since.UTC().Format(time.RFC3339Nano))
		var started []string
		testenv.Eventually(t, 10*time.Second, "the sentinel in visibility", func() bool {
			res, err := st.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
			if err != nil {
				return false
			}
			started = started[:0]
			for _, e := range res.GetExecutions() {
				started = append(started, e.GetExecution().GetWorkflowId())
			}
			return slices.Contains(started, "sentinel-after-bad-specs")
		})
		if len(started) != 1 {
			t.Fatalf("bad specs started workflows: %v", started)
		}
	})

	t.Run("four-eyes, conflicts and approvals", func(t *testing.T) {
		m := withSandbox(shiftSpec(t, "approvals: {requiredApprovers: 2}", "  approveAt: [10]\n"), st.Sandbox.Addr())
		alice := st.APIClient(testenv.TokenAliceApprover, false)
		res, err := alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m, IdempotencyKey: "k1"}))
		if err != nil {
			t.Fatal(err)
		}
		id := res.Msg.GetMigration().GetId()
		if id != workflows.DNSShiftWorkflowID("shop.example.", "www.shop.example.", "A") {
			t.Fatalf("id = %q", id)
		}
		// A retry with the same idempotency key gets the same migration; another start of the
		// same record is refused with the holder's id.
		if _, err := alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m, IdempotencyKey: "k1"})); err != nil {
			t.Fatalf("idempotent retry: %v", err)
		}
		_, err = alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
		if code(err) != connect.CodeAlreadyExists || !strings.Contains(err.Error(), id) {
			t.Fatalf("second start: %v; want AlreadyExists naming %s", err, id)
		}

		awaiting := func() *ferryv1.Migration {
			var m *ferryv1.Migration
			testenv.Eventually(t, time.Minute, "the approval gate", func() bool {
				r, err := alice.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
				if err != nil {
					t.Fatal(err)
				}
				m = r.Msg.GetMigration()
				return len(m.GetPendingApprovals()) > 0
			})
			return m
		}
		awaiting()
		// The initiator may not approve, through the API ...
		_, err = alice.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id, Comment: "mine"}))
		if code(err) != connect.CodeFailedPrecondition {
			t.Fatalf("initiator approving: %v; want FailedPrecondition", err)
		}
		// ... nor around it, with a raw signal.
		if err := st.Client.SignalWorkflow(ctx, id, "", workflows.SignalApprove, workflows.ActionRequest{Identity: "alice"}); err != nil {
			t.Fatal(err)
		}
		bob := st.APIClient(testenv.TokenBob, true)
		if _, err := bob.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id, Comment: "dashboards green"})); err != nil {
			t.Fatalf("bob approving: %v", err)
		}
		_, err = bob.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id}))
		if code(err) != connect.CodeFailedPrecondition {
			t.Fatalf("bob approving twice: %v; want FailedPrecondition", err)
		}
		got := awaiting()
		if a := got.GetPendingApprovals()[0]; len(a.GetApprovedBy()) != 1 || a.GetApprovedBy()[0] != "bob" {
			t.Fatalf("approvals after alice's signal and bob = %v; want only bob", a.GetApprovedBy())
		}
		carol := st.APIClient(testenv.TokenCarol, false)
		if _, err := carol.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id})); err != nil {
			t.Fatalf("carol approving: %v", err)
		}
		final := watchToEnd(ctx, t, carol, id)
		if final.GetState() != ferryv1.MigrationState_MIGRATION_STATE_COMPLETED {
			t.Fatalf("final state %v: %s", final.GetState(), final.GetMessage())
		}
		var refused bool
		for _, e := range final.GetAudit() {
			// A raw signal carries no proof: refused, and the claimed identity is marked.
			if e.GetIdentity() == "alice (unverified)" && strings.Contains(e.GetAction(), "refused") {
				refused = true
			}
		}
		if !refused {
			t.Errorf("audit has no refused approval by alice: %v", final.GetAudit())
		}
		_, err = bob.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id}))
		if code(err) != connect.CodeFailedPrecondition {
			t.Fatalf("approving a finished migration: %v; want FailedPrecondition", err)
		}
		assertWeights(ctx, t, st, 0, 100)

		list, err := alice.ListMigrations(ctx, connect.NewRequest(&ferryv1.ListMigrationsRequest{Kind: ferryv1.MigrationKind_MIGRATION_KIND_DNS_SHIFT, Initiator: "alice"}))
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Msg.GetMigrations()) == 0 || list.Msg.GetMigrations()[0].GetId() != id {
			t.Fatalf("list by kind and initiator = %v", list.Msg.GetMigrations())
		}
	})

	t.Run("AMI share from the example", func(t *testing.T) {
		m, err := spec.ParseFile("../examples/ami-share.yaml")
		if err != nil {
			t.Fatal(err)
		}
		alice := st.APIClient(testenv.TokenAlice, true)
		plan, err := alice.PlanMigration(ctx, connect.NewRequest(&ferryv1.PlanMigrationRequest{Spec: m}))
		if err != nil {
			t.Fatal(err)
		}
		if plan.Msg.GetKind() != ferryv1.MigrationKind_MIGRATION_KIND_AMI_SHARE || len(plan.Msg.GetSteps()) == 0 {
			t.Fatalf("plan = %v", plan.Msg)
		}
		res, err := alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m, PlanHash: plan.Msg.GetPlanHash()}))
		if err != nil {
			t.Fatal(err)
		}
		id := res.Msg.GetMigration().GetId()
		testenv.Eventually(t, time.Minute, "approval before sharing", func() bool {
			r, err := alice.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
			return err == nil && len(r.Msg.GetMigration().GetPendingApprovals()) > 0
		})
		if _, err := st.APIClient(testenv.TokenBob, false).ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id})); err != nil {
			t.Fatal(err)
		}
		final := watchToEnd(ctx, t, alice, id)
		if final.GetState() != ferryv1.MigrationState_MIGRATION_STATE_COMPLETED {
			t.Fatalf("AMI share ended %v: %s", final.GetState(), final.GetMessage())
		}
		copies := final.GetAmiShare().GetCopies()
		if len(copies) != 2 {
			t.Fatalf("copies = %v, want shop-web and shop-worker in eu-west-2", copies)
		}
		out, err := ec2Client(st, "eu-west-2").DescribeImageAttribute(ctx, &ec2.DescribeImageAttributeInput{
			ImageId: aws.String(copies[0].GetImageId()), Attribute: ec2types.ImageAttributeNameLaunchPermission})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.LaunchPermissions) != 1 || aws.ToString(out.LaunchPermissions[0].UserId) != "111122223333" {
			t.Fatalf("launch permissions of %s = %v", copies[0].GetImageId(), out.LaunchPermissions)
		}
		// The migration shows what was asked for beside what happened (the CLI's SHARED WITH).
		got, err := alice.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got.Msg.GetMigration().GetSpec(), m) {
			t.Fatalf("GetMigration's spec = %v, want the spec started: %v", got.Msg.GetMigration().GetSpec(), m)
		}
	})

	t.Run("MongoDB primary move", func(t *testing.T) {
		rs := st.Mongo.Cluster("rs0")
		source, target := hostsByRegion(rs, "eu-west-1"), hostsByRegion(rs, "eu-west-2")
		y := fmt.Sprintf(`
approvals: {requiredApprovers: 1}
mongoPrimaryMove:
  uri: mongodb://%s/?replicaSet=rs0
  replicaSet: rs0
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  newMembers: [%s]
  takeoverTimeout: 2s
`, strings.Join(source, ","), strings.Join(target, ", "))
		m, err := spec.Parse([]byte(y), ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		alice := st.APIClient(testenv.TokenAliceApprover, false)
		res, err := alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
		if err != nil {
			t.Fatal(err)
		}
		id := res.Msg.GetMigration().GetId()
		testenv.Eventually(t, time.Minute, "approval before the primary moves", func() bool {
			r, err := alice.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
			return err == nil && len(r.Msg.GetMigration().GetPendingApprovals()) > 0
		})
		if _, err := alice.ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id})); code(err) != connect.CodeFailedPrecondition {
			t.Fatalf("initiator approving the primary move: %v; want FailedPrecondition", err)
		}
		if _, err := st.APIClient(testenv.TokenBob, true).ApproveStep(ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id})); err != nil {
			t.Fatal(err)
		}
		final := watchToEnd(ctx, t, alice, id)
		if final.GetState() != ferryv1.MigrationState_MIGRATION_STATE_COMPLETED {
			t.Fatalf("primary move ended %v: %s", final.GetState(), final.GetMessage())
		}
		if !slices.Contains(target, rs.Primary()) {
			t.Fatalf("primary is %s; want one of the eu-west-2 members %v", rs.Primary(), target)
		}
		if mm := final.GetMongoMove(); mm == nil || len(mm.GetMembers()) != 6 {
			t.Fatalf("mongo status in the API = %v", mm)
		}
	})

	t.Run("unhealthy target rolls back", func(t *testing.T) {
		// Back from the previous subtest's 0/100: shift eu-west-2 -> eu-west-1 would also do,
		// but the story is the cutover, so reset the weights as an operator would.
		resetWeights(ctx, t, st)
		m := withSandbox(shiftSpec(t, "", "  rollbackMode: gradual\n"), st.Sandbox.Addr())
		alice := st.APIClient(testenv.TokenAlice, false)
		res, err := alice.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
		if err != nil {
			t.Fatal(err)
		}
		id := res.Msg.GetMigration().GetId()
		testenv.Eventually(t, time.Minute, "the first step", func() bool {
			r, err := alice.GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
			return err == nil && r.Msg.GetMigration().GetDnsShift().GetToWeight() > 0
		})
		if _, err := st.Sandbox.Faults().Add(control.Fault{Target: "app:eu-west-2", Kind: control.KindUnhealthy, Rate: 1}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = st.Sandbox.Faults().Clear() }()
		final := watchToEnd(ctx, t, alice, id)
		if final.GetState() != ferryv1.MigrationState_MIGRATION_STATE_ROLLED_BACK {
			t.Fatalf("final state %v, want rolled back: %s", final.GetState(), final.GetMessage())
		}
		assertWeights(ctx, t, st, 100, 0)
	})
}

// invalidSpecs are rejected either by the local parse (the CLI's first check) or by the
// API; each error must name the field.
var invalidSpecs = []struct{ name, yaml, field string }{
	{"no kind", `name: x`, "spec"},
	{"unknown field", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, weigth: 3}`, "weigth"},
	{"same from and to", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-1}`, "dnsShift.to"},
	{"empty zone", `dnsShift: {recordName: b.a., from: eu-west-1, to: eu-west-2}`, "dnsShift.hostedZone"},
	{"decreasing schedule", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, schedule: [50, 10, 100]}`, "dnsShift.schedule"},
	{"schedule not ending at 100", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, schedule: [10, 50]}`, "dnsShift.schedule"},
	{"percent over 100", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, schedule: [10, 150]}`, "dnsShift.schedule"},
	{"total weight over 255", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, totalWeight: 300}`, "dnsShift.totalWeight"},
	{"schedule and linear step", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, schedule: [100], linearStep: 10}`, "dnsShift"},
	{"bad duration", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, bakeTime: soon}`, "bakeTime"},
	{"gate without check", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, gates: [{name: g}]}`, "dnsShift.gates[0]"},
	{"bad probe url", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, gates: [{http: {url: "not a url"}}]}`, "dnsShift.gates[0]"},
	{"prometheus gate without condition", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, gates: [{prometheus: {address: "http://127.0.0.1:9090", query: up}}]}`, "dnsShift.gates[0].prometheus.condition"},
	{"approval at unknown step", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, schedule: [50, 100], approveAt: [25]}`, "dnsShift.approveAt"},
	{"bad rollback mode", `dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, rollbackMode: sideways}`, "rollbackMode"},

	{"ami: no source region", `amiShare: {imageIds: [ami-0a1b2c3d4e5f60001], targetRegions: [eu-west-2]}`, "amiShare.sourceRegion"},
	{"ami: nothing selected", `amiShare: {sourceRegion: eu-west-1, targetRegions: [eu-west-2]}`, "amiShare.imageIds"},
	{"ami: copy into the source", `amiShare: {sourceRegion: eu-west-1, imageTags: {app: shop}, targetRegions: [eu-west-1]}`, "amiShare.targetRegions"},
	{"ami: region twice", `amiShare: {sourceRegion: eu-west-1, imageTags: {app: shop}, targetRegions: [eu-west-2, eu-west-2]}`, "amiShare.targetRegions"},
	{"ami: not a region", `amiShare: {sourceRegion: eu-west-1, imageTags: {app: shop}, targetRegions: [mars]}`, "amiShare.targetRegions"},
	{"ami: key for a region not copied to", `amiShare: {sourceRegion: eu-west-1, imageTags: {app: shop}, targetRegions: [eu-west-2], kmsKeyIds: {us-east-1: alias/shop}}`, "amiShare.kmsKeyIds"},
	{"ami: too many parallel copies", `amiShare: {sourceRegion: eu-west-1, imageTags: {app: shop}, targetRegions: [eu-west-2], maxParallelCopies: 500}`, "amiShare.maxParallelCopies"},
	{"ami: reserved tag prefix", `amiShare: {sourceRegion: eu-west-1, imageTags: {"aws:x": y}, targetRegions: [eu-west-2]}`, "amiShare.imageTags"},
	{"ami: approval with nothing to share", `amiShare: {sourceRegion: eu-west-1, imageTags: {app: shop}, targetRegions: [eu-west-2], approveBeforeSharing: true}`, "amiShare.approveBeforeSharing"},

	{"mongo: no uri", `mongoPrimaryMove: {sourceRegion: eu-west-1, targetRegion: eu-west-2, newMembers: ["127.0.0.1:27020"]}`, "mongoPrimaryMove.uri"},
	{"mongo: password in the uri", `mongoPrimaryMove: {uri: "mongodb://u:p@127.0.0.1:27017/?replicaSet=rs0", sourceRegion: eu-west-1, targetRegion: eu-west-2, newMembers: ["127.0.0.1:27020"]}`, "mongoPrimaryMove.uri"},
	{"mongo: same regions", `mongoPrimaryMove: {uri: "mongodb://127.0.0.1:27017/?replicaSet=rs0", sourceRegion: eu-west-1, targetRegion: eu-west-1, newMembers: ["127.0.0.1:27020"]}`, "mongoPrimaryMove.targetRegion"},
	{"mongo: no new members", `mongoPrimaryMove: {uri: "mongodb://127.0.0.1:27017/?replicaSet=rs0", sourceRegion: eu-west-1, targetRegion: eu-west-2}`, "mongoPrimaryMove.newMembers"},
	{"mongo: member not host:port", `mongoPrimaryMove: {uri: "mongodb://127.0.0.1:27017/?replicaSet=rs0", sourceRegion: eu-west-1, targetRegion: eu-west-2, newMembers: [somewhere]}`, "mongoPrimaryMove.newMembers[0]"},
	{"mongo: member twice", `mongoPrimaryMove: {uri: "mongodb://127.0.0.1:27017/?replicaSet=rs0", sourceRegion: eu-west-1, targetRegion: eu-west-2, newMembers: ["127.0.0.1:27020", "127.0.0.1:27020"]}`, "mongoPrimaryMove.newMembers[1]"},
	{"mongo: set names disagree", `mongoPrimaryMove: {uri: "mongodb://127.0.0.1:27017/?replicaSet=rs0", replicaSet: rs1, sourceRegion: eu-west-1, targetRegion: eu-west-2, newMembers: ["127.0.0.1:27020"]}`, "mongoPrimaryMove.replicaSet"},
	{"mongo: target priority not on top", `mongoPrimaryMove: {uri: "mongodb://127.0.0.1:27017/?replicaSet=rs0", sourceRegion: eu-west-1, targetRegion: eu-west-2, newMembers: ["127.0.0.1:27020"], priorities: {targetFirst: 1, sourceFirst: 2}}`, "mongoPrimaryMove.priorities.targetFirst"},
	{"mongo: remove without demote", `mongoPrimaryMove: {uri: "mongodb://127.0.0.1:27017/?replicaSet=rs0", sourceRegion: eu-west-1, targetRegion: eu-west-2, newMembers: ["127.0.0.1:27020"], removeSource: true}`, "mongoPrimaryMove.removeSource"},

	{"region move: no name", `regionMove: {sourceRegion: eu-west-1, targetRegion: eu-west-2, dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2}}`, "name"},
	{"region move: no phase", `{name: shop, regionMove: {sourceRegion: eu-west-1, targetRegion: eu-west-2}}`, "regionMove"},
	{"region move: copies from elsewhere", `{name: shop, regionMove: {sourceRegion: eu-west-1, targetRegion: eu-west-2, amiShare: {sourceRegion: us-east-1, imageTags: {app: shop}, targetRegions: [eu-west-2]}}}`, "regionMove.amiShare.sourceRegion"},
	{"region move: traffic swapped", `{name: shop, regionMove: {sourceRegion: eu-west-1, targetRegion: eu-west-2, dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-2, to: eu-west-1}}}`, "regionMove.dnsShift.from"},
	{"region move: invalid phase", `{name: shop, regionMove: {sourceRegion: eu-west-1, targetRegion: eu-west-2, dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2, schedule: [50, 10, 100]}}}`, "regionMove.dnsShift.schedule"},
	{"region move: unknown time zone", `{name: shop, regionMove: {sourceRegion: eu-west-1, targetRegion: eu-west-2, maintenanceWindow: {start: "22:00", end: "04:00", timeZone: Mars/Olympus}, dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2}}}`, "regionMove.maintenanceWindow.timeZone"},
	{"region move: empty window", `{name: shop, regionMove: {sourceRegion: eu-west-1, targetRegion: eu-west-2, maintenanceWindow: {start: "22:00", end: "22:00", timeZone: UTC}, dnsShift: {hostedZone: a., recordName: b.a., from: eu-west-1, to: eu-west-2}}}`, "regionMove.maintenanceWindow.end"},
}

func watchToEnd(ctx context.Context, t *testing.T, c ferryv1connect.MigrationServiceClient, id string) *ferryv1.Migration {
	t.Helper()
	stream, err := c.WatchMigration(ctx, connect.NewRequest(&ferryv1.WatchMigrationRequest{Id: id}))
	if err != nil {
		t.Fatal(err)
	}
	var last *ferryv1.Migration
	for stream.Receive() {
		last = stream.Msg().GetMigration()
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("watch %s: %v", id, err)
	}
	if last.GetCloseTime() == nil {
		t.Fatalf("watch ended before %s did", id)
	}
	return last
}

// hostsByRegion lists the replica set members tagged with region.
func hostsByRegion(rs *mongosim.Cluster, region string) []string {
	var hosts []string
	for _, m := range rs.Members() {
		if m.Region == region {
			hosts = append(hosts, m.Host)
		}
	}
	return hosts
}

func ec2Client(st *testenv.Stack, region string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:       region,
		BaseEndpoint: aws.String(st.Sandbox.Addr()),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

func route53Client(st *testenv.Stack) *route53.Client {
	return route53.New(route53.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(st.Sandbox.Addr()),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

// assertWeights reads the record sets through the AWS SDK, as any Route 53 client would.
func assertWeights(ctx context.Context, t *testing.T, st *testenv.Stack, from, to int64) {
	t.Helper()
	got := weights(ctx, t, st)
	if got["eu-west-1"] != from || got["eu-west-2"] != to {
		t.Fatalf("weights = %v, want eu-west-1=%d eu-west-2=%d", got, from, to)
	}
}

func weights(ctx context.Context, t *testing.T, st *testenv.Stack) map[string]int64 {
	t.Helper()
	r53 := route53Client(st)
	zone, _ := st.Sandbox.AWS().ZoneID("shop.example.")
	out, err := r53.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zone)})
	if err != nil {
		t.Fatal(err)
	}
	w := map[string]int64{}
	for _, rs := range out.ResourceRecordSets {
		if aws.ToString(rs.Name) == "www.shop.example." && rs.SetIdentifier != nil {
			w[aws.ToString(rs.SetIdentifier)] = aws.ToInt64(rs.Weight)
		}
	}
	return w
}

// resetWeights puts traffic back on eu-west-1 with a shift in the other direction.
func resetWeights(ctx context.Context, t *testing.T, st *testenv.Stack) {
	t.Helper()
	m := withSandbox(shiftSpec(t, "", ""), st.Sandbox.Addr())
	d := m.GetDnsShift()
	d.From, d.To, d.Schedule, d.Gates = "eu-west-2", "eu-west-1", []uint32{100}, nil
	res, err := st.APIClient(testenv.TokenAlice, false).StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m}))
	if err != nil {
		t.Fatal(err)
	}
	if final := watchToEnd(ctx, t, st.APIClient(testenv.TokenAlice, false), res.Msg.GetMigration().GetId()); final.GetState() != ferryv1.MigrationState_MIGRATION_STATE_COMPLETED {
		t.Fatalf("reset shift ended %v: %s", final.GetState(), final.GetMessage())
	}
	assertWeights(ctx, t, st, 100, 0)
}
