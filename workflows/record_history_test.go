package workflows_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/ferryhq/ferry/activities"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/awssim"
	"github.com/ferryhq/ferry/sandbox/topology"
	"github.com/ferryhq/ferry/workflows"
)

// TestRecordDNSShiftHistories runs real DNS shifts on an embedded Temporal against the
// sandbox's Route 53 and writes their histories to testdata/, where TestReplayHistories
// replays them on every test run. Rerun it (FERRY_RECORD_HISTORY=1) only when a change is
// meant to alter histories, and only together with workflow.GetVersion for the old path.
func TestRecordDNSShiftHistories(t *testing.T) {
	if os.Getenv("FERRY_RECORD_HISTORY") == "" {
		t.Skip("set FERRY_RECORD_HISTORY=1 to record workflows/testdata histories")
	}
	_, c := testenv.Temporal(t)

	topo := topology.Default()
	topo.HostedZones[0].Records[0].TTL = 1 // dwells of seconds, not minutes
	sim := awssim.New(awssim.Options{Regions: topo.Regions, Route53InsyncDelay: 300 * time.Millisecond})
	require.NoError(t, sim.Seed(topo))
	aws53 := httptest.NewServer(sim)
	defer aws53.Close()

	var healthy atomic.Bool
	healthy.Store(true)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()

	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithRegion("us-east-1"))
	require.NoError(t, err)
	r53 := route53.NewFromConfig(cfg, func(o *route53.Options) { o.BaseEndpoint = aws.String(aws53.URL) })

	const queue = "ferry-record"
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflow(workflows.DNSShift)
	w.RegisterWorkflow(workflows.PlanDNSShift)
	workflows.RegisterLock(w)
	w.RegisterActivity(&activities.Route53{Client: r53})
	w.RegisterActivity(&activities.Gates{HTTP: app.Client()})
	require.NoError(t, w.Start())
	defer w.Stop()

	spec := workflows.DNSShiftSpec{
		Zone: "shop.example.", RecordName: "www.shop.example.", RecordType: "A", From: "eu-west-1", To: "eu-west-2",
		Percents: []int{10, 50, 100}, ApproveAfter: []bool{false, true, false}, TotalWeight: 100,
		BakeTime: 2 * time.Second, GateInterval: time.Second,
		Gates:        []workflows.Gate{{Name: "eu-west-2 health", FailureThreshold: 1, HTTP: &workflows.HTTPProbe{URL: app.URL + "/healthz", ExpectStatus: 200, Timeout: time.Second}}},
		RollbackMode: workflows.RollbackGradual, OnGateFailure: workflows.OnGateFailRollback,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The plan, then a shift pinned to its hash, approved by a second person at 50%.
	pr, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "record-plan", TaskQueue: queue}, workflows.PlanDNSShift, workflows.PlanDNSShiftInput{Spec: spec})
	require.NoError(t, err)
	var plan workflows.Plan
	require.NoError(t, pr.Get(ctx, &plan))
	record(ctx, t, c, "record-plan", "plan-dns-shift.json")

	in := workflows.DNSShiftInput{Spec: spec, Common: workflows.Common{Name: "www to eu-west-2", Initiator: "alice", Approvals: workflows.ApprovalPolicy{RequiredApprovers: 1}, PlanHash: plan.Hash}}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "record-complete", TaskQueue: queue}, workflows.DNSShift, in)
	require.NoError(t, err)
	awaitState(ctx, t, c, "record-complete", workflows.StateAwaitingApproval)
	require.NoError(t, c.SignalWorkflow(ctx, "record-complete", "", workflows.SignalApprove, workflows.ActionRequest{Identity: "alice"})) // refused: four-eyes
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: "record-complete", UpdateName: workflows.UpdateApprove,
		Args: []any{workflows.ActionRequest{Identity: "bob", Reason: "dashboards green"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))
	var res workflows.DNSShiftResult
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, workflows.StateCompleted, res.State)
	record(ctx, t, c, "record-complete", "dns-shift-completed.json")

	// Back from 100% to the start: the gate fails at 50% and the rollback is gradual.
	spec.From, spec.To = "eu-west-2", "eu-west-1"
	spec.ApproveAfter = []bool{false, false, false}
	in = workflows.DNSShiftInput{Spec: spec, Common: workflows.Common{Name: "www back to eu-west-1", Initiator: "alice", Approvals: workflows.ApprovalPolicy{RequiredApprovers: 1}}}
	run, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "record-rollback", TaskQueue: queue}, workflows.DNSShift, in)
	require.NoError(t, err)
	awaitStep(ctx, t, c, "record-rollback", 1)
	healthy.Store(false)
	awaitState(ctx, t, c, "record-rollback", workflows.StateRollingBack)
	healthy.Store(true) // healthy again on the way down, so the rollback stays gradual
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, workflows.StateRolledBack, res.State)
	record(ctx, t, c, "record-rollback", "dns-shift-gradual-rollback.json")
}

func awaitState(ctx context.Context, t *testing.T, c client.Client, id, state string) {
	t.Helper()
	testenv.Eventually(t, time.Minute, id+" "+state, func() bool {
		return progress(ctx, t, c, id).State == state
	})
}

func awaitStep(ctx context.Context, t *testing.T, c client.Client, id string, step int) {
	t.Helper()
	testenv.Eventually(t, time.Minute, id+" at its step", func() bool {
		p := progress(ctx, t, c, id)
		return p.DNS != nil && p.DNS.StepIndex == step
	})
}

func progress(ctx context.Context, t *testing.T, c client.Client, id string) workflows.Progress {
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryProgress)
	if err != nil {
		return workflows.Progress{}
	}
	var p workflows.Progress
	require.NoError(t, v.Get(&p))
	return p
}

// record writes a workflow's history in the JSON form `temporal workflow show --output
// json` produces, which the replayer reads.
func record(ctx context.Context, t *testing.T, c client.Client, id, file string) {
	t.Helper()
	var hist historypb.History
	it := c.GetWorkflowHistory(ctx, id, "", false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&hist)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll("testdata", 0o755))
	require.NoError(t, os.WriteFile(filepath.Join("testdata", file), b, 0o644))
}
