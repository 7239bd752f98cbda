package awssim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
	"time"
)

type healthCheck struct {
	id, callerRef string
	config        xmlHCConfig
	// app is the region whose app the check watches; empty means always healthy.
	app string
}

type xmlHCConfig struct {
	IPAddress                string `xml:"IPAddress,omitempty"`
	Port                     int    `xml:"Port,omitempty"`
	Type                     string `xml:"Type"`
	ResourcePath             string `xml:"ResourcePath,omitempty"`
	FullyQualifiedDomainName string `xml:"FullyQualifiedDomainName,omitempty"`
	RequestInterval          int    `xml:"RequestInterval,omitempty"`
	FailureThreshold         int    `xml:"FailureThreshold,omitempty"`
}

type xmlHealthCheck struct {
	ID                 string      `xml:"Id"`
	CallerReference    string      `xml:"CallerReference"`
	HealthCheckConfig  xmlHCConfig `xml:"HealthCheckConfig"`
	HealthCheckVersion int         `xml:"HealthCheckVersion"`
}

func hcXML(h *healthCheck) xmlHealthCheck {
	return xmlHealthCheck{ID: h.id, CallerReference: h.callerRef, HealthCheckConfig: h.config, HealthCheckVersion: 1}
}

// appOfPath recognises a health check aimed at a sandbox app: /_apps/{region}/healthz.
func appOfPath(p string) string {
	rest, ok := strings.CutPrefix(p, "/_apps/")
	if !ok {
		return ""
	}
	region, _, _ := strings.Cut(rest, "/")
	return region
}

func (s *Server) hcHealthy(h *healthCheck) bool {
	if h.app == "" || s.opts.AppHealthy == nil {
		return true
	}
	return s.opts.AppHealthy(h.app)
}

func (s *Server) addHealthCheck(id, callerRef, app string, cfg xmlHCConfig) *healthCheck {
	if id == "" {
		id = newUUID()
	}
	h := &healthCheck{id: id, callerRef: callerRef, config: cfg, app: app}
	s.r53.healthChecks[id] = h
	s.r53.hcOrder = append(s.r53.hcOrder, id)
	return h
}

func (s *Server) createHealthCheck(q *req, _ string) (any, int, *apiError) {
	var in struct {
		CallerReference   string
		HealthCheckConfig xmlHCConfig
	}
	if err := xml.Unmarshal(q.body, &in); err != nil {
		return nil, 0, invalidInput("Invalid XML ; %v", err)
	}
	if in.CallerReference == "" {
		return nil, 0, invalidInput("1 validation error detected: Value null at 'callerReference' failed to satisfy constraint: Member must not be null")
	}
	switch in.HealthCheckConfig.Type {
	case "HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP":
	default:
		return nil, 0, invalidInput("1 validation error detected: Value '%s' at 'healthCheckConfig.type' failed to satisfy constraint: Member must satisfy enum value set", in.HealthCheckConfig.Type)
	}
	if id, ok := s.r53.callerRefs["hc/"+in.CallerReference]; ok {
		h := s.r53.healthChecks[id]
		if h != nil && h.config == in.HealthCheckConfig {
			// Same reference and config: Route 53 returns the existing check.
			q.call.Replay = true
			q.call.IDs = []string{id}
			return struct {
				XMLName     xml.Name       `xml:"CreateHealthCheckResponse"`
				NS          string         `xml:"xmlns,attr"`
				HealthCheck xmlHealthCheck `xml:"HealthCheck"`
			}{NS: r53NS, HealthCheck: hcXML(h)}, http.StatusCreated, nil
		}
		return nil, 0, &apiError{http.StatusConflict, "HealthCheckAlreadyExists",
			fmt.Sprintf("A health check with caller reference %s already exists with a different configuration.", in.CallerReference)}
	}
	if in.HealthCheckConfig.RequestInterval == 0 {
		in.HealthCheckConfig.RequestInterval = 30
	}
	if in.HealthCheckConfig.FailureThreshold == 0 {
		in.HealthCheckConfig.FailureThreshold = 3
	}
	h := s.addHealthCheck("", in.CallerReference, appOfPath(in.HealthCheckConfig.ResourcePath), in.HealthCheckConfig)
	s.r53.callerRefs["hc/"+in.CallerReference] = h.id
	q.call.IDs = []string{h.id}
	return struct {
		XMLName     xml.Name       `xml:"CreateHealthCheckResponse"`
		NS          string         `xml:"xmlns,attr"`
		HealthCheck xmlHealthCheck `xml:"HealthCheck"`
	}{NS: r53NS, HealthCheck: hcXML(h)}, http.StatusCreated, nil
}

