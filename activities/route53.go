package activities

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"go.temporal.io/sdk/temporal"
)

// Route53 drives weighted record sets. Every mutation is one atomic ChangeResourceRecordSets
// batch that DELETEs each record set exactly as ferry last saw it and CREATEs it again with
// its new weight (see ChangeWeights in route53_change.go), so Route 53 itself refuses a
// change to a record set someone else edited meanwhile, and ferry never puts back an alias
// target, value, TTL or health check it did not set.
type Route53 struct {
	Client *route53.Client
	// ThrottleBackoff is the first wait after Throttling or PriorRequestNotComplete;
	// zero means 250ms. It doubles per attempt up to 5s.
	ThrottleBackoff time.Duration
}

// Alias is the alias target of an alias record set.
type Alias struct {
	DNSName              string
	HostedZoneID         string
	EvaluateTargetHealth bool
}

// RecordSet is one weighted record set as read, with everything a DELETE must name for
// Route 53 to accept it and a CREATE must repeat so that only the weight changes.
type RecordSet struct {
	Name          string
	Type          string
	SetIdentifier string
	Weight        int64
	TTL           int64 // 0 for alias records (the target's TTL applies)
	Values        []string
	HealthCheckID string
	Alias         *Alias
}

// PreflightInput names the two weighted record sets of a shift.
type PreflightInput struct {
	Zone       string // hosted zone name ("shop.example.") or id ("Z0123...")
	RecordName string
	RecordType string
	From       string // set identifiers
	To         string
}

// PreflightOutput is the observed state a shift starts from.
type PreflightOutput struct {
	ZoneID   string
	ZoneName string
	From     RecordSet
	To       RecordSet
	// Others are weighted record sets of the same name and type with other set
	// identifiers; a shift leaves their weights alone.
	Others []RecordSet
}

// Preflight resolves the zone and reads both record sets. It is read-only, so it is safe to
// run for plans and again at the start of every execution.
func (r *Route53) Preflight(ctx context.Context, in PreflightInput) (PreflightOutput, error) {
	if in.Zone == "" || in.RecordName == "" || in.RecordType == "" || in.From == "" || in.To == "" {
		return PreflightOutput{}, badInput("preflight needs zone, record name, record type, from and to; got %+v", in)
	}
	zoneID, zoneName, err := r.resolveZone(ctx, in.Zone)
	if err != nil {
		return PreflightOutput{}, err
	}
	name := fqdn(in.RecordName)
	if name != zoneName && !strings.HasSuffix(name, "."+zoneName) {
		return PreflightOutput{}, badInput("record %s is not in hosted zone %s (%s); check dnsShift.recordName and dnsShift.hostedZone", name, zoneName, zoneID)
	}
	sets, err := r.listName(ctx, zoneID, name)
	if err != nil {
		return PreflightOutput{}, err
	}
	out := PreflightOutput{ZoneID: zoneID, ZoneName: zoneName}
	var found []string
	for _, s := range sets {
		if s.SetIdentifier != "" {
			found = append(found, s.SetIdentifier+" ("+s.Type+")")
		}
	}
	pick := func(field, id string) (RecordSet, error) {
		var other *RecordSet
		for i := range sets {
			s := &sets[i]
			if s.SetIdentifier != id {
				continue
			}
			if s.Type == in.RecordType {
				return *s, nil
			}
			other = s
		}
		if other != nil {
			return RecordSet{}, permanent(ErrRecordTypeMismatch, nil,
				"record %s with set identifier %q is type %s, not %s; set dnsShift.recordType to %s or fix %s",
				name, id, other.Type, in.RecordType, other.Type, field)
		}
		have := "none"
		if len(found) > 0 {
			have = strings.Join(found, ", ")
		}
		return RecordSet{}, permanent(ErrNoSuchSetIdentifier, nil,
			"record %s has no record set with set identifier %q in zone %s (set identifiers found: %s); fix %s",
			name, id, zoneID, have, field)
	}
	if out.From, err = pick("dnsShift.from", in.From); err != nil {
		return PreflightOutput{}, err
	}
	if out.To, err = pick("dnsShift.to", in.To); err != nil {
		return PreflightOutput{}, err
	}
	for _, s := range sets {
		if s.Type == in.RecordType && s.SetIdentifier != in.From && s.SetIdentifier != in.To && s.SetIdentifier != "" {
			out.Others = append(out.Others, s)
		}
	}
	if out.From.Weight+out.To.Weight == 0 {
		return PreflightOutput{}, permanent(ErrZeroTotalWeight, nil,
			"record %s: set identifiers %q and %q both have weight 0, so Route 53 spreads traffic equally and there is no original split to return to; give %q a weight (e.g. 100) first",
			name, in.From, in.To, in.From)
	}
	return out, nil
}

