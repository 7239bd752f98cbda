//go:build chaos

// Package chaos rehearses region moves (AMI share -> MongoDB primary move -> DNS shift, as
// child workflows) while things break: ferry worker processes are SIGKILLed at random
// moments and restarted, the embedded Temporal server restarts once mid-run, the sandbox's
// AWS throttles, fails and slows down, MongoDB members go down and initial syncs crawl.
// Every rehearsal has its own replica set, AMIs and weighted record (the workflow ids are
// resource locks, so concurrent moves need separate resources); every third one has a DNS
// gate that can never pass and must roll back. At the end the run is judged from the
// sandbox's own records and state, not from what ferry believes.
//
//	make chaos N=20
package chaos

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/sandbox/mongosim"
	"github.com/ferryhq/ferry/sandbox/topology"
	"github.com/ferryhq/ferry/workflows"
)

var (
	flagN       = flag.Int("n", 20, "region-move rehearsals, each with its own replica set, AMIs and weighted record")
	flagWorkers = flag.Int("workers", 3, "ferry worker processes")
	flagLimit   = flag.Duration("limit", 15*time.Minute, "the whole run (building ferry, every rehearsal and the checks) must finish within this; `make chaos N=20` is meant to pass within 15 minutes on 2 cores")
	flagTrace   = flag.Bool("trace", false, "print every rehearsal's histories, audit trails and sandbox record, not only those of rehearsals that went wrong")
	flagSeed    = flag.Uint64("seed", 0, "seed of the test's own chaos choices: when and which worker dies, when Temporal restarts, when members go down (0: from the clock). The sandbox's fault rolls and all timings still vary from run to run")
)

const (
	zone   = "shop.example."
	source = "eu-west-1"
	target = "eu-west-2"
)