func (s *Server) lookupHC(id string) (*healthCheck, *apiError) {
	h, ok := s.r53.healthChecks[id]
	if !ok {
		return nil, &apiError{http.StatusNotFound, "NoSuchHealthCheck", fmt.Sprintf("A health check with id %s does not exist.", id)}
	}
	return h, nil
}

func (s *Server) getHealthCheck(q *req, id string) (any, int, *apiError) {
	h, e := s.lookupHC(id)
	if e != nil {
		return nil, 0, e
	}
	return struct {
		XMLName     xml.Name       `xml:"GetHealthCheckResponse"`
		NS          string         `xml:"xmlns,attr"`
		HealthCheck xmlHealthCheck `xml:"HealthCheck"`
	}{NS: r53NS, HealthCheck: hcXML(h)}, http.StatusOK, nil
}

func (s *Server) deleteHealthCheck(q *req, id string) (any, int, *apiError) {
	if _, e := s.lookupHC(id); e != nil {
		return nil, 0, e
	}
	for _, z := range s.r53.zones {
		for _, r := range z.records {
			if r.healthCheckID == id {
				return nil, 0, &apiError{http.StatusBadRequest, "HealthCheckInUse",
					fmt.Sprintf("The health check %s is still referenced from %s", id, r.describe())}
			}
		}
	}
	delete(s.r53.healthChecks, id)
	for i, x := range s.r53.hcOrder {
		if x == id {
			s.r53.hcOrder = append(s.r53.hcOrder[:i], s.r53.hcOrder[i+1:]...)
			break
		}
	}
	return struct {
		XMLName xml.Name `xml:"DeleteHealthCheckResponse"`
		NS      string   `xml:"xmlns,attr"`
	}{NS: r53NS}, http.StatusOK, nil
}

func (s *Server) listHealthChecks(q *req, _ string) (any, int, *apiError) {
	limit, e := maxItems(q, 1000)
	if e != nil {
		return nil, 0, e
	}
	marker := q.http.URL.Query().Get("marker")
	started := marker == ""
	var out []xmlHealthCheck
	next := ""
	for _, id := range s.r53.hcOrder {
		if !started {
			if started = id == marker; !started {
				continue
			}
		}
		if len(out) == limit {
			next = id
			break
		}
		out = append(out, hcXML(s.r53.healthChecks[id]))
	}
	return struct {
		XMLName      xml.Name         `xml:"ListHealthChecksResponse"`
		NS           string           `xml:"xmlns,attr"`
		HealthChecks []xmlHealthCheck `xml:"HealthChecks>HealthCheck"`
		Marker       string           `xml:"Marker"`
		IsTruncated  bool             `xml:"IsTruncated"`
		NextMarker   string           `xml:"NextMarker,omitempty"`
		MaxItems     int              `xml:"MaxItems"`
	}{NS: r53NS, HealthChecks: out, Marker: marker, IsTruncated: next != "", NextMarker: next, MaxItems: limit}, http.StatusOK, nil
}

// Route 53 checks from several regions; the sandbox reports the same result from three.
var checkerRegions = []struct{ region, ip string }{
	{"us-east-1", "54.243.31.192"}, {"eu-west-1", "176.34.159.192"}, {"ap-southeast-1", "54.255.254.192"},
}

func (s *Server) getHealthCheckStatus(q *req, id string) (any, int, *apiError) {
	h, e := s.lookupHC(id)
	if e != nil {
		return nil, 0, e
	}
	status := "Success: HTTP Status Code 200, OK"
	if !s.hcHealthy(h) {
		status = "Failure: HTTP Status Code 503, Service Unavailable"
	}
	type report struct {
		Status      string `xml:"Status"`
		CheckedTime string `xml:"CheckedTime"`
	}
	type obs struct {
		Region       string `xml:"Region"`
		IPAddress    string `xml:"IPAddress"`
		StatusReport report `xml:"StatusReport"`
	}
	var out []obs
	for _, c := range checkerRegions {
		out = append(out, obs{c.region, c.ip, report{status, s.now().UTC().Format(time.RFC3339)}})
	}
	return struct {
		XMLName      xml.Name `xml:"GetHealthCheckStatusResponse"`
		NS           string   `xml:"xmlns,attr"`
		Observations []obs    `xml:"HealthCheckObservations>HealthCheckObservation"`
	}{NS: r53NS, Observations: out}, http.StatusOK, nil
}

func newUUID() string {
	h := randHex(32)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}