// resolveZone takes a zone name or id and returns the bare id and the zone name.
func (r *Route53) resolveZone(ctx context.Context, zone string) (id, name string, err error) {
	zone = strings.TrimPrefix(zone, "/hostedzone/")
	if !strings.Contains(zone, ".") {
		out, err := r.Client.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(zone)})
		if err != nil {
			var nz *types.NoSuchHostedZone
			if errors.As(err, &nz) || apiCode(err) == "NoSuchHostedZone" {
				return "", "", permanent(ErrNoSuchZone, err, "hosted zone id %q not found; check dnsShift.hostedZone (a zone name such as shop.example. works too)", zone)
			}
			return "", "", awsErr(fmt.Sprintf("get hosted zone %s", zone), err)
		}
		return bareID(aws.ToString(out.HostedZone.Id)), fqdn(aws.ToString(out.HostedZone.Name)), nil
	}
	want := fqdn(zone)
	var ids []string
	in := &route53.ListHostedZonesByNameInput{DNSName: aws.String(want)}
	for {
		out, err := r.Client.ListHostedZonesByName(ctx, in)
		if err != nil {
			return "", "", awsErr(fmt.Sprintf("list hosted zones by name %s", want), err)
		}
		done := !out.IsTruncated
		for _, z := range out.HostedZones {
			n := fqdn(aws.ToString(z.Name))
			if n != want {
				done = true // sorted by name: past every zone of this name
				break
			}
			ids = append(ids, bareID(aws.ToString(z.Id)))
		}
		if done || out.NextDNSName == nil {
			break
		}
		in.DNSName, in.HostedZoneId = out.NextDNSName, out.NextHostedZoneId
	}
	switch len(ids) {
	case 0:
		return "", "", permanent(ErrNoSuchZone, nil, "no hosted zone named %s; check dnsShift.hostedZone (list zones with `aws route53 list-hosted-zones`)", want)
	case 1:
		return ids[0], want, nil
	default:
		return "", "", permanent(ErrAmbiguousZone, nil, "%d hosted zones are named %s (public and private?): set dnsShift.hostedZone to one id of %s", len(ids), want, strings.Join(ids, ", "))
	}
}

// listPage is how many record sets one listing asks for. A name has a handful of sets (at
// most 100 weighted ones per type), while the default page is 300 records of whatever follows
// it in the zone: in a big zone that is mostly other names, parsed only to be skipped.
const listPage = 20

