package server

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
)

// A plan runs on a worker, inside the network and with the worker's credentials. For a
// MongoDB primary move (alone or as a region move's phase) the spec names the hosts: the
// URI's seed list and newMembers. A viewer who may plan any spec could therefore make a
// worker connect to any host:port it can reach (an internal service, a metadata
// endpoint), and with password.file have it read a file and authenticate with it there.
// So planning such a spec needs the operator role, who may start one anyway, unless every
// host it names is in the server's allow-list (Options.PlanHosts, --plan-hosts).

// planHostsRule names the rule in refusals and docs/security.md.
const planHostsRule = "plans that connect to hosts named in the spec (mongoPrimaryMove, regionMove.mongoPrimaryMove) need the operator role, or every host in the server's --plan-hosts"

// mayPlan refuses a caller without the operator role a plan whose spec names a host
// outside the allow-list.
func (s *migrationService) mayPlan(p Principal, m *ferryv1.MigrationSpec) error {
	if slices.Contains(p.Roles, RoleOperator) {
		return nil
	}
	for _, h := range specHosts(m) {
		if !hostAllowed(h.host, s.opts.PlanHosts) {
			return connect.NewError(connect.CodePermissionDenied, fmt.Errorf(
				"%s (roles %v) may not plan this spec: %s names host %q, and %s", p.Identity, p.Roles, h.field, h.host, planHostsRule))
		}
	}
	return nil
}

type namedHost struct{ field, host string }

// specHosts lists the hosts a spec makes a worker connect to, with the field naming each.
// The spec was validated first (buildStart), so the URI parses.
func specHosts(m *ferryv1.MigrationSpec) []namedHost {
	field, mm := "mongoPrimaryMove", m.GetMongoPrimaryMove()
	if mm == nil {
		field, mm = "regionMove.mongoPrimaryMove", m.GetRegionMove().GetMongoPrimaryMove()
	}
	if mm == nil {
		return nil
	}
	var out []namedHost
	if u, err := url.Parse(strings.TrimSpace(mm.GetUri())); err == nil {
		for _, seed := range strings.Split(u.Host, ",") {
			out = append(out, namedHost{field + ".uri", hostOnly(seed)})
		}
	}
	for i, h := range mm.GetNewMembers() {
		out = append(out, namedHost{fmt.Sprintf("%s.newMembers[%d]", field, i), hostOnly(strings.TrimSpace(h))})
	}
	return out
}

// hostOnly strips a port (and an IPv6 address's brackets).
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// hostAllowed matches a host against allow-list entries: a name (case-insensitive), an IP
// address, or a CIDR prefix (10.0.0.0/8).
func hostAllowed(host string, allow []string) bool {
	ip, ipErr := netip.ParseAddr(host)
	for _, a := range allow {
		a = strings.TrimSpace(a)
		if strings.EqualFold(a, host) {
			return true
		}
		if ipErr != nil {
			continue
		}
		if p, err := netip.ParsePrefix(a); err == nil && p.Contains(ip) {
			return true
		}
		if aip, err := netip.ParseAddr(a); err == nil && aip == ip {
			return true
		}
	}
	return false
}
