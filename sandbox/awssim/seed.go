package awssim

import (
	"fmt"
	"strings"

	"github.com/ferryhq/ferry/sandbox/topology"
)

// Seed creates the topology's resources: images (available at once), KMS keys, hosted
// zones with their records, health checks and alarms. Seeding is not recorded as calls.
func (s *Server) Seed(t *topology.Topology) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range t.KMSKeys {
		rg, ok := s.ec2[k.Region]
		if !ok {
			return fmt.Errorf("seed kms key %s: region %s not served", k.ID, k.Region)
		}
		arn := fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", k.Region, s.opts.Account, k.ID)
		rg.kmsKeys[k.ID], rg.kmsKeys[arn] = true, true
		if k.Alias != "" {
			rg.kmsKeys[k.Alias] = true
			rg.kmsKeys[fmt.Sprintf("arn:aws:kms:%s:%s:%s", k.Region, s.opts.Account, k.Alias)] = true
		}
	}
	now := s.now()
	for _, ti := range t.Images {
		rg, ok := s.ec2[ti.Region]
		if !ok {
			return fmt.Errorf("seed image %s: region %s not served", ti.Name, ti.Region)
		}
		im := s.newImage(rg, ti.Name, ti.Description, ti.SizeGiB, ti.Encrypted, kmsValue(ti.Encrypted, orDefault(ti.KMSKeyID, "alias/aws/ebs")), copyTags(ti.Tags))
		im.availableAt = now
		rg.snapshots[im.snapshotID].completeAt = now
		if ti.ID != "" {
			delete(rg.images, im.id)
			im.id = ti.ID
			rg.images[im.id] = im
			rg.snapshots[im.snapshotID].description = "Created by CreateImage for " + im.id
		}
	}
	hcByName := map[string]string{}
	for _, h := range t.HealthChecks {
		cfg := xmlHCConfig{Type: orDefault(h.Type, "HTTP"), ResourcePath: h.ResourcePath, FullyQualifiedDomainName: h.FQDN,
			RequestInterval: 30, FailureThreshold: int(h.FailureThreshold), Port: 80}
		if cfg.FailureThreshold == 0 {
			cfg.FailureThreshold = 3
		}
		if h.App != "" {
			if app, ok := t.AppFor(h.App); ok {
				cfg.IPAddress = app.Address
			}
			if cfg.ResourcePath == "" {
				cfg.ResourcePath = "/_apps/" + h.App + "/healthz"
			}
		}
		hc := s.addHealthCheck(h.ID, "sandbox-"+h.Name, h.App, cfg)
		s.r53.callerRefs["hc/"+hc.callerRef] = hc.id
		hcByName[h.Name] = hc.id
	}
	for _, tz := range t.HostedZones {
		z := s.addZone(tz.ID, tz.Name, "sandbox-"+strings.TrimSuffix(tz.Name, "."), "created by the sandbox topology")
		s.r53.callerRefs["zone/"+z.callerRef] = z.id
		for _, r := range tz.Records {
			ttl := r.TTL
			if ttl == 0 {
				ttl = 300
			}
			if len(r.Values) > 0 {
				z.records = append(z.records, &rrset{name: normName(r.Name), typ: r.Type, ttl: ttl, values: r.Values})
			}
			for _, w := range r.Weighted {
				wt := w.Weight
				z.records = append(z.records, &rrset{name: normName(r.Name), typ: r.Type, setID: w.SetIdentifier,
					weight: &wt, ttl: ttl, values: w.Values, healthCheckID: hcByName[w.HealthCheck]})
			}
		}
		z.sortRecords()
	}
	for _, ta := range t.Alarms {
		rg, ok := s.cw[ta.Region]
		if !ok {
			return fmt.Errorf("seed alarm %s: region %s not served", ta.Name, ta.Region)
		}
		th := ta.Threshold
		if th == 0 {
			th = 0.05
		}
		rg.alarms[ta.Name] = &alarm{
			name: ta.Name, metric: orDefault(ta.Metric, "5XXErrorRate"), namespace: orDefault(ta.Namespace, "Sandbox/App"),
			comparison: "GreaterThanThreshold", statistic: "Average", threshold: th, evaluationPeriods: 1, period: 60,
			state: "INSUFFICIENT_DATA", reason: "Unchecked: Initial alarm creation", updated: now,
			app: ta.App, appThreshold: th,
		}
	}
	return nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// ZoneID returns the id of the hosted zone with the given name.
func (s *Server) ZoneID(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.r53.zoneOrder {
		if s.r53.zones[id].name == normName(name) {
			return id, true
		}
	}
	return "", false
}
