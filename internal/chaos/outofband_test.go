//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.temporal.io/sdk/client"

	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/control"
	"github.com/ferryhq/ferry/workflows"
)

// Long and out-of-band faults: the rehearsals run on short budgets, so a Route 53 outage
// of a few seconds is several retry budgets long (ferry must hold, "blocked", not fail,
// and still roll back or complete), and people change things behind ferry's back while it
// works (ferry must keep their change).

// chaosBudgets make the outage below three undo budgets long.
var chaosBudgets = &workflows.Budgets{UndoAttempt: 5 * time.Second, StepAttempt: 5 * time.Second, BlockedPace: time.Second}

// outageFor is how long the Route 53 outage lasts.
const outageFor = 15 * time.Second

// routeOutageDuringRollback takes Route 53's ChangeResourceRecordSets down for outageFor
// (every call a 5xx) a moment after the first move that must roll back has shifted
// traffic, so its rollback (and other moves' forward batches) meet the outage. It returns
// when the outage began, or the zero time if no such move got that far.
func routeOutageDuringRollback(ctx context.Context, stop <-chan struct{}, sb *sandbox.Sandbox, rs []*rehearsal) (time.Time, error) {
	shifted := func() bool {
		for _, call := range sb.AWS().Calls(control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets"}) {
			for _, r := range rs {
				if r.rollback && call.Result == "ok" && call.Params["Change.1.Name"] == r.record {
					return true
				}
			}
		}
		return false
	}
	for !shifted() {
		select {
		case <-stop:
			return time.Time{}, nil
		case <-ctx.Done():
			return time.Time{}, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	// The gate fails at its first check (1 s): the rollback is about to send its batch.
	time.Sleep(500 * time.Millisecond)
	_, err := sb.Faults().Add(control.Fault{Target: "aws:route53:ChangeResourceRecordSets", Kind: control.KindError, Rate: 1, DurationSec: outageFor.Seconds()})
	return time.Now(), err
}

// dbaTag is the tag a person adds to a replica set member while ferry moves the set.
const dbaTagKey, dbaTagValue = "owner", "dba"

// tagsMember reports whether a rehearsal's set gets an out-of-band config edit.
func (r *rehearsal) tagsMember() bool { return r.i%5 == 4 }

// editConfigWhileMoving waits until the move's MongoDB phase runs, then, as a DBA would,
// reconfigures the set through the driver to tag an old-region member owner=dba (a field
// ferry does not manage). It retries while ferry's own reconfigs are in flight. The end
// check reads the tag back: ferry must not have put the config back over it.
func (r *rehearsal) editConfigWhileMoving(ctx context.Context, stop <-chan struct{}, c client.Client) error {
	for {
		select {
		case <-stop:
			return fmt.Errorf("the MongoDB phase never ran")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		v, err := c.QueryWorkflow(ctx, r.id, "", workflows.QueryProgress)
		if err != nil {
			continue
		}
		var p workflows.Progress
		if v.Get(&p) != nil {
			continue
		}
		running := false
		for _, ph := range p.Phases {
			running = running || (ph.Name == workflows.PhaseMongoPrimaryMove && ph.State == workflows.PhaseRunning)
		}
		if running {
			break
		}
	}
	mc, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + strings.Join(r.sourceHosts, ",") + "/?replicaSet=" + r.set).SetTimeout(5 * time.Second))
	if err != nil {
		return err
	}
	defer func() { _ = mc.Disconnect(context.Background()) }()
	var last error
	for range 50 {
		if last = tagMember(ctx, mc, r.sourceHosts[0]); last == nil {
			r.mu.Lock()
			r.tagged = true
			r.mu.Unlock()
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("tag %s: %w", r.sourceHosts[0], last)
}

// tagMember adds owner=dba to host's tags in one reconfig of the live config.
func tagMember(ctx context.Context, mc *mongo.Client, host string) error {
	raw, err := mc.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetGetConfig", Value: 1}}).Raw()
	if err != nil {
		return err
	}
	// Nested documents as maps, so the config can be edited in place and sent back whole.
	dec := bson.NewDecoder(bson.NewDocumentReader(bytes.NewReader(raw)))
	dec.DefaultDocumentM()
	var res struct {
		Config bson.M `bson:"config"`
	}
	if err := dec.Decode(&res); err != nil {
		return err
	}
	cfg := res.Config
	members, _ := cfg["members"].(bson.A)
	found := false
	for _, m := range members {
		doc, _ := m.(bson.M)
		if doc["host"] != host {
			continue
		}
		tags, _ := doc["tags"].(bson.M)
		if tags == nil {
			tags = bson.M{}
		}
		tags[dbaTagKey] = dbaTagValue
		doc["tags"] = tags
		found = true
	}
	if !found {
		return fmt.Errorf("%s is not in the config", host)
	}
	cfg["version"] = toInt64(cfg["version"]) + 1
	return mc.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetReconfig", Value: cfg}}).Err()
}

// memberTag reads host's tag key from the set's live config.
func memberTag(ctx context.Context, hosts []string, set, host, key string) (string, error) {
	mc, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + strings.Join(hosts, ",") + "/?replicaSet=" + set).SetTimeout(5 * time.Second))
	if err != nil {
		return "", err
	}
	defer func() { _ = mc.Disconnect(context.Background()) }()
	var res struct {
		Config struct {
			Members []struct {
				Host string            `bson:"host"`
				Tags map[string]string `bson:"tags"`
			} `bson:"members"`
		} `bson:"config"`
	}
	if err := mc.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetGetConfig", Value: 1}}).Decode(&res); err != nil {
		return "", err
	}
	for _, m := range res.Config.Members {
		if m.Host == host {
			return m.Tags[key], nil
		}
	}
	return "", fmt.Errorf("%s is not in the config", host)
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int32:
		return int64(n)
	case int64:
		return n
	case float64:
		return int64(n)
	}
	return 0
}

