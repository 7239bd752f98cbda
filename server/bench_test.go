package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/apiclient"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/server"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// BenchmarkStartMigration compares StartMigration through the API (HTTP/2, auth,
// validation, start) with a bare SDK ExecuteWorkflow carrying the same options and input,
// interleaved on one embedded Temporal so both see the same load. No worker runs: only the
// start is measured. Target: API p50 at most 1.25x the bare p50.
func BenchmarkStartMigration(b *testing.B) {
	const n = 200
	srv, c := testenv.Temporal(b)
	tokens := server.NewTokens(server.TokenEntry{Token: testenv.TokenAlice, Principal: server.Principal{Identity: "alice", Roles: []string{server.RoleOperator}}})
	// Plaintext HTTP/2 (h2c), as `ferry server` serves and the CLI calls it.
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	api := httptest.NewUnstartedServer(server.Handler(c, server.Options{Namespace: srv.Namespace(), Tokens: tokens, LockWait: -1 /* no worker runs: measure the start alone */}))
	api.Config.Protocols = &h2c
	api.Start()
	defer api.Close()
	ferry := apiclient.New(&http.Client{Transport: &http.Transport{Protocols: &h2c}}, api.URL, testenv.TokenAlice, false)
	ctx := context.Background()

	specFor := func(i int) *ferryv1.MigrationSpec {
		m, err := spec.Parse([]byte(fmt.Sprintf(`
dnsShift: {hostedZone: z%d.example., recordName: www.z%d.example., from: eu-west-1, to: eu-west-2}`, i, i)), ".yaml")
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	// Warm both paths (connections, caches) before measuring.
	for i := range 10 {
		if _, err := ferry.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: specFor(-1 - i)})); err != nil {
			b.Fatal(err)
		}
	}
	var viaAPI, bare []time.Duration
	for b.Loop() {
		viaAPI, bare = viaAPI[:0], bare[:0]
		for i := range n {
			m := specFor(i + b.N*n)
			in, err := spec.DNSShiftInput(m, "alice")
			if err != nil {
				b.Fatal(err)
			}
			viaAPIStart := func() {
				t0 := time.Now()
				if _, err := ferry.StartMigration(ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: m})); err != nil {
					b.Fatal(err)
				}
				viaAPI = append(viaAPI, time.Since(t0))
			}
			bareStart := func() {
				t0 := time.Now()
				_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
					ID:                                       fmt.Sprintf("bare/%d/%d", b.N, i),
					TaskQueue:                                workflows.TaskQueue,
					WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
					WorkflowExecutionErrorWhenAlreadyStarted: true,
					TypedSearchAttributes: temporal.NewSearchAttributes(
						workflows.SAKind.ValueSet(workflows.KindDNSShift), workflows.SAState.ValueSet(workflows.StateRunning),
						workflows.SAPhase.ValueSet("starting"), workflows.SAInitiator.ValueSet("alice"),
						workflows.SASourceRegion.ValueSet("eu-west-1"), workflows.SATargetRegions.ValueSet([]string{"eu-west-2"}),
						workflows.SAAwaitingApproval.ValueSet(false)),
					StaticSummary: "bare start",
				}, workflows.DNSShift, in)
				if err != nil {
					b.Fatal(err)
				}
				bare = append(bare, time.Since(t0))
			}
			// Alternate which goes first: the first start of a pair meets whatever the
			// server still does for the previous pair, and that must not always be the API's.
			if i%2 == 0 {
				viaAPIStart()
				bareStart()
			} else {
				bareStart()
				viaAPIStart()
			}
		}
	}
	apiP50, apiP99 := percentiles(viaAPI)
	bareP50, bareP99 := percentiles(bare)
	b.ReportMetric(float64(apiP50.Microseconds())/1000, "api-p50-ms")
	b.ReportMetric(float64(bareP50.Microseconds())/1000, "bare-p50-ms")
	b.ReportMetric(float64(apiP50)/float64(bareP50), "p50-ratio")
	ratio := float64(apiP50) / float64(bareP50)
	testenv.BenchRow(b, fmt.Sprintf("StartMigration p50 via the API vs bare SDK ExecuteWorkflow (%d paired starts)", n),
		fmt.Sprintf("%s vs %s = %.2f", apiP50.Round(10*time.Microsecond), bareP50.Round(10*time.Microsecond), ratio), "<= 1.25", ratio <= 1.25)
	testenv.BenchInfo(b, "StartMigration p99 via the API vs bare", fmt.Sprintf("%s vs %s", apiP99.Round(10*time.Microsecond), bareP99.Round(10*time.Microsecond)))
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*99/100]
}
