package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"go.temporal.io/sdk/temporal"
)

// ErrRecordDrifted is a record set that is no longer as ferry last saw it: someone changed
// it outside ferry. Non-retryable (no retry makes it as it was); its details are a Drift.
const ErrRecordDrifted = "RecordDrifted"

// What a batch changes (ChangeWeightsInput.Base).
const (
	// BaseLastSeen: From and To are the record sets exactly as ferry last saw them, weights
	// included. The batch changes them only if they still are; otherwise ErrRecordDrifted.
	// For forward steps: a shift must not overwrite someone else's edit.
	BaseLastSeen = "last-seen"
	// BaseCurrent: the record sets as read at the call, whatever anyone changed in them;
	// only the weights are set. For undo: traffic must come back, and other people's edits
	// (TTL, values, alias, health check) stay.
	BaseCurrent = "current"
)

// ChangeWeightsInput sets both weights in one batch.
type ChangeWeightsInput struct {
	ZoneID string
	// From and To are the record sets as ferry last saw them, with the weights it last saw
	// (set) on them.
	From       RecordSet
	To         RecordSet
	FromWeight int64
	ToWeight   int64
	Comment    string
	// Base is BaseLastSeen or BaseCurrent. Empty (inputs scheduled before drift-safe
	// batches existed, whose From and To carry the weights read at preflight): one batch
	// UPSERTing From and To with the new weights.
	Base string
}

// ChangeWeightsOutput identifies the submitted change.
type ChangeWeightsOutput struct {
	// ChangeID is empty when nothing was sent (AlreadyApplied): there is no change to wait
	// for.
	ChangeID    string
	Status      string
	SubmittedAt time.Time
	// AlreadyApplied: the record sets already had the new weights and were otherwise as
	// expected, e.g. an earlier attempt's batch went in but its answer was lost.
	AlreadyApplied bool
	// From and To are the record sets as they are now, with the new weights (empty for an
	// UPSERT batch, Base "").
	From, To RecordSet
	// Kept lists the changes made outside ferry since From and To of the input were seen
	// that a BaseCurrent batch kept, one line per record set.
	Kept []string
}

// Drift is the details of an ErrRecordDrifted error.
type Drift struct {
	ZoneID string
	// From and To are the record sets as read now; one that is gone has no SetIdentifier.
	From, To RecordSet
	// Changes says what differs from what ferry expected, one line per record set.
	Changes []string
}

// guardAttempts bounds the read-then-change rounds of one call: a batch refused because a
// record set changed between the read and the change is read again, and a record set that
// keeps changing is left to the activity's retries.
const guardAttempts = 3

