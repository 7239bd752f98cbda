//go:build chaos

// Package chaos rehearses migrations (DNS shifts, and region moves with AMI copies and a
// MongoDB primary move) while things break: worker processes are SIGKILLed at
// random moments and restarted, the embedded Temporal server restarts once mid-run, and the
// sandbox's Route 53 throttles, fails and slows down. At the end it judges the run from the
// sandbox's own record of calls, not from what ferry believes.
//
//	make chaos N=20
package chaos

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/internal/devtemporal"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/topology"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

var (
	flagN       = flag.Int("n", 20, "number of DNS shift rehearsals")
	flagWorkers = flag.Int("workers", 3, "worker processes")
	flagLimit   = flag.Duration("limit", 12*time.Minute, "the run must finish within this")
	flagRegion  = flag.Int("regionmoves", 1, "region moves (AMI share, MongoDB primary move, DNS shift) run alongside the shifts")
)

const zone = "shop.example."

func record(i int) string { return fmt.Sprintf("app%d.%s", i, zone) }

// workerPool runs ferry worker processes and kills them on request.
type workerPool struct {
	mu    sync.Mutex
	bin   string
	args  []string
	procs []*exec.Cmd
	kills int
}

func (p *workerPool) start(i int) error {
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	p.procs[i] = cmd
	return nil
}

func (p *workerPool) killOne(r *rand.Rand) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := r.IntN(len(p.procs))
	_ = p.procs[i].Process.Signal(syscall.SIGKILL)
	p.kills++
	return p.start(i)
}

func (p *workerPool) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.procs {
		_ = c.Process.Signal(syscall.SIGKILL)
	}
}

