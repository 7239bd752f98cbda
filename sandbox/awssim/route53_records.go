package awssim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

type rrset struct {
	name, typ, setID string
	rev              string // reverseName(name), cached by revName: listings compare it often
	weight           *int64
	ttl              int64
	values           []string
	healthCheckID    string
	alias            *xmlAlias
}

type xmlAlias struct {
	HostedZoneID         string `xml:"HostedZoneId"`
	DNSName              string `xml:"DNSName"`
	EvaluateTargetHealth bool   `xml:"EvaluateTargetHealth"`
}

func (r *rrset) key() string { return r.name + "|" + r.typ + "|" + r.setID }

// describe names a record set the way Route 53's error messages do.
func (r *rrset) describe() string {
	if r.setID != "" {
		return fmt.Sprintf("[name='%s', type='%s', set-identifier='%s']", r.name, r.typ, r.setID)
	}
	return fmt.Sprintf("[name='%s', type='%s']", r.name, r.typ)
}

// reverseName turns www.shop.example. into example.shop.www, the key Route 53 sorts by.
func reverseName(n string) string {
	labels := strings.Split(strings.TrimSuffix(n, "."), ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

func sortZones(zs []*zone) {
	slices.SortStableFunc(zs, func(a, b *zone) int {
		return strings.Compare(reverseName(a.name), reverseName(b.name))
	})
}

// revName returns the reversed name, computing it once per record set.
func (r *rrset) revName() string {
	if r.rev == "" {
		r.rev = reverseName(r.name)
	}
	return r.rev
}

// compareRR is Route 53's listing order: reversed name, then type, then set identifier.
// A zone keeps its records in this order (sortRecords), so a listing is a binary search and
// a walk rather than a sort of the whole zone per request.
func compareRR(a, b *rrset) int {
	if c := strings.Compare(a.revName(), b.revName()); c != 0 {
		return c
	}
	if c := strings.Compare(a.typ, b.typ); c != 0 {
		return c
	}
	return strings.Compare(a.setID, b.setID)
}

type xmlRR struct {
	Value string `xml:"Value"`
}

type xmlRRSet struct {
	Name            string    `xml:"Name"`
	Type            string    `xml:"Type"`
	SetIdentifier   string    `xml:"SetIdentifier,omitempty"`
	Weight          *int64    `xml:"Weight,omitempty"`
	AliasTarget     *xmlAlias `xml:"AliasTarget,omitempty"`
	TTL             *int64    `xml:"TTL,omitempty"`
	ResourceRecords []xmlRR   `xml:"ResourceRecords>ResourceRecord,omitempty"`
	HealthCheckID   string    `xml:"HealthCheckId,omitempty"`
}

func rrXML(r *rrset) xmlRRSet {
	x := xmlRRSet{Name: r.name, Type: r.typ, SetIdentifier: r.setID, Weight: r.weight, HealthCheckID: r.healthCheckID, AliasTarget: r.alias}
	if r.alias == nil {
		ttl := r.ttl
		x.TTL = &ttl
		for _, v := range r.values {
			x.ResourceRecords = append(x.ResourceRecords, xmlRR{v})
		}
	}
	return x
}

func (s *Server) listRecordSets(q *req, id string) (any, int, *apiError) {
	z, e := s.lookupZone(id)
	if e != nil {
		return nil, 0, e
	}
	limit, e := maxItems(q, 300)
	if e != nil {
		return nil, 0, e
	}
	qs := q.http.URL.Query()
	startName, startType, startID := qs.Get("name"), qs.Get("type"), qs.Get("identifier")
	if startType != "" && startName == "" {
		return nil, 0, invalidInput("The input is not valid: type requires name")
	}
	if startID != "" && startType == "" {
		return nil, 0, invalidInput("The input is not valid: identifier requires type")
	}
	// The first record at or after (name, type, identifier): an empty type or identifier
	// sorts before every value, which is what Route 53's "start here" means.
	from := 0
	if startName != "" {
		from, _ = slices.BinarySearchFunc(z.records, &rrset{name: normName(startName), typ: startType, setID: startID}, compareRR)
	}
	var out []xmlRRSet
	var next *rrset
	for _, r := range z.records[from:] {
		if len(out) == limit {
			next = r
			break
		}
		out = append(out, rrXML(r))
	}
	type result struct {
		XMLName              xml.Name   `xml:"ListResourceRecordSetsResponse"`
		NS                   string     `xml:"xmlns,attr"`
		ResourceRecordSets   []xmlRRSet `xml:"ResourceRecordSets>ResourceRecordSet"`
		IsTruncated          bool       `xml:"IsTruncated"`
		NextRecordName       string     `xml:"NextRecordName,omitempty"`
		NextRecordType       string     `xml:"NextRecordType,omitempty"`
		NextRecordIdentifier string     `xml:"NextRecordIdentifier,omitempty"`
		MaxItems             string     `xml:"MaxItems"`
	}
	res := result{NS: r53NS, ResourceRecordSets: out, MaxItems: strconv.Itoa(limit)}
	if next != nil {
		res.IsTruncated = true
		res.NextRecordName, res.NextRecordType, res.NextRecordIdentifier = next.name, next.typ, next.setID
	}
	return res, http.StatusOK, nil
}

type xmlChangeRequest struct {
	ChangeBatch struct {
		Comment string `xml:"Comment"`
		Changes []struct {
			Action            string `xml:"Action"`
			ResourceRecordSet struct {
				Name            string    `xml:"Name"`
				Type            string    `xml:"Type"`
				SetIdentifier   string    `xml:"SetIdentifier"`
				Weight          *int64    `xml:"Weight"`
				TTL             *int64    `xml:"TTL"`
				ResourceRecords []xmlRR   `xml:"ResourceRecords>ResourceRecord"`
				HealthCheckID   string    `xml:"HealthCheckId"`
				AliasTarget     *xmlAlias `xml:"AliasTarget"`
				Region          string    `xml:"Region"`
				Failover        string    `xml:"Failover"`
			} `xml:"ResourceRecordSet"`
		} `xml:"Changes>Change"`
	} `xml:"ChangeBatch"`
}

var knownTypes = map[string]bool{"A": true, "AAAA": true, "CAA": true, "CNAME": true, "DS": true, "MX": true,
	"NAPTR": true, "NS": true, "PTR": true, "SOA": true, "SPF": true, "SRV": true, "TXT": true}

// changeRecordSets validates the whole batch against a copy of the zone and only then
// swaps it in: Route 53 applies a batch entirely or not at all, which is what lets a
// weighted shift move both weights in one step.
func (s *Server) changeRecordSets(q *req, id string) (any, int, *apiError) {
	z, e := s.lookupZone(id)
	if e != nil {
		return nil, 0, e
	}
	if s.opts.PriorRequestNotComplete && z.lastChange != "" {
		if c := s.r53.changes[z.lastChange]; c != nil && c.status(s.now()) == "PENDING" {
			return nil, 0, &apiError{http.StatusBadRequest, "PriorRequestNotComplete",
				"The request was rejected because Route 53 was still processing a prior request."}
		}
	}
	var in xmlChangeRequest
	if err := xml.Unmarshal(q.body, &in); err != nil {
		return nil, 0, invalidInput("Invalid XML ; %v", err)
	}
	changes := in.ChangeBatch.Changes
	if len(changes) == 0 {
		return nil, 0, invalidInput("1 validation error detected: Value '[]' at 'changeBatch.changes' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	params := map[string]string{"Comment": in.ChangeBatch.Comment}
	for i, c := range changes {
		p := "Change." + strconv.Itoa(i+1) + "."
		rs := c.ResourceRecordSet
		params[p+"Action"] = c.Action
		params[p+"Name"] = normName(rs.Name)
		params[p+"Type"] = rs.Type
		if rs.SetIdentifier != "" {
			params[p+"SetIdentifier"] = rs.SetIdentifier
		}
		if rs.Weight != nil {
			params[p+"Weight"] = strconv.FormatInt(*rs.Weight, 10)
		}
		var vals []string
		for _, v := range rs.ResourceRecords {
			vals = append(vals, v.Value)
		}
		params[p+"Values"] = strings.Join(vals, ",")
	}
	q.call.Params = params

	// Syntax errors (InvalidInput) come before semantic ones (InvalidChangeBatch).
	parsed := make([]*rrset, len(changes))
	for i, c := range changes {
		rs := c.ResourceRecordSet
		field := fmt.Sprintf("changeBatch.changes.%d.member", i+1)
		switch c.Action {
		case "CREATE", "DELETE", "UPSERT":
		default:
			return nil, 0, invalidInput("1 validation error detected: Value '%s' at '%s.action' failed to satisfy constraint: Member must satisfy enum value set: [CREATE, DELETE, UPSERT]", c.Action, field)
		}
		if !knownTypes[rs.Type] {
			return nil, 0, invalidInput("1 validation error detected: Value '%s' at '%s.resourceRecordSet.type' failed to satisfy constraint: Member must satisfy enum value set", rs.Type, field)
		}
		if rs.Weight != nil && (*rs.Weight < 0 || *rs.Weight > 255) {
			return nil, 0, invalidInput("1 validation error detected: Value '%d' at '%s.resourceRecordSet.weight' failed to satisfy constraint: Member must have value %s", *rs.Weight, field,
				map[bool]string{true: "greater than or equal to 0", false: "less than or equal to 255"}[*rs.Weight < 0])
		}
		if rs.TTL != nil && (*rs.TTL < 0 || *rs.TTL > 2147483647) {
			return nil, 0, invalidInput("1 validation error detected: Value '%d' at '%s.resourceRecordSet.TTL' failed to satisfy constraint: Member must have value between 0 and 2147483647", *rs.TTL, field)
		}
		if rs.Region != "" || rs.Failover != "" {
			return nil, 0, invalidInput("the sandbox simulates simple and weighted routing only")
		}
		r := &rrset{name: normName(rs.Name), typ: rs.Type, setID: rs.SetIdentifier, weight: rs.Weight, healthCheckID: rs.HealthCheckID, alias: rs.AliasTarget}
		if r.alias != nil {
			r.alias.DNSName = normName(r.alias.DNSName)
		}
		if rs.TTL != nil {
			r.ttl = *rs.TTL
		}
		for _, v := range rs.ResourceRecords {
			r.values = append(r.values, v.Value)
		}
		desc := fmt.Sprintf("[Action=%s, Name=%s, Type=%s", c.Action, r.name, r.typ)
		if r.setID != "" {
			desc += ", SetIdentifier=" + r.setID
		}
		desc += "]"
		switch {
		case r.setID != "" && r.weight == nil:
			return nil, 0, invalidInput("Invalid request: Missing field 'Weight' in Change with %s", desc)
		case r.setID == "" && r.weight != nil:
			return nil, 0, invalidInput("Invalid request: Missing field 'SetIdentifier' in Change with %s", desc)
		case r.alias == nil && (rs.TTL == nil || len(r.values) == 0):
			return nil, 0, invalidInput("Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with %s", desc)
		case r.alias != nil && (rs.TTL != nil || len(r.values) > 0):
			return nil, 0, invalidInput("Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found more than one in Change with %s", desc)
		}
		if r.healthCheckID != "" {
			if _, ok := s.r53.healthChecks[r.healthCheckID]; !ok {
				return nil, 0, &apiError{http.StatusBadRequest, "NoSuchHealthCheck",
					fmt.Sprintf("A health check with id %s does not exist.", r.healthCheckID)}
			}
		}
		parsed[i] = r
	}

	work := slices.Clone(z.records)
	index := func(r *rrset) int {
		return slices.IndexFunc(work, func(o *rrset) bool { return o.name == r.name && o.typ == r.typ && o.setID == r.setID })
	}
	var msgs []string
	// seen is the action of each record set's last change in the batch. A set may appear
	// twice only as a DELETE followed by a CREATE: the way Route 53 documents replacing a
	// record in one atomic batch (and the way a DELETE that must match the current values
	// guards the CREATE after it). Any other repeat is an invalid set of changes.
	seen := map[string]string{}
	for i, c := range changes {
		r := parsed[i]
		if prev, ok := seen[r.key()]; ok && !(prev == "DELETE" && c.Action == "CREATE") {
			msgs = append(msgs, fmt.Sprintf("The request contains an invalid set of changes for a resource record set '%s %s'", r.typ, r.name))
			continue
		}
		seen[r.key()] = c.Action
		if r.name != z.name && !strings.HasSuffix(r.name, "."+z.name) {
			msgs = append(msgs, fmt.Sprintf("RRSet with DNS name %s is not permitted in zone %s", r.name, z.name))
			continue
		}
		if c.Action != "DELETE" {
			if m := mixCheck(work, r); m != "" {
				msgs = append(msgs, m)
				continue
			}
		}
		at := index(r)
		switch c.Action {
		case "CREATE":
			if at >= 0 {
				msgs = append(msgs, fmt.Sprintf("Tried to create resource record set %s but it already exists", r.describe()))
				continue
			}
			work = append(work, r)
		case "UPSERT":
			if at >= 0 {
				work[at] = r
			} else {
				work = append(work, r)
			}
		case "DELETE":
			if at < 0 {
				msgs = append(msgs, fmt.Sprintf("Tried to delete resource record set %s but it was not found", r.describe()))
				continue
			}
			if !sameRecord(work[at], r) {
				msgs = append(msgs, fmt.Sprintf("Tried to delete resource record set %s but the values provided do not match the current values", r.describe()))
				continue
			}
			if r.typ == "SOA" || (r.typ == "NS" && r.name == z.name) {
				msgs = append(msgs, "A HostedZone must contain at least one NS record for the zone itself and exactly one SOA record.")
				continue
			}
			work = slices.Delete(work, at, at+1)
		}
	}
	if len(msgs) > 0 {
		return nil, 0, &apiError{http.StatusBadRequest, "InvalidChangeBatch", "[" + strings.Join(msgs, ", ") + "]"}
	}
	z.records = work
	z.sortRecords()
	ch := s.newChange(in.ChangeBatch.Comment)
	z.lastChange = ch.id
	q.call.IDs = []string{z.id, ch.id}
	s.log.Info("route53 change", "zone", z.name, "change", ch.id, "changes", len(changes))
	return struct {
		XMLName    xml.Name      `xml:"ChangeResourceRecordSetsResponse"`
		NS         string        `xml:"xmlns,attr"`
		ChangeInfo xmlChangeInfo `xml:"ChangeInfo"`
	}{NS: r53NS, ChangeInfo: s.changeXML(ch)}, http.StatusOK, nil
}

// mixCheck refuses a weighted set next to a simple one of the same name and type (and the
// reverse), as Route 53 does.
func mixCheck(work []*rrset, r *rrset) string {
	for _, o := range work {
		if o.name != r.name || o.typ != r.typ || o.key() == r.key() {
			continue
		}
		if (o.setID == "") != (r.setID == "") {
			kind := map[bool]string{true: "weighted", false: "non-weighted"}
			return fmt.Sprintf("RRSet with DNS name %s, type %s cannot be created as a %s set exists with the same name and type.",
				r.name, r.typ, kind[o.setID != ""])
		}
		if r.setID == "" {
			return fmt.Sprintf("Tried to create resource record set %s but it already exists", r.describe())
		}
	}
	if r.typ == "CNAME" {
		for _, o := range work {
			if o.name == r.name && o.typ != "CNAME" {
				return fmt.Sprintf("RRSet of type CNAME with DNS name %s is not permitted as it conflicts with other records with the same DNS name in zone", r.name)
			}
		}
	}
	return ""
}

func sameRecord(a, b *rrset) bool {
	if a.ttl != b.ttl || !slices.Equal(a.values, b.values) || a.healthCheckID != b.healthCheckID {
		return false
	}
	if (a.weight == nil) != (b.weight == nil) || (a.weight != nil && *a.weight != *b.weight) {
		return false
	}
	return (a.alias == nil) == (b.alias == nil) && (a.alias == nil || *a.alias == *b.alias)
}

// WeightedAnswer is one record set of a name, as a resolver sees it.
type WeightedAnswer struct {
	SetIdentifier string
	Weight        int64 // -1 for a simple (non-weighted) record
	TTL           int64
	Values        []string
	// Healthy is false when the set has a health check that is failing.
	Healthy bool
}

// Resolve returns the record sets of a name and type across all zones, for the
// simulated client population (which picks among them the way Route 53 answers).
func (s *Server) Resolve(name, typ string) []WeightedAnswer {
	name = normName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []WeightedAnswer
	for _, zid := range s.r53.zoneOrder {
		for _, r := range s.r53.zones[zid].records {
			if r.name != name || r.typ != typ {
				continue
			}
			a := WeightedAnswer{SetIdentifier: r.setID, Weight: -1, TTL: r.ttl, Values: slices.Clone(r.values), Healthy: true}
			if r.weight != nil {
				a.Weight = *r.weight
			}
			if r.healthCheckID != "" {
				if hc := s.r53.healthChecks[r.healthCheckID]; hc != nil {
					a.Healthy = s.hcHealthy(hc)
				}
			}
			out = append(out, a)
		}
	}
	return out
}
