package activities

import (
	"context"
	"strings"
)

// RecordRef names a weighted record (a GameDay charts its migration's DNS record).
type RecordRef struct {
	Zone, Name, Type string
}

// ReadWeights returns the record's weights by set identifier, as Route 53 answers now.
func (r *Route53) ReadWeights(ctx context.Context, ref RecordRef) (map[string]int64, error) {
	zoneID, _, err := r.resolveZone(ctx, ref.Zone)
	if err != nil {
		return nil, err
	}
	sets, err := r.listName(ctx, zoneID, fqdn(ref.Name))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, s := range sets {
		if strings.EqualFold(s.Type, ref.Type) && s.SetIdentifier != "" {
			out[s.SetIdentifier] = s.Weight
		}
	}
	return out, nil
}
