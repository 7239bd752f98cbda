package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// Simple (non-weighted) records, for the database cutover: the maintenance page and the
// database's DNS name each point at one value, and a switch replaces that value.

// ErrNoSuchRecord is a simple record that does not exist (non-retryable).
const ErrNoSuchRecord = "NoSuchRecord"

// ReadRecordInput names a simple record.
type ReadRecordInput struct {
	Zone string // name or id
	Name string
	Type string
}

// ReadRecordOutput is the record as read.
type ReadRecordOutput struct {
	ZoneID string
	Set    RecordSet
}

// ReadRecord resolves the zone and reads the simple record name/type; read-only.
func (r *Route53) ReadRecord(ctx context.Context, in ReadRecordInput) (ReadRecordOutput, error) {
	zoneID, _, err := r.resolveZone(ctx, in.Zone)
	if err != nil {
		return ReadRecordOutput{}, err
	}
	set, err := r.readSimple(ctx, zoneID, fqdn(in.Name), in.Type)
	if err != nil {
		return ReadRecordOutput{}, err
	}
	return ReadRecordOutput{ZoneID: zoneID, Set: set}, nil
}

func (r *Route53) readSimple(ctx context.Context, zoneID, name, typ string) (RecordSet, error) {
	sets, err := r.listName(ctx, zoneID, name)
	if err != nil {
		return RecordSet{}, err
	}
	for _, s := range sets {
		if s.Type == typ {
			if s.SetIdentifier != "" {
				return RecordSet{}, permanent(ErrBadInput, nil, "record %s %s in %s is weighted (set %s); the cutover repoints a simple record", name, typ, zoneID, s.SetIdentifier)
			}
			return s, nil
		}
	}
	return RecordSet{}, permanent(ErrNoSuchRecord, nil, "no %s record %s in zone %s; create it (or fix the spec's record)", typ, name, zoneID)
}

// SetRecordInput replaces a simple record's values.
type SetRecordInput struct {
	ZoneID string
	// Seen is the record as ferry last saw it; the batch changes it only if it still is.
	Seen    RecordSet
	Values  []string
	Comment string
}

// SetRecordOutput is the submitted change (no ChangeID when it was already applied).
type SetRecordOutput struct {
	ChangeID       string
	AlreadyApplied bool
	Set            RecordSet
}

// SetRecord replaces the record's values in one atomic batch that DELETEs it exactly as
// Seen and CREATEs it with Values (TTL and everything else kept), so Route 53 refuses the
// change if someone edited the record meanwhile (ErrRecordDrifted). A record that already
// has Values is left alone: an earlier attempt's batch went in.
func (r *Route53) SetRecord(ctx context.Context, in SetRecordInput) (SetRecordOutput, error) {
	if in.ZoneID == "" || in.Seen.Name == "" || len(in.Values) == 0 {
		return SetRecordOutput{}, badInput("set record: zone, record and values are required")
	}
	now, err := r.readSimple(ctx, in.ZoneID, in.Seen.Name, in.Seen.Type)
	if err != nil {
		return SetRecordOutput{}, err
	}
	target := now
	target.Values = slices.Clone(in.Values)
	switch {
	case sameSet(now, target):
		return SetRecordOutput{AlreadyApplied: true, Set: now}, nil
	case !sameSet(now, in.Seen):
		return SetRecordOutput{}, permanent(ErrRecordDrifted, nil, "record %s %s changed outside ferry: expected %s, found %s; check who changed it",
			now.Name, now.Type, strings.Join(in.Seen.SortedValues(), ","), strings.Join(now.SortedValues(), ","))
	}
	what := fmt.Sprintf("point %s %s at %s", now.Name, now.Type, strings.Join(in.Values, ","))
	out, err := r.send(ctx, in.ZoneID, in.Comment, what, []types.Change{
		{Action: types.ChangeActionDelete, ResourceRecordSet: now.simpleSDK()},
		{Action: types.ChangeActionCreate, ResourceRecordSet: target.simpleSDK()},
	})
	if err != nil {
		return SetRecordOutput{}, err
	}
	return SetRecordOutput{ChangeID: out.ChangeID, Set: target}, nil
}

func (s RecordSet) simpleSDK() *types.ResourceRecordSet {
	rr := &types.ResourceRecordSet{Name: aws.String(s.Name), Type: types.RRType(s.Type), TTL: aws.Int64(s.TTL)}
	for _, v := range s.Values {
		rr.ResourceRecords = append(rr.ResourceRecords, types.ResourceRecord{Value: aws.String(v)})
	}
	if s.HealthCheckID != "" {
		rr.HealthCheckId = aws.String(s.HealthCheckID)
	}
	return rr
}