func TestChaos(t *testing.T) {
	n := *flagN
	began := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), began.Add(*flagLimit))
	defer cancel()
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(began.UnixNano())
	}
	t.Logf("chaos seed %d (repeat the schedule with -args -seed=%d)", seed, seed)
	rnd := rand.New(rand.NewPCG(seed, 1))

	dir := t.TempDir()
	bin := filepath.Join(dir, "ferry")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../cmd/ferry").CombinedOutput(); err != nil {
		t.Fatalf("build ferry: %v\n%s", err, out)
	}

	ts := &temporalServer{port: testenv.FreePort(t), dbFile: filepath.Join(dir, "temporal.db")}
	if err := ts.start(); err != nil {
		t.Fatal(err)
	}
	defer ts.stop()

	// The default estate (TTL 1s, AWS request limits on) plus every rehearsal's own replica
	// set (on free ports), AMIs and weighted record.
	rs := make([]*rehearsal, n)
	for i := range rs {
		rs[i] = newRehearsal(i)
	}
	topo := topology.Default()
	topo.Limits = true
	for i := range topo.HostedZones[0].Records {
		topo.HostedZones[0].Records[i].TTL = 1 // a shift dwells max(bake, TTL)
	}
	// The default replica set is not part of this rehearsal (rehearsal 0 has its own rs0).
	topo.Mongo.ReplicaSets = nil
	testenv.AddShiftRecords(topo, n, recordName)
	for _, r := range rs {
		r.addTo(topo)
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

	// The start state every rolled-back rehearsal must return to, checked so the final
	// comparison starts from what the story says.
	for _, r := range rs {
		c := mongo.Cluster(r.set)
		for _, m := range c.Members() {
			if m.Region == target {
				r.targetHosts = append(r.targetHosts, m.Host)
			} else {
				r.sourceHosts = append(r.sourceHosts, m.Host)
			}
		}
		r.before = testenv.ReplicaSetConfig(c.Members())
		if len(r.before) != 3 || testenv.PrimaryRegion(c) != source {
			t.Fatalf("%s starts with config %v and primary in %q", r.set, r.before, testenv.PrimaryRegion(c))
		}
		if w := weights(sb, r.record); w != [2]int64{100, 0} {
			t.Fatalf("%s starts at %v", r.record, w)
		}
	}

	// The fault matrix: AWS throttling, 5xx and latency for the whole run; a slow initial
	// sync on one new member of every other set; an old-region secondary down for the
	// whole run in some sets (a majority stays up, as a real move must cope with).
	awsFaults := []control.Fault{
		{Target: "aws:route53:*", Kind: control.KindThrottle, Rate: 0.3},
		{Target: "aws:route53:ChangeResourceRecordSets", Kind: control.KindError, Rate: 0.1},
		{Target: "aws:route53:*", Kind: control.KindLatency, Rate: 0.3, LatencyMs: 200},
		{Target: "aws:ec2:*", Kind: control.KindThrottle, Rate: 0.3},
		{Target: "aws:ec2:CopyImage", Kind: control.KindError, Rate: 0.2},
	}
	for _, f := range awsFaults {
		if _, err := sb.Faults().Add(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rs {
		if r.slowSync {
			if _, err := sb.Faults().Add(control.Fault{Target: mongoTarget(r.set, r.targetHosts[1]), Kind: mongosim.FaultSlowSync, Rate: 30}); err != nil {
				t.Fatal(err)
			}
		}
		if r.down == downWhole {
			r.downHost = r.sourceHosts[2] // a secondary: the first member starts as primary
			if _, err := sb.Faults().Add(control.Fault{Target: mongoTarget(r.set, r.downHost), Kind: mongosim.FaultDown}); err != nil {
				t.Fatal(err)
			}
		}
	}

	pool := &workerPool{bin: bin, logDir: dir, procs: make([]*exec.Cmd, *flagWorkers), exited: make([]chan struct{}, *flagWorkers), killed: make([]bool, *flagWorkers),
		args: []string{"worker", "--temporal-address", testenv.Addr(ts.port), "--aws-endpoint", sb.Addr(), "--log-level", "warn", "--allow-unsigned"}}
	pool.mu.Lock()
	for i := range pool.procs {
		if err := pool.startLocked(i); err != nil {
			pool.mu.Unlock()
			t.Fatal(err)
		}
	}
	pool.mu.Unlock()
	defer pool.stopAll()

	c, err := client.Dial(client.Options{HostPort: testenv.Addr(ts.port), Logger: testenv.QuietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	for _, r := range rs {
		in := r.input(t, sb.Addr())
		if id := workflows.RegionMoveWorkflowID(in.Name, in.Spec.SourceRegion, in.Spec.TargetRegion); id != r.id {
			t.Fatalf("region move id %s, want %s", id, r.id)
		}
		if _, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: r.id, TaskQueue: workflows.TaskQueue}, workflows.RegionMove, in); err != nil {
			t.Fatal(err)
		}
	}
	movesStarted := time.Now()

	// Chaos: kill a worker every 1-4 s; restart Temporal once, 15-45 s in; take an
	// old-region secondary of some sets down for a few seconds while their move needs the
	// set (the MongoDB phase, or the undo of a rolled-back move).
	stopChaos := make(chan struct{})
	var chaosWG sync.WaitGroup
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() { close(stopChaos) })
		chaosWG.Wait()
	}
	defer stop()
	var chaosErrs []string
	var chaosMu sync.Mutex
	chaosErr := func(format string, args ...any) {
		chaosMu.Lock()
		defer chaosMu.Unlock()
		chaosErrs = append(chaosErrs, fmt.Sprintf(format, args...))
	}
	restartAt := movesStarted.Add(time.Duration(15000+rnd.IntN(30000)) * time.Millisecond)
	chaosWG.Add(1)
	go func() {
		defer chaosWG.Done()
		for {
			select {
			case <-stopChaos:
				return
			case <-time.After(time.Duration(1000+rnd.IntN(3000)) * time.Millisecond):
			}
			if err := pool.restartExited(); err != nil {
				chaosErr("restart an exited worker: %v", err)
			}
			if ts.restarts == 0 && time.Now().After(restartAt) {
				if err := ts.restart(); err != nil {
					chaosErr("%v", err)
					return
				}
				continue
			}
			if err := pool.killOne(rnd); err != nil {
				chaosErr("restart worker: %v", err)
			}
		}
	}()
	var outageAt time.Time
	chaosWG.Add(1)
	go func() {
		defer chaosWG.Done()
		at, err := routeOutageDuringRollback(ctx, stopChaos, sb, rs)
		if err != nil {
			chaosErr("route 53 outage: %v", err)
		}
		chaosMu.Lock()
		outageAt = at
		chaosMu.Unlock()
	}()
	for _, r := range rs {
		if !r.editsRecord() {
			continue
		}
		chaosWG.Add(1)
		go func() {
			defer chaosWG.Done()
			if err := r.editRecordWhileShifting(ctx, stopChaos, sb, c); err != nil {
				chaosErr("%s: edit the record behind ferry's back: %v", r.record, err)
			}
		}()
	}
	for _, r := range rs {
		if !r.tagsMember() {
			continue
		}
		chaosWG.Add(1)
		go func() {
			defer chaosWG.Done()
			if err := r.editConfigWhileMoving(ctx, stopChaos, c); err != nil {
				chaosErr("%s: edit the config behind ferry's back: %v", r.set, err)
			}
		}()
	}
	for _, r := range rs {
		if r.down != downBounded {
			continue
		}
		rr := rand.New(rand.NewPCG(seed, uint64(r.i)+2))
		chaosWG.Add(1)
		go func() {
			defer chaosWG.Done()
			if err := r.memberDownWhileNeeded(ctx, stopChaos, sb, mongo.Cluster(r.set), rr); err != nil {
				chaosErr("%s: %v", r.set, err)
			}
		}()
	}

	// Wait for every move; Get long-polls and may fail across the server restart, so it
	// asks again until the limit.
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.err = waitResult(ctx, c, r.id, &r.res)
		}()
	}
	wg.Wait()
	movesTook := time.Since(movesStarted)
	stop()
	for _, e := range chaosErrs {
		t.Errorf("chaos: %s", e)
	}
	// The chaos happened as described, or the run proves less than it says.
	if ts.restarts != 1 || pool.kills == 0 {
		t.Errorf("the Temporal server restarted %d times (want once) and %d workers were killed", ts.restarts, pool.kills)
	}
	for _, r := range rs {
		r.mu.Lock()
		if r.down != downNone && r.downHost == "" {
			t.Errorf("%s: no member of %s was taken down", r.name, r.set)
		}
		r.mu.Unlock()
	}

	// The MongoDB state as the moves left it (whole-run members still down), then every
	// fault off so the sandbox can be read without throttling.
	type setState struct {
		config  map[string]string
		primary string
	}
	sets := map[string]setState{}
	for _, r := range rs {
		cl := mongo.Cluster(r.set)
		sets[r.set] = setState{config: testenv.ReplicaSetConfig(cl.Members()), primary: testenv.PrimaryRegion(cl)}
	}
	faultsFired := map[string]int{}
	for _, f := range sb.Faults().List() {
		if strings.HasPrefix(f.Target, "aws:") {
			faultsFired[f.Target+" "+f.Kind] += f.Fired
		}
	}
	if err := sb.Faults().Clear(); err != nil {
		t.Errorf("clear faults: %v", err)
	}

	// EC2 as any AWS client sees it: the images and snapshots in eu-west-2.
	images, snapshots := ec2State(t, sb.Addr())

	// Route 53: every successful batch set both weights of one record with a total above
	// zero.
	calls := sb.AWS().Calls(control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets"})
	var batchesOK, batchesRefused, zeroTotal, oneWeight, resent, outageRefused int
	outageEnd := outageAt.Add(outageFor)
	last := map[string][2]string{}
	for _, call := range calls {
		if call.Result == "ok" && !strings.HasPrefix(call.Params["Comment"], "ferry ") {
			// A person's edit (editRecordWhileShifting), not ferry's batch. (A refused
			// call is refused before its parameters are read, so it cannot be told apart
			// and counts as refused.)
			continue
		}
		if call.Result != "ok" {
			batchesRefused++
			if !outageAt.IsZero() && !call.Time.Before(outageAt) && call.Time.Before(outageEnd) {
				outageRefused++
			}
			continue
		}
		batchesOK++
		name, w, oneName := batchWeights(call.Params)
		pair := [2]string{w[source], w[target]}
		if !oneName || pair[0] == "" || pair[1] == "" {
			oneWeight++
			t.Errorf("batch %d on %s does not set both weights: %v", call.Seq, name, call.Params)
		}
		a, _ := strconv.Atoi(pair[0])
		b, _ := strconv.Atoi(pair[1])
		if a+b == 0 {
			zeroTotal++
			t.Errorf("batch %d on %s leaves total weight 0", call.Seq, name)
		}
		if last[name] == pair {
			resent++ // the same batch again after a retry: harmless by design
		}
		last[name] = pair
	}

	// MongoDB: no reconfig changed more than one vote, none was forced (from each
	// simulator's own record).
	var reconfigs, maxVoting, forced, elections, membersStopped, slowSyncs int
	for _, name := range mongo.Names() {
		for _, e := range mongo.Cluster(name).Events() {
			switch {
			case e.Reconfig != nil:
				reconfigs++
				maxVoting = max(maxVoting, e.Reconfig.VotingChanges)
				if e.Reconfig.Force {
					forced++
				}
				if e.Reconfig.VotingChanges > 1 || e.Reconfig.Force {
					t.Errorf("%s: reconfig v%d -> v%d by %s changed %d votes (forced: %v)", name, e.Reconfig.OldVersion, e.Reconfig.NewVersion, e.Reconfig.By, e.Reconfig.VotingChanges, e.Reconfig.Force)
				}
			case e.Kind == mongosim.EventElection && e.Election != nil && e.Election.Winner != "":
				elections++
			case e.Kind == mongosim.EventMemberState && e.Message == "process stopped":
				membersStopped++
			case e.Kind == mongosim.EventFault && e.Fault != nil && e.Fault.Kind == mongosim.FaultSlowSync:
				slowSyncs++
			}
		}
	}

	// EC2: no CopyImage started twice for one (image, region); replays of a client token
	// and refused calls start nothing.
	type copyMade struct{ image, snapshot string }
	copies := map[string][]copyMade{} // by source image, into eu-west-2
	var copyCalls, copyReplays, copyRefused, dupCopies int
	pairs := map[string]int{}
	for _, call := range sb.AWS().Calls(control.CallFilter{Service: "ec2", Operation: "CopyImage"}) {
		copyCalls++
		switch {
		case call.Replay:
			copyReplays++
		case call.Result != "ok":
			copyRefused++
		default:
			src := call.Params["SourceImageId"]
			pairs[src+" -> "+call.Region]++
			if call.Region == target && len(call.IDs) == 2 {
				copies[src] = append(copies[src], copyMade{call.IDs[0], call.IDs[1]})
			}
		}
	}
	for pair, k := range pairs {
		if k > 1 {
			dupCopies++
			t.Errorf("CopyImage started %d copies of %s", k, pair)
		}
	}

	// Every move completed or rolled back as planned, and the sandbox is where its state
	// says: completed -> traffic on eu-west-2, the primary there, the copies available;
	// rolled back -> the start state (traffic on eu-west-1, the same config, the primary
	// there, no copy and no snapshot of one left in eu-west-2).
	var completed, rolledBack, otherwise, wrongEnd, copiesLeft, snapshotsLeft int
	for _, r := range rs {
		var bad []string
		st := sets[r.set]
		w := weights(sb, r.record)
		switch {
		case r.err != nil:
			otherwise++
			t.Errorf("%s (%s) did not end with a result: %v", r.id, r.plan(), r.err)
		case r.res.State == workflows.StateCompleted:
			if w != [2]int64{0, 100} {
				bad = append(bad, fmt.Sprintf("weights %s=%d %s=%d", source, w[0], target, w[1]))
			}
			if st.primary != target {
				bad = append(bad, fmt.Sprintf("primary in %q", st.primary))
			}
			for _, im := range r.images {
				cs := copies[im]
				if len(cs) != 1 {
					bad = append(bad, fmt.Sprintf("%d copies of %s in %s", len(cs), im, target))
				}
				for _, cp := range cs {
					if images[cp.image] != "available" {
						bad = append(bad, fmt.Sprintf("copy %s of %s is %q", cp.image, im, images[cp.image]))
					}
				}
			}
		case r.res.State == workflows.StateRolledBack:
			if w != [2]int64{100, 0} {
				bad = append(bad, fmt.Sprintf("weights %s=%d %s=%d", source, w[0], target, w[1]))
			}
			if !maps.Equal(st.config, r.before) {
				bad = append(bad, fmt.Sprintf("config %v, started as %v", st.config, r.before))
			}
			if st.primary != source {
				bad = append(bad, fmt.Sprintf("primary in %q", st.primary))
			}
			for _, im := range r.images {
				for _, cp := range copies[im] {
					if s, ok := images[cp.image]; ok {
						copiesLeft++
						bad = append(bad, fmt.Sprintf("copy %s of %s left (%s)", cp.image, im, s))
					}
					if snapshots[cp.snapshot] {
						snapshotsLeft++
						bad = append(bad, fmt.Sprintf("snapshot %s of copy %s left", cp.snapshot, cp.image))
					}
				}
			}
		default:
			otherwise++
			t.Errorf("%s (%s) ended %s: %s", r.id, r.plan(), r.res.State, r.res.Message)
		}
		switch {
		case r.err != nil:
		case r.res.State == workflows.StateCompleted && !r.rollback:
			completed++
		case r.res.State == workflows.StateRolledBack && r.rollback:
			rolledBack++
		case r.res.State == workflows.StateCompleted || r.res.State == workflows.StateRolledBack:
			otherwise++
			t.Errorf("%s (%s) ended %s: %s", r.id, r.plan(), r.res.State, r.res.Message)
		}
		if len(bad) > 0 {
			wrongEnd++
			t.Errorf("%s (%s) ended %s but the sandbox shows: %s", r.id, r.plan(), r.res.State, strings.Join(bad, "; "))
		}
		if *flagTrace || len(bad) > 0 || r.err != nil || (r.res.State != workflows.StateCompleted && r.res.State != workflows.StateRolledBack) ||
			(r.res.State == workflows.StateCompleted) == r.rollback {
			diagnose(t, c, r, sb, mongo.Cluster(r.set), dir)
		}
	}

	// Out of band: every member a person tagged keeps its tag (ferry never put the config
	// back over it); moves that met the outage showed themselves blocked and went on.
	var tagged, tagsLost, showedBlockedN, recordsEdited, ttlsLost, driftResumes int
	r53 := route53.New(route53.Options{Region: "us-east-1", BaseEndpoint: aws.String(sb.Addr()),
		Credentials: credentials.NewStaticCredentialsProvider("chaos", "chaos", "")})
	zoneID, _ := sb.AWS().ZoneID(zone)
	for _, r := range rs {
		if r.recordEdited {
			recordsEdited++
			driftResumes += r.driftResumed
			set, err := readSet(ctx, r53, zoneID, r.record, target)
			if err != nil || aws.ToInt64(set.TTL) != editedTTL {
				ttlsLost++
				t.Errorf("%s: the %s set's TTL, set to %d behind ferry's back, reads %v (%v)", r.id, target, editedTTL, set, err)
			}
		}
		if showedBlocked(ctx, c, r.id) {
			showedBlockedN++
		}
		if !r.tagged {
			continue
		}
		tagged++
		tag, err := memberTag(ctx, append(slices.Clone(r.sourceHosts), r.targetHosts...), r.set, r.sourceHosts[0], dbaTagKey)
		if err != nil || tag != dbaTagValue {
			tagsLost++
			t.Errorf("%s: %s's tag %s=%s, set behind ferry's back, reads %q (%v)", r.id, r.sourceHosts[0], dbaTagKey, dbaTagValue, tag, err)
		}
	}
	if outageAt.IsZero() {
		t.Errorf("the Route 53 outage never began (no move that must roll back shifted traffic)")
	}

	hs := readHistories(t, c, rs)
	elapsed := time.Since(began)
	if elapsed > *flagLimit {
		t.Errorf("the run took %s, over the %s limit", elapsed.Round(time.Second), *flagLimit)
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "chaos run (seed %d)\t%s\t\n", seed, elapsed.Round(time.Second))
	fmt.Fprintf(tw, "region moves, start to last result\t%s\t\n", movesTook.Round(time.Second))
	for _, row := range []struct {
		k string
		v int
	}{
		{"region-move rehearsals (AMI share, MongoDB primary move, DNS shift)", n},
		{"completed (as planned)", completed},
		{"rolled back to the start state (as planned: DNS gate never passes)", rolledBack},
		{"ended otherwise (failed, not finished, or not as planned)", otherwise},
		{"ended elsewhere than their state says", wrongEnd},
		{"worker processes", *flagWorkers},
		{"workers SIGKILLed and restarted", pool.kills},
		{"workers that exited on their own (restarted)", pool.selfExits},
		{"Temporal server restarts", ts.restarts},
		{"workflow executions (moves, plans, phases, undos)", hs.workflows},
		{"activities run again after a timeout (worker killed, server restarted)", hs.retriedAfterTimeout},
		{"workflow tasks timed out", hs.wftTimedOut},
		{"faults fired: Route 53 throttle (30%)", faultsFired["aws:route53:* throttle"]},
		{"faults fired: Route 53 ChangeResourceRecordSets 5xx (10%)", faultsFired["aws:route53:ChangeResourceRecordSets error"]},
		{"faults fired: Route 53 latency 200ms (30%)", faultsFired["aws:route53:* latency"]},
		{"faults fired: EC2 throttle (30%)", faultsFired["aws:ec2:* throttle"]},
		{"faults fired: EC2 CopyImage 5xx (20%)", faultsFired["aws:ec2:CopyImage error"]},
		{"Route 53 outage (every batch 5xx for 3 undo budgets) during a rollback: batches refused", outageRefused},
		{"moves that showed themselves blocked and went on", showedBlockedN},
		{"records a person edited mid-shift (TTL)", recordsEdited},
		{"of those, edits ferry put back", ttlsLost},
		{"drift pauses a person resumed", driftResumes},
		{"replica sets whose config a person edited mid-move (member tagged)", tagged},
		{"of those, edits ferry put back", tagsLost},
		{"MongoDB members stopped (old-region secondary down)", membersStopped},
		{"MongoDB slow initial syncs (x30)", slowSyncs},
		{"ChangeResourceRecordSets batches applied", batchesOK},
		{"batches refused (faults, limits)", batchesRefused},
		{"identical batches re-sent after a retry", resent},
		{"batches with total weight 0", zeroTotal},
		{"batches setting one weight only", oneWeight},
		{"MongoDB reconfigs", reconfigs},
		{"forced reconfigs", forced},
		{"most votes changed by one reconfig", maxVoting},
		{"MongoDB elections won", elections},
		{"CopyImage calls", copyCalls},
		{"CopyImage refused (faults, limits)", copyRefused},
		{"CopyImage token replays", copyReplays},
		{"(image, region) pairs copied", len(pairs)},
		{"(image, region) pairs copied twice", dupCopies},
		{"copies left after a rollback", copiesLeft},
		{"snapshots left after a rollback", snapshotsLeft},
	} {
		fmt.Fprintf(tw, "%s\t%d\t\n", row.k, row.v)
	}
	_ = tw.Flush()
	for _, r := range rs {
		r.mu.Lock()
		down := ""
		if r.downHost != "" {
			down = " down " + r.downHost
			if r.downFor > 0 {
				down += " for " + r.downFor.Round(100*time.Millisecond).String()
			}
		}
		r.mu.Unlock()
		state := r.res.State
		if r.err != nil {
			state = "error"
		}
		waits := ""
		if w := r.longestWaits(3); w != "" {
			waits = "; waited longest on " + w
		}
		fmt.Printf("  %-8s %-12s %6s  planned: %s%s%s\n", r.name, state, r.took.Round(time.Second), r.plan(), down, waits)
	}
}