// listName returns every record set named name, of every type, so a set identifier that
// exists under another type can be reported as a type mismatch rather than as missing.
func (r *Route53) listName(ctx context.Context, zoneID, name string) ([]RecordSet, error) {
	var sets []RecordSet
	in := &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zoneID), StartRecordName: aws.String(name), MaxItems: aws.Int32(listPage)}
	for {
		out, err := r.Client.ListResourceRecordSets(ctx, in)
		if err != nil {
			var nz *types.NoSuchHostedZone
			if errors.As(err, &nz) {
				return nil, permanent(ErrNoSuchZone, err, "hosted zone %s disappeared while reading %s", zoneID, name)
			}
			return nil, awsErr(fmt.Sprintf("list record sets %s in %s", name, zoneID), err)
		}
		past := false
		for _, rr := range out.ResourceRecordSets {
			if !strings.EqualFold(fqdn(aws.ToString(rr.Name)), name) {
				past = true // sorted by name: nothing further matches
				break
			}
			s, err := fromSDK(rr)
			if err != nil {
				return nil, err
			}
			sets = append(sets, s)
		}
		if past || !out.IsTruncated || out.NextRecordName == nil {
			return sets, nil
		}
		in.StartRecordName, in.StartRecordType, in.StartRecordIdentifier = out.NextRecordName, out.NextRecordType, out.NextRecordIdentifier
	}
}

func fromSDK(rr types.ResourceRecordSet) (RecordSet, error) {
	s := RecordSet{
		Name:          fqdn(aws.ToString(rr.Name)),
		Type:          string(rr.Type),
		SetIdentifier: aws.ToString(rr.SetIdentifier),
		TTL:           aws.ToInt64(rr.TTL),
		HealthCheckID: aws.ToString(rr.HealthCheckId),
	}
	for _, v := range rr.ResourceRecords {
		s.Values = append(s.Values, aws.ToString(v.Value))
	}
	if rr.AliasTarget != nil {
		s.Alias = &Alias{
			DNSName:              aws.ToString(rr.AliasTarget.DNSName),
			HostedZoneID:         aws.ToString(rr.AliasTarget.HostedZoneId),
			EvaluateTargetHealth: rr.AliasTarget.EvaluateTargetHealth,
		}
	}
	if s.SetIdentifier != "" && rr.Weight == nil {
		// Latency, failover, geolocation ... records also carry set identifiers; an
		// UPSERT with a weight would be refused (or worse, change the routing policy).
		policy := "non-weighted"
		switch {
		case rr.Region != "":
			policy = "latency"
		case rr.Failover != "":
			policy = "failover"
		case rr.GeoLocation != nil:
			policy = "geolocation"
		}
		return s, permanent(ErrNotWeighted, nil, "record %s %s set identifier %q uses %s routing, not weighted; a DNS shift moves weight between weighted record sets only",
			s.Name, s.Type, s.SetIdentifier, policy)
	}
	s.Weight = aws.ToInt64(rr.Weight)
	return s, nil
}

func (s RecordSet) toSDK(weight int64) *types.ResourceRecordSet {
	rr := &types.ResourceRecordSet{
		Name:          aws.String(s.Name),
		Type:          types.RRType(s.Type),
		SetIdentifier: aws.String(s.SetIdentifier),
		Weight:        aws.Int64(weight),
	}
	if s.Alias != nil {
		rr.AliasTarget = &types.AliasTarget{
			DNSName:              aws.String(s.Alias.DNSName),
			HostedZoneId:         aws.String(s.Alias.HostedZoneID),
			EvaluateTargetHealth: s.Alias.EvaluateTargetHealth,
		}
	} else {
		rr.TTL = aws.Int64(s.TTL)
		for _, v := range s.Values {
			rr.ResourceRecords = append(rr.ResourceRecords, types.ResourceRecord{Value: aws.String(v)})
		}
	}
	if s.HealthCheckID != "" {
		rr.HealthCheckId = aws.String(s.HealthCheckID)
	}
	return rr
}

// throttled runs call, repeating the identical request with a bounded exponential backoff
// while Route 53 answers Throttling or PriorRequestNotComplete. Past the bound it returns a
// retryable error so the activity's RetryPolicy (longer backoff) takes over.
func (r *Route53) throttled(ctx context.Context, what string, call func() error) error {
	wait := r.ThrottleBackoff
	if wait <= 0 {
		wait = 250 * time.Millisecond
	}
	const attempts = 6
	var err error
	for i := 0; i < attempts; i++ {
		if err = call(); err == nil {
			return nil
		}
		if !isThrottle(err) {
			return awsErr(what, err)
		}
		recordHeartbeat(ctx, fmt.Sprintf("%s: %s, attempt %d", what, apiCode(err), i+1))
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
		wait = min(wait*2, 5*time.Second)
	}
	return temporal.NewApplicationErrorWithCause(fmt.Sprintf("%s: still %s after %d attempts", what, apiCode(err), attempts), ErrThrottled, err)
}