// ChangeWeights sends ONE ChangeResourceRecordSets batch that DELETEs each record set as
// it is expected to be and CREATEs it with its new weight. Route 53 applies a batch
// atomically, so resolvers never see one weight changed without the other, and it refuses
// a DELETE that does not match the record set's current values ("... but the values
// provided do not match the current values"), so a change based on a stale view is refused
// as a whole instead of silently putting back what someone else set.
//
// It reads both record sets first, which keeps it idempotent: an activity retry after a
// batch that went in but whose answer was lost finds the new weights and reports
// AlreadyApplied without sending anything. With BaseLastSeen, record sets that are neither
// as last seen nor as the batch would leave them have drifted: ErrRecordDrifted, naming
// what differs. A batch refused because a record set changed between the read and the
// change is read again: with BaseLastSeen that settles it (applied, or drifted); with
// BaseCurrent the batch is built again from the new read.
func (r *Route53) ChangeWeights(ctx context.Context, in ChangeWeightsInput) (ChangeWeightsOutput, error) {
	switch {
	case in.ZoneID == "":
		return ChangeWeightsOutput{}, badInput("change weights: no zone id")
	case in.From.SetIdentifier == "" || in.To.SetIdentifier == "" || in.From.SetIdentifier == in.To.SetIdentifier:
		return ChangeWeightsOutput{}, badInput("change weights: need two distinct set identifiers, got %q and %q", in.From.SetIdentifier, in.To.SetIdentifier)
	case in.FromWeight < 0 || in.FromWeight > 255 || in.ToWeight < 0 || in.ToWeight > 255:
		return ChangeWeightsOutput{}, badInput("change weights: weights must be 0..255, got %s=%d %s=%d", in.From.SetIdentifier, in.FromWeight, in.To.SetIdentifier, in.ToWeight)
	case in.FromWeight+in.ToWeight == 0:
		// Both 0 means "spread equally" to Route 53: never a state a shift passes through.
		return ChangeWeightsOutput{}, badInput("change weights: refusing to set both %s and %s to 0", in.From.SetIdentifier, in.To.SetIdentifier)
	case in.Base != "" && in.Base != BaseLastSeen && in.Base != BaseCurrent:
		return ChangeWeightsOutput{}, badInput("change weights: unknown base %q", in.Base)
	case in.Base != "" && (!strings.EqualFold(in.From.Name, in.To.Name) || in.From.Type != in.To.Type || in.From.Name == ""):
		return ChangeWeightsOutput{}, badInput("change weights: %s %s and %s %s are not two sets of one record", in.From.Name, in.From.Type, in.To.Name, in.To.Type)
	}
	what := fmt.Sprintf("change weights in %s: %s=%d %s=%d", in.ZoneID, in.From.SetIdentifier, in.FromWeight, in.To.SetIdentifier, in.ToWeight)
	if in.Base == "" {
		return r.send(ctx, in.ZoneID, in.Comment, what, []types.Change{
			{Action: types.ChangeActionUpsert, ResourceRecordSet: in.From.toSDK(in.FromWeight)},
			{Action: types.ChangeActionUpsert, ResourceRecordSet: in.To.toSDK(in.ToWeight)},
		})
	}
	weights := [2]int64{in.FromWeight, in.ToWeight}
	seen := [2]RecordSet{in.From, in.To}
	for round := 1; ; round++ {
		now, err := r.readSets(ctx, in.ZoneID, in.From, in.To)
		if err != nil {
			return ChangeWeightsOutput{}, err
		}
		base := seen
		if in.Base == BaseCurrent {
			if now[0].SetIdentifier == "" || now[1].SetIdentifier == "" {
				// Nothing to set a weight on: a person has to put the set back (or decide).
				return ChangeWeightsOutput{}, drifted(in.ZoneID, now, driftLines(seen, now, weights, true))
			}
			base = now
		}
		target := [2]RecordSet{withWeight(base[0], weights[0]), withWeight(base[1], weights[1])}
		kept := driftLines(seen, now, weights, false)
		switch {
		case sameSet(now[0], target[0]) && sameSet(now[1], target[1]):
			return ChangeWeightsOutput{AlreadyApplied: true, From: target[0], To: target[1], Kept: kept}, nil
		case !sameSet(now[0], base[0]) || !sameSet(now[1], base[1]):
			return ChangeWeightsOutput{}, drifted(in.ZoneID, now, driftLines(seen, now, weights, true))
		}
		out, err := r.send(ctx, in.ZoneID, in.Comment, what, []types.Change{
			{Action: types.ChangeActionDelete, ResourceRecordSet: base[0].toSDK(base[0].Weight)},
			{Action: types.ChangeActionCreate, ResourceRecordSet: target[0].toSDK(target[0].Weight)},
			{Action: types.ChangeActionDelete, ResourceRecordSet: base[1].toSDK(base[1].Weight)},
			{Action: types.ChangeActionCreate, ResourceRecordSet: target[1].toSDK(target[1].Weight)},
		})
		if err == nil {
			out.From, out.To, out.Kept = target[0], target[1], kept
			return out, nil
		}
		if !errors.Is(err, errStale) {
			return ChangeWeightsOutput{}, err
		}
		// Changed between the read and the batch: the next read says how.
		if round == guardAttempts {
			// Retryable: the activity's retries (or keepTrying) read them again later.
			return ChangeWeightsOutput{}, fmt.Errorf("record sets kept changing between read and change (%d rounds): %w", round, err)
		}
		recordHeartbeat(ctx, fmt.Sprintf("%s: changed since read, reading again", what))
	}
}

// errStale marks a batch Route 53 refused because a DELETE did not match the record set as
// it is now (or it is gone): it was read before someone changed it.
var errStale = errors.New("a record set changed since it was read")

// send submits one batch and maps Route 53's refusals.
func (r *Route53) send(ctx context.Context, zoneID, comment, what string, changes []types.Change) (ChangeWeightsOutput, error) {
	req := &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID),
		ChangeBatch:  &types.ChangeBatch{Changes: changes},
	}
	if comment != "" {
		req.ChangeBatch.Comment = aws.String(comment)
	}
	var out *route53.ChangeResourceRecordSetsOutput
	err := r.throttled(ctx, what, func() error {
		var err error
		out, err = r.Client.ChangeResourceRecordSets(ctx, req)
		return err
	})
	if err != nil {
		var nz *types.NoSuchHostedZone
		var icb *types.InvalidChangeBatch
		switch {
		case errors.As(err, &nz):
			return ChangeWeightsOutput{}, permanent(ErrNoSuchZone, err, "%s: hosted zone not found", what)
		case (errors.As(err, &icb) || apiCode(err) == "InvalidChangeBatch") &&
			(strings.Contains(err.Error(), "do not match the current values") || strings.Contains(err.Error(), "but it was not found")):
			return ChangeWeightsOutput{}, fmt.Errorf("%s: %w: %s", what, errStale, apiText(err))
		case errors.As(err, &icb), apiCode(err) == "InvalidChangeBatch", apiCode(err) == "InvalidInput":
			return ChangeWeightsOutput{}, permanent(ErrInvalidChangeBatch, err, "%s: Route 53 refused the batch; run the plan again to re-read the record sets", what)
		}
		return ChangeWeightsOutput{}, err
	}
	info := out.ChangeInfo
	return ChangeWeightsOutput{
		ChangeID:    bareID(aws.ToString(info.Id)),
		Status:      string(info.Status),
		SubmittedAt: aws.ToTime(info.SubmittedAt),
	}, nil
}

