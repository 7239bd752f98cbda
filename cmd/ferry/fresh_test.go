package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"

	"github.com/ferryhq/ferry/internal/testenv"
)

// TestDefaultExampleOnFreshMachine is the README's first command on a machine with only
// Go: `ferry dev` with nothing on the PATH (no prometheus, no mariadbd, no rabbitmq-server) says how to add
// Prometheus and runs examples/dns-shift.yaml (its error-rate gate reads the sandbox's
// CloudWatch) to completion, judged from the sandbox's Route 53.
func TestDefaultExampleOnFreshMachine(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ferry dev")
	}
	dir := t.TempDir()
	d := newDevArgs(t, dir)
	// A 5s TTL and bake time keep the three steps short; the gates are the example's.
	topoFile := d.args[4]
	topo, err := os.ReadFile(topoFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(topoFile, bytes.ReplaceAll(topo, []byte("ttl: 60"), []byte("ttl: 5")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ferryBin, d.args...)
	cmd.Dir = dir
	// An empty PATH, as on a fresh machine; a config directory of its own, not the user's.
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("ferry dev output:\n%s", out.String())
		}
	})
	waitHTTP(t, "http://"+testenv.Addr(d.apiPort)+"/healthz", 60*time.Second)
	// The table is written in pieces: read it once its last line is there.
	testenv.Eventually(t, 10*time.Second, "ferry dev's table", func() bool { return strings.Contains(out.String(), "Ctrl-C stops everything") })
	if !strings.Contains(out.String(), "apt-get install prometheus") {
		t.Fatalf("ferry dev must say how to enable Prometheus when it is missing:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "apt-get install rabbitmq-server") {
		t.Fatalf("ferry dev must say how to enable the broker move's RabbitMQ nodes when they are missing:\n%s", out.String())
	}

	example, err := os.ReadFile("../../examples/dns-shift.yaml")
	if err != nil {
		t.Fatal(err)
	}
	example = bytes.ReplaceAll(example, []byte("127.0.0.1:4566"), []byte(testenv.Addr(d.sbPort)))
	example = bytes.ReplaceAll(example, []byte("bakeTime: 20s"), []byte("bakeTime: 6s"))
	specFile := filepath.Join(dir, "dns-shift.yaml")
	if err := os.WriteFile(specFile, example, 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"FERRY_API=http://" + testenv.Addr(d.apiPort), "FERRY_DATA_DIR=" + d.dataDir, "FERRY_TOKEN="}
	planOut, code := runFerry(t, dir, env, "plan", "-f", specFile, "-o", "json")
	var plan struct {
		ID       string `json:"id"`
		PlanHash string `json:"planHash"`
	}
	if err := json.Unmarshal([]byte(planOut), &plan); code != 0 || err != nil {
		t.Fatalf("plan: exit %d, %v: %s", code, err, planOut)
	}
	if _, code := runFerry(t, dir, env, "start", "-f", specFile, "--plan-hash", plan.PlanHash); code != 0 {
		t.Fatalf("start: exit %d", code)
	}
	testenv.Eventually(t, 2*time.Minute, "the approval at 50%", func() bool {
		got, _ := runFerry(t, dir, env, "get", plan.ID, "-o", "json")
		if strings.Contains(got, "PAUSED") || strings.Contains(got, "ROLLED_BACK") || strings.Contains(got, "ROLLING_BACK") {
			t.Fatalf("the example must not stop on a fresh machine:\n%s", got)
		}
		return strings.Contains(got, "AWAITING_APPROVAL")
	})
	if _, code := runFerry(t, dir, env, "approve", plan.ID, "--as", "approver"); code != 0 {
		t.Fatalf("approve: exit %d", code)
	}
	if got, code := runFerry(t, dir, env, "watch", plan.ID); code != 0 {
		t.Fatalf("watch: exit %d, the example did not complete:\n%s", code, got)
	}
	got, _ := runFerry(t, dir, env, "get", plan.ID, "-o", "json")
	// protojson spaces its output at random: compare without spaces.
	if n := strings.Count(strings.Join(strings.Fields(got), ""), `"verdict":"pass"`); n != 2 {
		t.Fatalf("both gates (the probe and the CloudWatch error rate) must end passing, %d do:\n%s", n, got)
	}

	// Judged from the sandbox's Route 53: all of www's traffic on eu-west-2.
	r53 := route53.New(route53.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + testenv.Addr(d.sbPort)),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	zones, err := r53.ListHostedZonesByName(context.Background(), &route53.ListHostedZonesByNameInput{DNSName: aws.String("shop.example.")})
	if err != nil || len(zones.HostedZones) == 0 {
		t.Fatalf("list zones: %v", err)
	}
	sets, err := r53.ListResourceRecordSets(context.Background(), &route53.ListResourceRecordSetsInput{HostedZoneId: zones.HostedZones[0].Id})
	if err != nil {
		t.Fatal(err)
	}
	weights := map[string]int64{}
	for _, rs := range sets.ResourceRecordSets {
		if aws.ToString(rs.Name) == "www.shop.example." && rs.SetIdentifier != nil {
			weights[aws.ToString(rs.SetIdentifier)] = aws.ToInt64(rs.Weight)
		}
	}
	if weights["eu-west-1"] != 0 || weights["eu-west-2"] != 100 {
		t.Fatalf("www's weights in the sandbox = %v, want eu-west-1 0 and eu-west-2 100", weights)
	}
}