// WaitInsyncInput names a submitted change.
type WaitInsyncInput struct {
	ChangeID string
	// PollInterval caps the wait between GetChange calls; zero means 2s. The first polls
	// come sooner (50ms, doubling up to the cap), so a change that propagates quickly is
	// seen quickly while a slow one costs one call per interval.
	PollInterval time.Duration
}

// WaitInsyncOutput reports the final status.
type WaitInsyncOutput struct {
	Status string
	Polls  int
}

// WaitInsync polls GetChange until the change is INSYNC, heartbeating each poll. It polls
// the change id recorded in history rather than resubmitting the batch: after a worker
// dies, the retry resumes polling the same change, sending no new mutation (which would
// meet PriorRequestNotComplete and add a change to the audit trail) and still finishing in
// the ~60 s AWS documents for propagation.
func (r *Route53) WaitInsync(ctx context.Context, in WaitInsyncInput) (WaitInsyncOutput, error) {
	if in.ChangeID == "" {
		return WaitInsyncOutput{}, badInput("wait insync: no change id")
	}
	ceiling := in.PollInterval
	if ceiling <= 0 {
		ceiling = 2 * time.Second
	}
	every := min(50*time.Millisecond, ceiling)
	id := bareID(in.ChangeID)
	// A change submitted a moment ago is still PENDING (Route 53 takes seconds), so the first
	// attempt waits before its first call rather than spending one on a known answer. A
	// retried attempt asks at once: the change may have converged while no worker watched.
	if firstAttempt(ctx) {
		if err := sleepCtx(ctx, every); err != nil {
			return WaitInsyncOutput{}, err
		}
		every = min(every*2, ceiling)
	}
	for polls := 1; ; polls++ {
		out, err := r.Client.GetChange(ctx, &route53.GetChangeInput{Id: aws.String(id)})
		status := ""
		switch {
		case err == nil:
			status = string(out.ChangeInfo.Status)
			if out.ChangeInfo.Status == types.ChangeStatusInsync {
				return WaitInsyncOutput{Status: status, Polls: polls}, nil
			}
		case apiCode(err) == "NoSuchChange":
			return WaitInsyncOutput{}, permanent(ErrNoSuchChange, err, "change %s not found (Route 53 keeps changes for a limited time); rerun the step: its batch finds the weights already set and sends nothing", id)
		case isThrottle(err):
			status = apiCode(err)
		default:
			return WaitInsyncOutput{}, awsErr("get change "+id, err)
		}
		recordHeartbeat(ctx, fmt.Sprintf("change %s %s (poll %d)", id, status, polls))
		if err := sleepCtx(ctx, every); err != nil {
			return WaitInsyncOutput{}, err
		}
		every = min(every*2, ceiling)
	}
}

// awsErr wraps an AWS error; credential problems become non-retryable because no retry
// fixes a missing permission.
func awsErr(what string, err error) error {
	if isAccessDenied(err) {
		return permanent(ErrAccessDenied, err, "%s: %s; grant the worker's role the permission", what, apiText(err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

func fqdn(n string) string {
	n = strings.ToLower(strings.TrimSpace(n))
	if !strings.HasSuffix(n, ".") {
		n += "."
	}
	return n
}

func bareID(id string) string {
	if i := strings.LastIndex(id, "/"); i >= 0 {
		return id[i+1:]
	}
	return id
}

// SortedValues returns a record set's values in a canonical order, for hashing.
func (s RecordSet) SortedValues() []string {
	v := append([]string(nil), s.Values...)
	sort.Strings(v)
	return v
}