// readSets reads the record sets from and to name, as they are now; one that is gone comes
// back without a SetIdentifier.
func (r *Route53) readSets(ctx context.Context, zoneID string, from, to RecordSet) ([2]RecordSet, error) {
	sets, err := r.listName(ctx, zoneID, fqdn(from.Name))
	if err != nil {
		return [2]RecordSet{}, err
	}
	var now [2]RecordSet
	for i, want := range [2]RecordSet{from, to} {
		for _, s := range sets {
			if s.SetIdentifier == want.SetIdentifier && s.Type == want.Type {
				now[i] = s
			}
		}
	}
	return now, nil
}

func withWeight(s RecordSet, w int64) RecordSet {
	s.Weight = w
	return s
}

// sameSet reports whether Route 53 would take a as naming b exactly (a DELETE of a
// matches b).
func sameSet(a, b RecordSet) bool {
	return a.SetIdentifier == b.SetIdentifier && a.Type == b.Type && fqdn(a.Name) == fqdn(b.Name) &&
		a.Weight == b.Weight && a.TTL == b.TTL && slices.Equal(a.Values, b.Values) &&
		a.HealthCheckID == b.HealthCheckID && sameAlias(a.Alias, b.Alias)
}

func sameAlias(a, b *Alias) bool {
	if a == nil || b == nil {
		return a == b
	}
	return fqdn(a.DNSName) == fqdn(b.DNSName) && a.HostedZoneID == b.HostedZoneID && a.EvaluateTargetHealth == b.EvaluateTargetHealth
}

// driftLines says how the record sets now differ from seen, one line per set that does,
// e.g. "www.shop.example. A eu-west-2: TTL 60 -> 300". A weight that is already the new
// one is ferry's own doing (its batch went in), so it is not named; with weights false no
// weight is named (a BaseCurrent batch sets them whatever they are).
func driftLines(seen, now [2]RecordSet, target [2]int64, weights bool) []string {
	var lines []string
	for i := range seen {
		was, is := seen[i], now[i]
		label := fmt.Sprintf("%s %s %s", was.Name, was.Type, was.SetIdentifier)
		if is.SetIdentifier == "" {
			lines = append(lines, label+": deleted")
			continue
		}
		var d []string
		if weights && is.Weight != was.Weight && is.Weight != target[i] {
			d = append(d, fmt.Sprintf("weight %d -> %d", was.Weight, is.Weight))
		}
		if is.TTL != was.TTL {
			d = append(d, fmt.Sprintf("TTL %d -> %d", was.TTL, is.TTL))
		}
		if !slices.Equal(is.Values, was.Values) {
			d = append(d, fmt.Sprintf("values %s -> %s", orNone(strings.Join(was.Values, ",")), orNone(strings.Join(is.Values, ","))))
		}
		if is.HealthCheckID != was.HealthCheckID {
			d = append(d, fmt.Sprintf("health check %s -> %s", orNone(was.HealthCheckID), orNone(is.HealthCheckID)))
		}
		if !sameAlias(was.Alias, is.Alias) {
			d = append(d, fmt.Sprintf("alias %s -> %s", aliasText(was.Alias), aliasText(is.Alias)))
		}
		if len(d) > 0 {
			lines = append(lines, label+": "+strings.Join(d, ", "))
		}
	}
	return lines
}

func drifted(zoneID string, now [2]RecordSet, lines []string) error {
	if len(lines) == 0 {
		// Equal field by field yet refused: say so rather than claim nothing differs.
		lines = []string{fmt.Sprintf("%s %s %s/%s: not as last seen", now[0].Name, now[0].Type, now[0].SetIdentifier, now[1].SetIdentifier)}
	}
	return temporal.NewNonRetryableApplicationError(strings.Join(lines, "; ")+" (changed outside ferry)", ErrRecordDrifted, nil,
		Drift{ZoneID: zoneID, From: now[0], To: now[1], Changes: lines})
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func aliasText(a *Alias) string {
	if a == nil {
		return "none"
	}
	return fmt.Sprintf("%s (%s, evaluate health %t)", a.DNSName, a.HostedZoneID, a.EvaluateTargetHealth)
}
