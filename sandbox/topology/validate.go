package topology

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// DefaultAccount is the account id the sandbox answers with when none is given.
const DefaultAccount = "000000000000"

var (
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	regionRE  = regexp.MustCompile(`^[a-z]{2}(-gov)?-[a-z]+-[0-9]$`)
	amiRE     = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
)

// Validate checks the topology and names the first offending field of each problem,
// e.g. "images[1].region: unknown region eu-west-9".
func (t *Topology) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if !accountRE.MatchString(t.Account) {
		bad("account", "must be 12 digits, got %q", t.Account)
	}
	if len(t.Regions) == 0 {
		bad("regions", "at least one region is required")
	}
	seen := map[string]bool{}
	for i, r := range t.Regions {
		if !regionRE.MatchString(r) {
			bad(fmt.Sprintf("regions[%d]", i), "%q is not a region name like eu-west-1", r)
		}
		if seen[r] {
			bad(fmt.Sprintf("regions[%d]", i), "duplicate region %s", r)
		}
		seen[r] = true
	}
	region := func(field, r string) {
		if r == "" {
			bad(field, "is required")
		} else if !seen[r] {
			bad(field, "unknown region %s (not in regions)", r)
		}
	}
	for i, k := range t.KMSKeys {
		f := fmt.Sprintf("kmsKeys[%d]", i)
		region(f+".region", k.Region)
		if k.ID == "" {
			bad(f+".id", "is required")
		}
		if k.Alias != "" && !strings.HasPrefix(k.Alias, "alias/") {
			bad(f+".alias", "must start with alias/, got %q", k.Alias)
		}
	}
	for i, im := range t.Images {
		f := fmt.Sprintf("images[%d]", i)
		region(f+".region", im.Region)
		if im.Name == "" {
			bad(f+".name", "is required")
		}
		if im.ID != "" && !amiRE.MatchString(im.ID) {
			bad(f+".id", "%q is not an AMI id (ami- and 8 or 17 hex digits)", im.ID)
		}
		if im.SizeGiB <= 0 {
			bad(f+".sizeGiB", "must be positive, got %d", im.SizeGiB)
		}
		if im.KMSKeyID != "" && !im.Encrypted {
			bad(f+".kmsKeyId", "set on an unencrypted image")
		}
	}
	hcs := map[string]bool{}
	for i, h := range t.HealthChecks {
		f := fmt.Sprintf("healthChecks[%d]", i)
		if h.Name == "" {
			bad(f+".name", "is required")
		}
		if hcs[h.Name] {
			bad(f+".name", "duplicate health check %s", h.Name)
		}
		hcs[h.Name] = true
		if h.App != "" {
			if _, ok := t.AppFor(h.App); !ok {
				bad(f+".app", "no app in region %s", h.App)
			}
		}
	}
	for i, z := range t.HostedZones {
		f := fmt.Sprintf("hostedZones[%d]", i)
		if z.Name == "" {
			bad(f+".name", "is required")
		}
		zone := strings.TrimSuffix(z.Name, ".")
		for j, r := range z.Records {
			rf := fmt.Sprintf("%s.records[%d]", f, j)
			name := strings.TrimSuffix(r.Name, ".")
			if name != zone && !strings.HasSuffix(name, "."+zone) {
				bad(rf+".name", "%s is not in zone %s", r.Name, z.Name)
			}
			switch r.Type {
			case "A", "AAAA", "CNAME", "TXT", "MX", "NS", "SOA", "SRV", "CAA", "PTR":
			default:
				bad(rf+".type", "unsupported record type %q", r.Type)
			}
			if r.TTL < 0 || r.TTL > 2147483647 {
				bad(rf+".ttl", "out of range: %d", r.TTL)
			}
			if len(r.Values) > 0 && len(r.Weighted) > 0 {
				bad(rf, "set either values or weighted, not both")
			}
			if len(r.Values) == 0 && len(r.Weighted) == 0 {
				bad(rf, "needs values or weighted sets")
			}
			ids := map[string]bool{}
			for k, w := range r.Weighted {
				wf := fmt.Sprintf("%s.weighted[%d]", rf, k)
				if w.SetIdentifier == "" {
					bad(wf+".setIdentifier", "is required")
				}
				if ids[w.SetIdentifier] {
					bad(wf+".setIdentifier", "duplicate %s", w.SetIdentifier)
				}
				ids[w.SetIdentifier] = true
				if w.Weight < 0 || w.Weight > 255 {
					bad(wf+".weight", "must be 0-255, got %d", w.Weight)
				}
				if len(w.Values) == 0 {
					bad(wf+".values", "at least one value is required")
				}
				if w.HealthCheck != "" && !hcs[w.HealthCheck] {
					bad(wf+".healthCheck", "unknown health check %s", w.HealthCheck)
				}
			}
		}
	}
	for i, a := range t.Alarms {
		f := fmt.Sprintf("alarms[%d]", i)
		if a.Name == "" {
			bad(f+".name", "is required")
		}
		region(f+".region", a.Region)
		if a.App != "" {
			if _, ok := t.AppFor(a.App); !ok {
				bad(f+".app", "no app in region %s", a.App)
			}
		}
		if a.Threshold < 0 || a.Threshold > 1 {
			bad(f+".threshold", "must be a fraction 0..1, got %v", a.Threshold)
		}
	}
	apps := map[string]bool{}
	for i, a := range t.Apps {
		f := fmt.Sprintf("apps[%d]", i)
		region(f+".region", a.Region)
		if apps[a.Region] {
			bad(f+".region", "only one app per region, %s has two", a.Region)
		}
		apps[a.Region] = true
		if a.Address == "" {
			bad(f+".address", "is required (the record value clients resolve to)")
		}
	}
	if t.Traffic.Clients < 0 {
		bad("traffic.clients", "must not be negative")
	}
	if t.Traffic.RequestsPerSec < 0 {
		bad("traffic.requestsPerSec", "must not be negative")
	}
	if t.Timing.CopyTimePerGiB < 0 {
		bad("timing.copyTimePerGiB", "must not be negative")
	}
	if t.Timing.Route53InsyncDelay < 0 {
		bad("timing.route53InsyncDelay", "must not be negative")
	}
	if t.Timing.InstanceStartTime < 0 {
		bad("timing.instanceStartTime", "must not be negative")
	}
	t.validateMongo(bad, region)
	if len(errs) > 0 {
		return fmt.Errorf("invalid topology: %w", errors.Join(errs...))
	}
	return nil
}