// showedBlocked reports whether a move's audit trail has a "blocked" entry (its own or a
// phase's, which the move shows too).
func showedBlocked(ctx context.Context, c client.Client, id string) bool {
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryProgress)
	if err != nil {
		return false
	}
	var p workflows.Progress
	if v.Get(&p) != nil {
		return false
	}
	for _, e := range p.Audit {
		if strings.HasSuffix(e.Action, " blocked") {
			return true
		}
	}
	return false
}

// batchWeights reads what a ChangeResourceRecordSets batch leaves in place: the weights of
// its UPSERT and CREATE changes by set identifier (a drift-safe batch DELETEs each set as
// last seen and CREATEs it anew; an older one UPSERTs both), the record's name, and
// whether every change names that one record.
func batchWeights(params map[string]string) (name string, weights map[string]string, oneName bool) {
	weights = map[string]string{}
	oneName = true
	for i := 1; ; i++ {
		p := fmt.Sprintf("Change.%d.", i)
		action, ok := params[p+"Action"]
		if !ok {
			break
		}
		if name == "" {
			name = params[p+"Name"]
		}
		oneName = oneName && params[p+"Name"] == name
		if action == "UPSERT" || action == "CREATE" {
			weights[params[p+"SetIdentifier"]] = params[p+"Weight"]
		}
	}
	return name, weights, oneName
}

// editedTTL is the TTL a person sets on a rehearsal's eu-west-2 record set mid-shift.
const editedTTL = 7

// editsRecord reports whether a rehearsal's record gets an out-of-band edit.
func (r *rehearsal) editsRecord() bool { return r.i%5 == 3 }

// editRecordWhileShifting waits for the move's first batch on its record, then, as a person
// would, changes the eu-west-2 set's TTL through the Route 53 API. A shift that meets the
// drift pauses (it must not put the TTL back); the person looks and resumes it. The end
// check reads the TTL back.
func (r *rehearsal) editRecordWhileShifting(ctx context.Context, stop <-chan struct{}, sb *sandbox.Sandbox, c client.Client) error {
	sleep := func(d time.Duration) bool {
		select {
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	for !r.shifted(sb) {
		if !sleep(100 * time.Millisecond) {
			return fmt.Errorf("the shift never began")
		}
	}
	r53 := route53.New(route53.Options{Region: "us-east-1", BaseEndpoint: aws.String(sb.Addr()),
		Credentials: credentials.NewStaticCredentialsProvider("chaos", "chaos", "")})
	zoneID, _ := sb.AWS().ZoneID(zone)
	var last error
	for range 50 { // Route 53 throttles and fails here too
		if last = setTTL(ctx, r53, zoneID, r.record, target, editedTTL); last == nil {
			break
		}
		if !sleep(300 * time.Millisecond) {
			return last
		}
	}
	if last != nil {
		return last
	}
	r.mu.Lock()
	r.recordEdited = true
	r.mu.Unlock()
	child := workflows.DNSShiftWorkflowID(zone, r.record, "A")
	for sleep(300 * time.Millisecond) {
		v, err := c.QueryWorkflow(ctx, child, "", workflows.QueryProgress)
		var p workflows.Progress
		if err != nil || v.Get(&p) != nil || p.State != workflows.StatePaused || !strings.Contains(p.Message, "drift") {
			continue
		}
		if err := c.SignalWorkflow(ctx, child, "", workflows.SignalResume, workflows.ActionRequest{Identity: "chaos-operator", Reason: "the TTL edit is mine; go on"}); err == nil {
			r.mu.Lock()
			r.driftResumed++
			r.mu.Unlock()
		}
	}
	return nil
}

// shifted reports whether a batch on the rehearsal's record went through.
func (r *rehearsal) shifted(sb *sandbox.Sandbox) bool {
	for _, call := range sb.AWS().Calls(control.CallFilter{Service: "route53", Operation: "ChangeResourceRecordSets"}) {
		if call.Result == "ok" && call.Params["Change.1.Name"] == r.record {
			return true
		}
	}
	return false
}

// setTTL UPSERTs one weighted record set with ttl, everything else as it reads now.
func setTTL(ctx context.Context, r53 *route53.Client, zoneID, name, set string, ttl int64) error {
	rs, err := readSet(ctx, r53, zoneID, name, set)
	if err != nil {
		return err
	}
	rs.TTL = aws.Int64(ttl)
	_, err = r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zoneID),
		ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{Action: r53types.ChangeActionUpsert, ResourceRecordSet: rs}}}})
	return err
}

// readSet reads one weighted record set by its set identifier.
func readSet(ctx context.Context, r53 *route53.Client, zoneID, name, set string) (*r53types.ResourceRecordSet, error) {
	out, err := r53.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zoneID), StartRecordName: aws.String(name)})
	if err != nil {
		return nil, err
	}
	for _, rs := range out.ResourceRecordSets {
		if aws.ToString(rs.Name) == name && aws.ToString(rs.SetIdentifier) == set {
			return &rs, nil
		}
	}
	return nil, fmt.Errorf("no record set %s %s", name, set)
}
