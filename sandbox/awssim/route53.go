package awssim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const r53NS = "https://route53.amazonaws.com/doc/2013-04-01/"

// r53State is the account's Route 53: global, so it has no region.
type r53State struct {
	zones        map[string]*zone
	zoneOrder    []string
	changes      map[string]*change
	healthChecks map[string]*healthCheck
	hcOrder      []string
	callerRefs   map[string]string // CreateHostedZone / CreateHealthCheck CallerReference -> id
}

func newR53State() *r53State {
	return &r53State{
		zones: map[string]*zone{}, changes: map[string]*change{},
		healthChecks: map[string]*healthCheck{}, callerRefs: map[string]string{},
	}
}

type zone struct {
	id, name, callerRef, comment string
	records                      []*rrset
	lastChange                   string
}

// sortRecords restores the listing order after records were added or replaced.
func (z *zone) sortRecords() { slices.SortFunc(z.records, compareRR) }

type change struct {
	id        string
	submitted time.Time
	insyncAt  time.Time
	comment   string
}

func (c *change) status(now time.Time) string {
	if now.Before(c.insyncAt) {
		return "PENDING"
	}
	return "INSYNC"
}

type r53Op struct {
	name     string
	mutating bool
	h        func(s *Server, q *req, id string) (any, int, *apiError)
}

// route53Route maps method and path to an operation; id is the path's resource id.
func route53Route(method, path string) (op r53Op, id string, ok bool) {
	p := strings.TrimPrefix(path, "/2013-04-01/")
	parts := strings.Split(strings.TrimSuffix(p, "/"), "/")
	// Ids sometimes arrive with their type prefix (/hostedzone/Z1): drop it.
	if len(parts) >= 3 && (parts[1] == "hostedzone" || parts[1] == "change" || parts[1] == "healthcheck") {
		parts = append(parts[:1], parts[2:]...)
	}
	switch {
	case len(parts) == 1 && parts[0] == "hostedzone" && method == "POST":
		return r53Op{"CreateHostedZone", true, (*Server).createHostedZone}, "", true
	case len(parts) == 1 && parts[0] == "hostedzone" && method == "GET":
		return r53Op{"ListHostedZones", false, (*Server).listHostedZones}, "", true
	case len(parts) == 1 && parts[0] == "hostedzonesbyname" && method == "GET":
		return r53Op{"ListHostedZonesByName", false, (*Server).listHostedZonesByName}, "", true
	case len(parts) == 2 && parts[0] == "hostedzone" && method == "GET":
		return r53Op{"GetHostedZone", false, (*Server).getHostedZone}, parts[1], true
	case len(parts) == 2 && parts[0] == "hostedzone" && method == "DELETE":
		return r53Op{"DeleteHostedZone", true, (*Server).deleteHostedZone}, parts[1], true
	case len(parts) == 3 && parts[0] == "hostedzone" && parts[2] == "rrset" && method == "GET":
		return r53Op{"ListResourceRecordSets", false, (*Server).listRecordSets}, parts[1], true
	case len(parts) == 3 && parts[0] == "hostedzone" && parts[2] == "rrset" && method == "POST":
		return r53Op{"ChangeResourceRecordSets", true, (*Server).changeRecordSets}, parts[1], true
	case len(parts) == 2 && parts[0] == "change" && method == "GET":
		return r53Op{"GetChange", false, (*Server).getChange}, parts[1], true
	case len(parts) == 1 && parts[0] == "healthcheck" && method == "POST":
		return r53Op{"CreateHealthCheck", true, (*Server).createHealthCheck}, "", true
	case len(parts) == 1 && parts[0] == "healthcheck" && method == "GET":
		return r53Op{"ListHealthChecks", false, (*Server).listHealthChecks}, "", true
	case len(parts) == 2 && parts[0] == "healthcheck" && method == "GET":
		return r53Op{"GetHealthCheck", false, (*Server).getHealthCheck}, parts[1], true
	case len(parts) == 2 && parts[0] == "healthcheck" && method == "DELETE":
		return r53Op{"DeleteHealthCheck", true, (*Server).deleteHealthCheck}, parts[1], true
	case len(parts) == 3 && parts[0] == "healthcheck" && parts[2] == "status" && method == "GET":
		return r53Op{"GetHealthCheckStatus", false, (*Server).getHealthCheckStatus}, parts[1], true
	}
	return r53Op{}, "", false
}