func TestChaos(t *testing.T) {
	n := *flagN
	dir := t.TempDir()
	bin := filepath.Join(dir, "ferry")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/ferry").CombinedOutput(); err != nil {
		t.Fatalf("build ferry: %v\n%s", err, out)
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), *flagLimit)
	defer cancel()
	r := rand.New(rand.NewPCG(uint64(began.UnixNano()), 1))

	// A durable store on a fixed port, so the server can restart under everyone's feet.
	port := testenv.FreePort(t)
	dbFile := filepath.Join(dir, "temporal.db")
	startTemporal := func() *devtemporal.Server {
		s, err := devtemporal.Start(devtemporal.Options{Port: port, UIPort: -1, DBFile: dbFile})
		if err != nil {
			t.Fatalf("start temporal: %v", err)
		}
		return s
	}
	ts := startTemporal()
	defer func() { ts.Stop() }()

	// N weighted records, TTL 1s, with AWS's request limits on.
	topo := topology.Default()
	topo.Limits = true
	for i := range topo.HostedZones[0].Records {
		topo.HostedZones[0].Records[i].TTL = 1 // a shift dwells max(bake, TTL)
	}
	testenv.AddShiftRecords(topo, n, record)
	for i := range topo.Mongo.ReplicaSets[0].Members {
		topo.Mongo.ReplicaSets[0].Members[i].Port = 0 // free ports
	}
	mongo, err := sandbox.StartMongo(ctx, topo, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mongo.Close()
	sb, err := sandbox.Start(ctx, sandbox.Options{Addr: "127.0.0.1:0", Fast: true, Topology: topo, Mongo: mongo})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	rs := mongo.Cluster("rs0")
	for _, f := range []control.Fault{
		{Target: "aws:route53:*", Kind: control.KindThrottle, Rate: 0.3},
		{Target: "aws:route53:ChangeResourceRecordSets", Kind: control.KindError, Rate: 0.1},
		{Target: "aws:route53:*", Kind: control.KindLatency, Rate: 0.3, LatencyMs: 200},
		{Target: "aws:ec2:*", Kind: control.KindThrottle, Rate: 0.3},
		{Target: "aws:ec2:CopyImage", Kind: control.KindError, Rate: 0.2},
	} {
		if _, err := sb.Faults().Add(f); err != nil {
			t.Fatal(err)
		}
	}

	pool := &workerPool{bin: bin, procs: make([]*exec.Cmd, *flagWorkers), args: []string{"worker",
		"--temporal-address", testenv.Addr(port), "--aws-endpoint", sb.Addr(), "--sandbox-url", sb.Addr(), "--log-level", "error"}}
	for i := range pool.procs {
		if err := pool.start(i); err != nil {
			t.Fatal(err)
		}
	}
	defer pool.stopAll()

	c, err := client.Dial(client.Options{HostPort: testenv.Addr(port), Logger: testenv.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Every third rehearsal has a gate that can never pass, so it must roll back.
	wantRollback := func(i int) bool { return i%3 == 2 }
	ids := make([]string, n)
	for i := range n {
		gate := sb.Addr() + "/_apps/eu-west-2/healthz"
		mode := "immediate"
		if wantRollback(i) {
			gate = sb.Addr() + "/_apps/eu-west-9/healthz" // no app there: 404
			if i%2 == 0 {
				mode = "gradual"
			}
		}
		m, err := spec.Parse([]byte(fmt.Sprintf(`
dnsShift: {hostedZone: %s, recordName: %s, from: eu-west-1, to: eu-west-2, schedule: [25, 50, 100],
  bakeTime: 1s, gateInterval: 1s, rollbackMode: %s, gates: [{http: {url: "%s", timeout: 2s}}]}`, zone, record(i), mode, gate)), ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		in, err := spec.DNSShiftInput(m, "chaos")
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = workflows.DNSShiftWorkflowID(in.Spec.Zone, in.Spec.RecordName, in.Spec.RecordType)
		if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: ids[i], TaskQueue: workflows.TaskQueue}, workflows.DNSShift, in); err != nil {
			t.Fatal(err)
		}
	}

	// Region moves: every phase, no approvals (people are not part of this rehearsal), and
	// a slow initial sync on one new member.
	var source, target []string
	for _, m := range rs.Members() {
		if m.Region == "eu-west-2" {
			target = append(target, m.Host)
		} else {
			source = append(source, m.Host)
		}
	}
	regionIDs := make([]string, 0, *flagRegion)
	if *flagRegion > 0 {
		if _, err := sb.Faults().Add(control.Fault{Target: "mongo:rs0:" + strings.TrimPrefix(target[1], "127.0.0.1:"), Kind: "slow-sync", Rate: 5}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range *flagRegion {
		m, err := spec.Parse([]byte(fmt.Sprintf(`
name: chaos%d
regionMove:
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  amiShare: {sourceRegion: eu-west-1, imageTags: {app: shop}, targetRegions: [eu-west-2]}
  mongoPrimaryMove:
    uri: mongodb://%s/?replicaSet=rs0
    sourceRegion: eu-west-1
    targetRegion: eu-west-2
    newMembers: [%s]
    skipPrimaryApproval: true
    maxLag: 2s
    catchUpPeriod: 2s
    takeoverTimeout: 3s
  dnsShift: {hostedZone: %s, recordName: www.%s, from: eu-west-1, to: eu-west-2, schedule: [50, 100], bakeTime: 1s, gateInterval: 1s}
`, i, strings.Join(source, ","), strings.Join(target, ", "), zone, zone)), ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		in, err := spec.RegionMoveInput(m, "chaos")
		if err != nil {
			t.Fatal(err)
		}
		id := workflows.RegionMoveWorkflowID(in.Name, in.Spec.SourceRegion, in.Spec.TargetRegion)
		if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.TaskQueue}, workflows.RegionMove, in); err != nil {
			t.Fatal(err)
		}
		regionIDs = append(regionIDs, id)
	}

	// Chaos: kill a worker every 1-4s; restart Temporal once, a few seconds in.
	stopChaos := make(chan struct{})
	chaosDone := make(chan struct{})
	restarts := 0
	go func() {
		defer close(chaosDone)
		restartAt := time.Now().Add(5 * time.Second)
		for {
			select {
			case <-stopChaos:
				return
			case <-time.After(time.Duration(1000+r.IntN(3000)) * time.Millisecond):
			}
			if err := pool.killOne(r); err != nil {
				t.Errorf("restart worker: %v", err)
			}
			if restarts == 0 && time.Now().After(restartAt) {
				ts.Stop()
				ts = startTemporal()
				restarts++
			}
		}
	}()

	results := make([]workflows.DNSShiftResult, n)
	for i, id := range ids {
		// Get long-polls; across the server restart it may fail, so ask again.
		for {
			err := c.GetWorkflow(ctx, id, "").Get(ctx, &results[i])
			if err == nil || ctx.Err() != nil {
				if err != nil {
					t.Fatalf("%s did not finish within %s: %v", id, *flagLimit, err)
				}
				break
			}
			var app interface{ NonRetryable() bool }
			if errors.As(err, &app) {
				t.Fatalf("%s failed: %v", id, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	regionResults := make([]workflows.RegionMoveResult, len(regionIDs))
	for i, id := range regionIDs {
		for {
			err := c.GetWorkflow(ctx, id, "").Get(ctx, &regionResults[i])
			if err == nil || ctx.Err() != nil {
				if err != nil {
					t.Fatalf("%s did not finish within %s: %v", id, *flagLimit, err)
				}
				break
			}
			var app interface{ NonRetryable() bool }
			if errors.As(err, &app) {
				t.Fatalf("%s failed: %v", id, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	close(stopChaos)
	<-chaosDone

	// Judge from the sandbox's record: every successful batch set both weights of one
	// record with a total above zero, and each record ends where its migration says.
	calls := sb.AWS().Calls(control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets"})
	type tally struct{ ok, failed, resent, zeroTotal, partial int }
	per := map[string]*tally{}
	last := map[string][2]string{}
	final := map[string][2]string{}
	var failedCalls int
	for _, call := range calls {
		name := call.Params["Change.1.Name"]
		tl := per[name]
		if tl == nil {
			tl = &tally{}
			per[name] = tl
		}
		if call.Result != "ok" {
			tl.failed++
			failedCalls++
			continue
		}
		tl.ok++
		w := map[string]string{call.Params["Change.1.SetIdentifier"]: call.Params["Change.1.Weight"], call.Params["Change.2.SetIdentifier"]: call.Params["Change.2.Weight"]}
		pair := [2]string{w["eu-west-1"], w["eu-west-2"]}
		if call.Params["Change.2.Name"] != name || pair[0] == "" || pair[1] == "" {
			tl.partial++
		}
		if a, _ := strconv.Atoi(pair[0]); a == 0 {
			if b, _ := strconv.Atoi(pair[1]); b == 0 {
				tl.zeroTotal++
			}
		}
		if last[name] == pair {
			tl.resent++ // an identical batch sent again after a retry: harmless by design
		}
		last[name], final[name] = pair, pair
	}
	var completed, rolledBack, wrongEnd, zero, partial, resent int
	for i, res := range results {
		name := record(i)
		want := [2]string{"0", "100"}
		switch res.State {
		case workflows.StateCompleted:
			completed++
		case workflows.StateRolledBack:
			rolledBack++
			want = [2]string{"100", "0"}
		default:
			t.Errorf("%s ended %s: %s", ids[i], res.State, res.Message)
		}
		if wantRollback(i) && res.State != workflows.StateRolledBack {
			t.Errorf("%s has a failing gate but ended %s", ids[i], res.State)
		}
		got, touched := final[name]
		if res.State == workflows.StateRolledBack && !touched {
			got = [2]string{"100", "0"} // rolled back before its first batch
		}
		if got != want {
			wrongEnd++
			t.Errorf("%s ended %s but the sandbox's last batch left eu-west-1=%s eu-west-2=%s", ids[i], res.State, got[0], got[1])
		}
		if tl := per[name]; tl != nil {
			zero += tl.zeroTotal
			partial += tl.partial
			resent += tl.resent
		}
	}
	// MongoDB: no reconfig changed more than one vote (from the simulator's own record).
	var reconfigs, maxVoting, forced int
	for _, e := range rs.Events() {
		if e.Reconfig == nil {
			continue
		}
		reconfigs++
		maxVoting = max(maxVoting, e.Reconfig.VotingChanges)
		if e.Reconfig.Force {
			forced++
		}
	}
	if maxVoting > 1 || forced > 0 {
		t.Errorf("a reconfig changed %d votes (forced reconfigs: %d)", maxVoting, forced)
	}
	// EC2: no CopyImage started twice for one (image, region); replays of a client token
	// and refused calls start nothing.
	copies := map[string]int{}
	var copyCalls, copyReplays int
	for _, call := range sb.AWS().Calls(control.CallFilter{Service: "ec2", Operation: "CopyImage"}) {
		copyCalls++
		switch {
		case call.Replay:
			copyReplays++
		case call.Result == "ok":
			copies[call.Params["SourceImageId"]+" -> "+call.Region]++
		}
	}
	var dupCopies int
	for pair, k := range copies {
		if k > 1 {
			dupCopies++
			t.Errorf("CopyImage started %d copies of %s", k, pair)
		}
	}
	var movesDone int
	for i, res := range regionResults {
		if res.State != workflows.StateCompleted {
			t.Errorf("%s ended %s: %s", regionIDs[i], res.State, res.Message)
			continue
		}
		movesDone++
	}
	if movesDone > 0 {
		if p := rs.Primary(); !slices.Contains(target, p) {
			t.Errorf("region moves completed but the primary is %s, not in eu-west-2", p)
		}
	}

	var fired int
	for _, f := range sb.Faults().List() {
		fired += f.Fired
	}
	if zero > 0 || partial > 0 {
		t.Errorf("%d batches with total weight 0 and %d batches not setting both weights", zero, partial)
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "chaos run\t%s\t\n", time.Since(began).Round(time.Second))
	for _, row := range []struct {
		k string
		v int
	}{
		{"DNS shift rehearsals", n}, {"completed", completed}, {"rolled back (as planned)", rolledBack},
		{"ended elsewhere than their state says", wrongEnd},
		{"worker processes", *flagWorkers}, {"workers SIGKILLed and restarted", pool.kills}, {"Temporal server restarts", restarts},
		{"faults fired (Route 53 throttle/5xx/latency, EC2 throttle/CopyImage 5xx, slow sync)", fired}, {"ChangeResourceRecordSets refused by faults", failedCalls},
		{"batches applied", len(calls) - failedCalls}, {"identical batches re-sent after a retry", resent},
		{"batches with total weight 0", zero}, {"batches setting one weight only", partial},
		{"region moves completed (AMI share, MongoDB move, DNS shift)", movesDone}, {"of region moves started", len(regionIDs)},
		{"MongoDB reconfigs", reconfigs}, {"most votes changed by one reconfig", maxVoting},
		{"CopyImage calls (incl. refused by faults)", copyCalls}, {"CopyImage token replays", copyReplays},
		{"(image, region) pairs copied twice", dupCopies},
	} {
		fmt.Fprintf(tw, "%s\t%d\t\n", row.k, row.v)
	}
	_ = tw.Flush()
}
