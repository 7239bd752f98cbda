package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/ferryhq/ferry/internal/pgtemporal"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/topology"
	"github.com/ferryhq/ferry/workflows"
)

// TestPostgresCluster runs ferry as production does: a Temporal server on PostgreSQL (the
// pinned version's own binaries, a fresh pair of databases), `ferry setup` twice, one
// `ferry server` and two `ferry worker` processes. A DNS shift and a region move run to
// completion through the CLI while one worker is SIGKILLed mid-move. Judged from outside:
// the sandbox's Route 53 and replica set, and the search attributes the Temporal UI shows.
func TestPostgresCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a Temporal cluster on PostgreSQL")
	}
	testenv.RequireBinary(t, pgtemporal.Reachable(""))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	began := time.Now()
	cl, err := pgtemporal.Start(ctx, pgtemporal.Options{Dir: filepath.Join(dir, "temporal")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Stop)
	t.Logf("temporal on postgresql (%s, %s) up in %s", cl.Databases[0], pgtemporal.ServerVersion(), time.Since(began).Round(time.Millisecond))
	hp := cl.HostPort

	// Setup: the first run creates the namespace and registers every attribute, the second
	// changes nothing.
	out, code := runFerry(t, dir, nil, "setup", "--temporal-address", hp)
	if code != 0 || !strings.Contains(out, "namespace default: created") || !strings.Contains(out, "FerryTargetRegions (KeywordList): registered") {
		t.Fatalf("first setup: exit %d\n%s", code, out)
	}
	out, code = runFerry(t, dir, nil, "setup", "--temporal-address", hp)
	if code != 0 || !strings.Contains(out, "nothing to change") || strings.Contains(out, ": registered") {
		t.Fatalf("second setup must change nothing: exit %d\n%s", code, out)
	}
	c, err := client.Dial(client.Options{HostPort: hp, Logger: testenv.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sa, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range workflows.SearchAttributeKeys {
		if got := sa.GetCustomAttributes()[k.GetName()]; got != k.GetValueType() {
			t.Fatalf("the cluster has %s as %s, want %s", k.GetName(), got, k.GetValueType())
		}
	}

	// The rest of production: the sandbox as the cloud, an API and two workers.
	sb, mongo := testenv.StartSandbox(t, func(topo *topology.Topology) {
		testenv.AddShiftRecords(topo, 1, func(int) string { return "api.shop.example." })
	})
	if out, code := runFerry(t, dir, nil, "keys", "generate", "--out", filepath.Join(dir, "signing.key")); code != 0 {
		t.Fatalf("keys generate: %s", out)
	}
	pub, code := runFerry(t, dir, nil, "keys", "public", "--key", filepath.Join(dir, "signing.key"))
	if code != 0 {
		t.Fatal("keys public failed")
	}
	tokens := `{"tokens": [{"token": "tok-alice-operator-0001", "identity": "alice", "roles": ["operator"]},
	  {"token": "tok-bob-approver-0002", "identity": "bob", "roles": ["approver"]}]}`
	if err := os.WriteFile(filepath.Join(dir, "tokens.json"), []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	// Only the primary move's own approval gate (the spec's default): one signal through
	// the cluster from a second person; the policy's others are tested elsewhere.
	if err := os.WriteFile(filepath.Join(dir, "policy.json"), []byte(`{"dnsApproveBy": 0, "primaryApproval": false, "shareApproval": false}`), 0o600); err != nil {
		t.Fatal(err)
	}
	api := testenv.Addr(testenv.FreePort(t))
	startFerry(t, dir, "server", "--temporal-address", hp, "--listen", api, "--token-file", "tokens.json",
		"--signing-key", "signing.key", "--approval-policy", "policy.json", "--log-level", "warn")
	probes := [2]string{testenv.Addr(testenv.FreePort(t)), testenv.Addr(testenv.FreePort(t))}
	var workers [2]*process
	for i := range workers {
		workers[i] = startFerry(t, dir, "worker", "--temporal-address", hp, "--aws-endpoint", sb.Addr(),
			"--trust-keys", strings.TrimSpace(pub), "--http-listen", probes[i], "--log-level", "info")
	}
	for _, p := range probes {
		waitHTTP(t, "http://"+p+"/readyz", 30*time.Second)
	}
	waitHTTP(t, "http://"+api+"/readyz", 30*time.Second)
	env := []string{"FERRY_API=http://" + api, "FERRY_TOKEN=tok-alice-operator-0001"}

	hosts := func(region string) []string {
		var out []string
		for _, m := range mongo.Cluster("rs0").Members() {
			if m.Region == region {
				out = append(out, m.Host)
			}
		}
		return out
	}
	shift := writeSpec(t, dir, "shift.yaml", fmt.Sprintf(`
name: api traffic
dnsShift:
  hostedZone: shop.example.
  recordName: api.shop.example.
  from: eu-west-1
  to: eu-west-2
  schedule: [50, 100]
  bakeTime: 1s
  gateInterval: 1s
  gates:
    - name: eu-west-2 health
      http: {url: %s/_apps/eu-west-2/healthz, timeout: 2s}
`, sb.Addr()))
	move := writeSpec(t, dir, "move.yaml", fmt.Sprintf(`
name: shop
reason: postgres cluster test
regionMove:
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  amiShare: {sourceRegion: eu-west-1, imageTags: {app: shop}, targetRegions: [eu-west-2, us-east-1]}
  mongoPrimaryMove:
    uri: mongodb://%s/?replicaSet=rs0
    sourceRegion: eu-west-1
    targetRegion: eu-west-2
    newMembers: [%s]
    maxLag: 1s
    catchUpPeriod: 1s
    takeoverTimeout: 5s
  dnsShift:
    hostedZone: shop.example.
    recordName: www.shop.example.
    from: eu-west-1
    to: eu-west-2
    schedule: [50, 100]
    bakeTime: 1s
    gateInterval: 1s
    gates:
      - name: eu-west-2 health
        http: {url: %s/_apps/eu-west-2/healthz, timeout: 2s}
`, strings.Join(hosts("eu-west-1"), ","), strings.Join(hosts("eu-west-2"), ", "), sb.Addr()))

	ids := map[string]string{}
	for name, file := range map[string]string{"shift": shift, "move": move} {
		out, code := runFerry(t, dir, env, "start", "-f", file, "-o", "json")
		var m struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(out), &m); code != 0 || err != nil || m.ID == "" {
			t.Fatalf("start %s: exit %d, %v\n%s", name, code, err, out)
		}
		ids[name] = m.ID
	}

	// SIGKILL the first worker once the move is past its first phase, so whatever it held
	// (workflow tasks, activities, sticky caches) is taken over by the other.
	// FerryPhase reads "phase N/3: <kind>" while a phase runs.
	t.Cleanup(func() {
		if t.Failed() {
			for name, id := range ids {
				out, _ := runFerry(t, dir, env, "get", id)
				t.Logf("ferry get %s (%s):\n%s", id, name, out)
			}
			for i, w := range workers {
				t.Logf("worker %d output:\n%s", i+1, tail(w.out.String(), 40))
			}
			t.Logf("temporal server:\n%s", cl.LogTail(30))
		}
	})
	testenv.Eventually(t, 2*time.Minute, "the move past its first phase", func() bool {
		ph := phaseOf(ctx, t, c, ids["move"])
		return strings.HasPrefix(ph, "phase ") && !strings.HasPrefix(ph, "phase 1/")
	})
	_ = workers[0].cmd.Process.Signal(syscall.SIGKILL)
	t.Logf("worker 1 killed in phase %q", phaseOf(ctx, t, c, ids["move"]))

	// The primary move waits for a second person: bob approves through the API.
	testenv.Eventually(t, 2*time.Minute, "the primary move's approval gate", func() bool {
		got, _ := runFerry(t, dir, env, "get", ids["move"], "-o", "json")
		return strings.Contains(got, "AWAITING_APPROVAL")
	})
	bob := []string{"FERRY_API=http://" + api, "FERRY_TOKEN=tok-bob-approver-0002"}
	if out, code := runFerry(t, dir, bob, "approve", ids["move"], "--comment", "postgres cluster test"); code != 0 {
		t.Fatalf("approve: exit %d\n%s", code, out)
	}

	for name, id := range ids {
		testenv.Eventually(t, 4*time.Minute, name+" to complete", func() bool {
			d, err := c.DescribeWorkflowExecution(ctx, id, "")
			if err != nil {
				t.Fatal(err)
			}
			st := d.GetWorkflowExecutionInfo().GetStatus()
			if st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && st != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				t.Fatalf("%s ended %s", name, st)
			}
			return st == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
		})
	}

	// The sandbox's own records: both records at 100 on eu-west-2, the primary in eu-west-2.
	r53 := route53.New(route53.Options{Region: "us-east-1", BaseEndpoint: aws.String(sb.Addr()),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	for _, rec := range []string{"api.shop.example.", "www.shop.example."} {
		if w := sandboxWeights(ctx, t, r53, rec); w["eu-west-1"] != 0 || w["eu-west-2"] != 100 {
			t.Errorf("%s weights %v, want all on eu-west-2", rec, w)
		}
	}
	primary := mongo.Cluster("rs0").Primary()
	if !slices.Contains(hosts("eu-west-2"), primary) {
		t.Errorf("primary after the move: %q, want one of %v", primary, hosts("eu-west-2"))
	}

	// What the Temporal UI filters on, as the server stored it.
	for name, id := range ids {
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		fields := d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()
		var state string
		var targets []string
		_ = converter.GetDefaultDataConverter().FromPayload(fields["FerryState"], &state)
		_ = converter.GetDefaultDataConverter().FromPayload(fields["FerryTargetRegions"], &targets)
		if state != workflows.StateCompleted || !slices.Contains(targets, "eu-west-2") {
			t.Errorf("%s: FerryState %q, FerryTargetRegions %v", name, state, targets)
		}
	}
	// Each of the AMI phase's target regions finds it (one element of FerryTargetRegions).
	ami := "ami/eu-west-1/tags:app=shop"
	want := map[string][]string{"eu-west-2": {ids["shift"], ids["move"], ami}, "us-east-1": {ami}}
	for region, wantIDs := range want {
		out, _ = runFerry(t, dir, env, "list", "--region", region)
		for _, id := range wantIDs {
			if !strings.Contains(out, id) {
				t.Errorf("list --region %s lacks %s:\n%s", region, id, out)
			}
		}
	}

	// Probes with Temporal gone: the processes still serve (liveness passes, so nothing
	// restarts them) but are not ready (readiness fails, so no traffic is routed to them).
	cl.Kill()
	hc := &http.Client{Timeout: 10 * time.Second}
	for _, base := range []string{"http://" + api, "http://" + probes[1]} {
		testenv.Eventually(t, 30*time.Second, base+"/readyz to fail without Temporal", func() bool {
			resp, err := hc.Get(base + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusServiceUnavailable
		})
		resp, err := hc.Get(base + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("%s/healthz without Temporal: %v %v, want 200", base, err, resp)
		} else {
			resp.Body.Close()
		}
	}
	t.Logf("whole run on postgresql: %s", time.Since(began).Round(time.Second))
}

func writeSpec(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// phaseOf reads FerryPhase from Temporal's record ("" when unset or unreadable).
func phaseOf(ctx context.Context, t *testing.T, c client.Client, id string) string {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return ""
	}
	var phase string
	_ = converter.GetDefaultDataConverter().FromPayload(d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()["FerryPhase"], &phase)
	return phase
}

// sandboxWeights reads a weighted record's weights by set identifier from the sandbox's
// Route 53.
func sandboxWeights(ctx context.Context, t *testing.T, r53 *route53.Client, name string) map[string]int64 {
	t.Helper()
	zones, err := r53.ListHostedZonesByName(ctx, &route53.ListHostedZonesByNameInput{DNSName: aws.String("shop.example.")})
	if err != nil || len(zones.HostedZones) == 0 {
		t.Fatalf("zone: %v", err)
	}
	sets, err := r53.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: zones.HostedZones[0].Id, StartRecordName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	w := map[string]int64{}
	for _, s := range sets.ResourceRecordSets {
		if aws.ToString(s.Name) == name && s.SetIdentifier != nil {
			w[aws.ToString(s.SetIdentifier)] = aws.ToInt64(s.Weight)
		}
	}
	return w
}

// tail keeps the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