func (s *Server) serveRoute53(w http.ResponseWriter, q *req) {
	op, id, ok := route53Route(q.http.Method, q.http.URL.Path)
	if !ok {
		s.writeR53Error(w, q, &apiError{http.StatusNotFound, "UnknownOperationException",
			fmt.Sprintf("the sandbox does not simulate %s %s", q.http.Method, q.http.URL.Path)})
		return
	}
	q.op = op.name
	if e := s.before(q.http.Context(), q, op.mutating); e != nil {
		s.record(q, e)
		s.writeR53Error(w, q, e)
		return
	}
	if q.call != nil && id != "" {
		q.call.IDs = []string{id}
	}
	s.mu.Lock()
	out, status, e := op.h(s, q, id)
	s.mu.Unlock()
	s.record(q, e)
	if e != nil {
		s.writeR53Error(w, q, e)
		return
	}
	b, err := xml.Marshal(out)
	if err != nil {
		s.log.Error("encode route53 response", "err", err)
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-RequestId", q.id)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

type r53ErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	NS      string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string
		Code    string
		Message string
	}
	RequestID string `xml:"RequestId"`
}

func (s *Server) writeR53Error(w http.ResponseWriter, q *req, e *apiError) {
	var r r53ErrorResponse
	r.NS = r53NS
	r.Error.Type = "Sender"
	if e.status >= 500 {
		r.Error.Type = "Receiver"
	}
	r.Error.Code, r.Error.Message, r.RequestID = e.code, e.msg, q.id
	b, _ := xml.Marshal(r)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-RequestId", q.id)
	w.WriteHeader(e.status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

func invalidInput(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidInput", fmt.Sprintf(format, args...)}
}

func noSuchZone(id string) *apiError {
	return &apiError{http.StatusNotFound, "NoSuchHostedZone", "No hosted zone found with ID: " + id}
}

// normName lower-cases a DNS name and adds the trailing dot Route 53 always answers with.
func normName(n string) string {
	n = strings.ToLower(strings.TrimSpace(n))
	if !strings.HasSuffix(n, ".") {
		n += "."
	}
	return n
}

// newR53ID returns an id like Route 53's: an upper-case letter and 20 more characters.
func newR53ID(prefix string) string {
	return prefix + strings.ToUpper(randHex(20))
}

type xmlZone struct {
	ID              string `xml:"Id"`
	Name            string `xml:"Name"`
	CallerReference string `xml:"CallerReference"`
	Config          struct {
		Comment     string `xml:"Comment,omitempty"`
		PrivateZone bool   `xml:"PrivateZone"`
	} `xml:"Config"`
	ResourceRecordSetCount int `xml:"ResourceRecordSetCount"`
}

func zoneXML(z *zone) xmlZone {
	x := xmlZone{ID: "/hostedzone/" + z.id, Name: z.name, CallerReference: z.callerRef, ResourceRecordSetCount: len(z.records)}
	x.Config.Comment = z.comment
	return x
}

type xmlChangeInfo struct {
	ID          string `xml:"Id"`
	Status      string `xml:"Status"`
	SubmittedAt string `xml:"SubmittedAt"`
	Comment     string `xml:"Comment,omitempty"`
}

func (s *Server) changeXML(c *change) xmlChangeInfo {
	return xmlChangeInfo{ID: "/change/" + c.id, Status: c.status(s.now()), SubmittedAt: c.submitted.UTC().Format(time.RFC3339), Comment: c.comment}
}

func (s *Server) newChange(comment string) *change {
	now := s.now()
	c := &change{id: newR53ID("C"), submitted: now, insyncAt: now.Add(s.opts.Route53InsyncDelay), comment: comment}
	s.r53.changes[c.id] = c
	return c
}

var nameServers = []string{"ns-1.awsdns-01.org", "ns-2.awsdns-02.co.uk", "ns-3.awsdns-03.com", "ns-4.awsdns-04.net"}

// addZone creates a zone with the SOA and NS records Route 53 creates with every zone.
func (s *Server) addZone(id, name, callerRef, comment string) *zone {
	if id == "" {
		id = newR53ID("Z")
	}
	z := &zone{id: id, name: normName(name), callerRef: callerRef, comment: comment}
	var ns []string
	for _, n := range nameServers {
		ns = append(ns, n+".")
	}
	z.records = append(z.records,
		&rrset{name: z.name, typ: "NS", ttl: 172800, values: ns},
		&rrset{name: z.name, typ: "SOA", ttl: 900, values: []string{nameServers[0] + ". awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400"}},
	)
	z.sortRecords()
	s.r53.zones[id] = z
	s.r53.zoneOrder = append(s.r53.zoneOrder, id)
	return z
}

func (s *Server) createHostedZone(q *req, _ string) (any, int, *apiError) {
	var in struct {
		Name             string
		CallerReference  string
		HostedZoneConfig struct {
			Comment     string
			PrivateZone bool
		}
	}
	if err := xml.Unmarshal(q.body, &in); err != nil {
		return nil, 0, invalidInput("cannot parse request: %v", err)
	}
	if in.Name == "" {
		return nil, 0, invalidInput("1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null")
	}
	if in.CallerReference == "" {
		return nil, 0, invalidInput("1 validation error detected: Value null at 'callerReference' failed to satisfy constraint: Member must not be null")
	}
	if in.HostedZoneConfig.PrivateZone {
		return nil, 0, invalidInput("the sandbox simulates public hosted zones only")
	}
	if id, ok := s.r53.callerRefs["zone/"+in.CallerReference]; ok {
		return nil, 0, &apiError{http.StatusConflict, "HostedZoneAlreadyExists",
			fmt.Sprintf("A hosted zone has already been created with the specified caller reference (%s).", id)}
	}
	z := s.addZone("", in.Name, in.CallerReference, in.HostedZoneConfig.Comment)
	s.r53.callerRefs["zone/"+in.CallerReference] = z.id
	c := s.newChange("")
	z.lastChange = c.id
	q.call.IDs = []string{z.id, c.id}
	q.call.Params = map[string]string{"Name": z.name, "CallerReference": in.CallerReference}
	type ds struct {
		NameServers []string `xml:"NameServers>NameServer"`
	}
	return struct {
		XMLName    xml.Name      `xml:"CreateHostedZoneResponse"`
		NS         string        `xml:"xmlns,attr"`
		HostedZone xmlZone       `xml:"HostedZone"`
		ChangeInfo xmlChangeInfo `xml:"ChangeInfo"`
		Delegation ds            `xml:"DelegationSet"`
	}{NS: r53NS, HostedZone: zoneXML(z), ChangeInfo: s.changeXML(c), Delegation: ds{nameServers}}, http.StatusCreated, nil
}

func (s *Server) lookupZone(id string) (*zone, *apiError) {
	z, ok := s.r53.zones[id]
	if !ok {
		return nil, noSuchZone(id)
	}
	return z, nil
}

func (s *Server) getHostedZone(q *req, id string) (any, int, *apiError) {
	z, e := s.lookupZone(id)
	if e != nil {
		return nil, 0, e
	}
	type ds struct {
		NameServers []string `xml:"NameServers>NameServer"`
	}
	return struct {
		XMLName    xml.Name `xml:"GetHostedZoneResponse"`
		NS         string   `xml:"xmlns,attr"`
		HostedZone xmlZone  `xml:"HostedZone"`
		Delegation ds       `xml:"DelegationSet"`
	}{NS: r53NS, HostedZone: zoneXML(z), Delegation: ds{nameServers}}, http.StatusOK, nil
}

func (s *Server) deleteHostedZone(q *req, id string) (any, int, *apiError) {
	z, e := s.lookupZone(id)
	if e != nil {
		return nil, 0, e
	}
	if len(z.records) > 2 {
		return nil, 0, &apiError{http.StatusBadRequest, "HostedZoneNotEmpty",
			"The hosted zone contains resource record sets in addition to the default NS and SOA records."}
	}
	delete(s.r53.zones, id)
	for i, zid := range s.r53.zoneOrder {
		if zid == id {
			s.r53.zoneOrder = append(s.r53.zoneOrder[:i], s.r53.zoneOrder[i+1:]...)
			break
		}
	}
	c := s.newChange("")
	return struct {
		XMLName    xml.Name      `xml:"DeleteHostedZoneResponse"`
		NS         string        `xml:"xmlns,attr"`
		ChangeInfo xmlChangeInfo `xml:"ChangeInfo"`
	}{NS: r53NS, ChangeInfo: s.changeXML(c)}, http.StatusOK, nil
}

func maxItems(q *req, def int) (int, *apiError) {
	v := q.http.URL.Query().Get("maxitems")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, invalidInput("Invalid value for maxitems: %s", v)
	}
	return min(n, def), nil
}

func (s *Server) listHostedZones(q *req, _ string) (any, int, *apiError) {
	limit, e := maxItems(q, 100)
	if e != nil {
		return nil, 0, e
	}
	marker := q.http.URL.Query().Get("marker")
	started := marker == ""
	var out []xmlZone
	next := ""
	for _, id := range s.r53.zoneOrder {
		if !started {
			started = id == marker
			if !started {
				continue
			}
		}
		if len(out) == limit {
			next = id
			break
		}
		out = append(out, zoneXML(s.r53.zones[id]))
	}
	return struct {
		XMLName     xml.Name  `xml:"ListHostedZonesResponse"`
		NS          string    `xml:"xmlns,attr"`
		HostedZones []xmlZone `xml:"HostedZones>HostedZone"`
		Marker      string    `xml:"Marker"`
		IsTruncated bool      `xml:"IsTruncated"`
		NextMarker  string    `xml:"NextMarker,omitempty"`
		MaxItems    int       `xml:"MaxItems"`
	}{NS: r53NS, HostedZones: out, Marker: marker, IsTruncated: next != "", NextMarker: next, MaxItems: limit}, http.StatusOK, nil
}

// listHostedZonesByName orders zones by name with labels reversed, as Route 53 does.
func (s *Server) listHostedZonesByName(q *req, _ string) (any, int, *apiError) {
	limit, e := maxItems(q, 100)
	if e != nil {
		return nil, 0, e
	}
	dns := q.http.URL.Query().Get("dnsname")
	startID := q.http.URL.Query().Get("hostedzoneid")
	if startID != "" && dns == "" {
		return nil, 0, invalidInput("dnsname is required when hostedzoneid is given")
	}
	zs := make([]*zone, 0, len(s.r53.zones))
	for _, id := range s.r53.zoneOrder {
		zs = append(zs, s.r53.zones[id])
	}
	sortZones(zs)
	var out []xmlZone
	var nextName, nextID string
	for _, z := range zs {
		if dns != "" {
			k, start := reverseName(z.name), reverseName(normName(dns))
			if k < start || (k == start && startID != "" && z.id < startID) {
				continue
			}
		}
		if len(out) == limit {
			nextName, nextID = z.name, z.id
			break
		}
		out = append(out, zoneXML(z))
	}
	return struct {
		XMLName          xml.Name  `xml:"ListHostedZonesByNameResponse"`
		NS               string    `xml:"xmlns,attr"`
		HostedZones      []xmlZone `xml:"HostedZones>HostedZone"`
		DNSName          string    `xml:"DNSName,omitempty"`
		HostedZoneID     string    `xml:"HostedZoneId,omitempty"`
		IsTruncated      bool      `xml:"IsTruncated"`
		NextDNSName      string    `xml:"NextDNSName,omitempty"`
		NextHostedZoneID string    `xml:"NextHostedZoneId,omitempty"`
		MaxItems         int       `xml:"MaxItems"`
	}{NS: r53NS, HostedZones: out, DNSName: dns, HostedZoneID: startID, IsTruncated: nextName != "",
		NextDNSName: nextName, NextHostedZoneID: nextID, MaxItems: limit}, http.StatusOK, nil
}

func (s *Server) getChange(q *req, id string) (any, int, *apiError) {
	c, ok := s.r53.changes[id]
	if !ok {
		return nil, 0, &apiError{http.StatusNotFound, "NoSuchChange", "A change with the specified change ID does not exist."}
	}
	return struct {
		XMLName    xml.Name      `xml:"GetChangeResponse"`
		NS         string        `xml:"xmlns,attr"`
		ChangeInfo xmlChangeInfo `xml:"ChangeInfo"`
	}{NS: r53NS, ChangeInfo: s.changeXML(c)}, http.StatusOK, nil
}
