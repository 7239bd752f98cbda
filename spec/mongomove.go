package spec

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

// Defaults applied to a MongoDB primary move spec (see spec.proto).
const (
	DefaultRegionTag       = "region"
	DefaultMaxLag          = 10 * time.Second
	DefaultCatchUpPeriod   = 10 * time.Second
	DefaultTakeoverTimeout = 60 * time.Second
)

// DefaultMongoPriorities are the final priorities when the spec sets none.
var DefaultMongoPriorities = workflows.MongoPriorities{TargetFirst: 2, TargetRest: 1, SourceFirst: 0.5, SourceRest: 0}

// MongoPrimaryMoveInput builds a MongoPrimaryMove workflow's input from a whole spec (see Input).
func MongoPrimaryMoveInput(m *ferryv1.MigrationSpec, initiator string) (workflows.MongoPrimaryMoveInput, error) {
	if m.GetMongoPrimaryMove() == nil {
		return workflows.MongoPrimaryMoveInput{}, fieldErr("mongoPrimaryMove", "missing; the spec must describe a migration (mongoPrimaryMove)")
	}
	_, in, err := Input(m, initiator, "")
	if err != nil {
		return workflows.MongoPrimaryMoveInput{}, err
	}
	return in.(workflows.MongoPrimaryMoveInput), nil
}

// MongoPrimaryMove validates a MongoDB primary move spec statically (no server contact)
// and applies defaults. The first problem found is returned as a *FieldError.
//
// Priorities: proto3 cannot tell 0 from unset, so an absent `priorities` block means all
// four defaults, and a present one is taken as written (sourceRest: 0 and sourceFirst: 0
// are both meaningful), except that targetFirst must be set: the preferred primary needs
// a priority above every source member's.
func MongoPrimaryMove(s *ferryv1.MongoPrimaryMoveSpec) (workflows.MongoMoveSpec, error) {
	const p = "mongoPrimaryMove"
	out := workflows.MongoMoveSpec{}
	if s == nil {
		return out, fieldErr(p, "missing")
	}
	raw := strings.TrimSpace(s.GetUri())
	if raw == "" {
		return out, fieldErr(p+".uri", "required: a seed list such as mongodb://10.0.0.1:27017,10.0.0.2:27017/?replicaSet=rs0")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		// url.Parse error text repeats the URI, which could hold a password: keep it out.
		return out, fieldErr(p+".uri", "not a valid mongodb:// URI")
	case u.Scheme != "mongodb" && u.Scheme != "mongodb+srv":
		return out, fieldErr(p+".uri", "scheme %q: use mongodb:// or mongodb+srv://", u.Scheme)
	case u.User != nil:
		return out, fieldErr(p+".uri", "holds credentials; remove them from the URI and set username and password (a secret reference: env or file) instead")
	case u.Host == "":
		return out, fieldErr(p+".uri", "names no host; list the current members, e.g. mongodb://10.0.0.1:27017/?replicaSet=rs0")
	}
	q := u.Query()
	for _, k := range []string{"password", "authMechanismProperties"} {
		if q.Has(k) {
			return out, fieldErr(p+".uri", "option %s may carry a secret; set it through username and password instead", k)
		}
	}
	out.URI = raw

	out.ReplicaSet = strings.TrimSpace(s.GetReplicaSet())
	if rs := q.Get("replicaSet"); out.ReplicaSet == "" {
		out.ReplicaSet = rs
	} else if rs != "" && rs != out.ReplicaSet {
		return out, fieldErr(p+".replicaSet", "%q differs from replicaSet=%s in the uri; make them agree", out.ReplicaSet, rs)
	}
	if out.ReplicaSet == "" {
		return out, fieldErr(p+".replicaSet", "required: the replica set name, e.g. rs0 (checked against the server's)")
	}
	if strings.ContainsAny(out.ReplicaSet, "/ \t") {
		return out, fieldErr(p+".replicaSet", "%q is not a replica set name", out.ReplicaSet)
	}

	out.Username = strings.TrimSpace(s.GetUsername())
	pw := s.GetPassword()
	switch {
	case out.Username == "" && pw != nil && (pw.GetEnv() != "" || pw.GetFile() != ""):
		return out, fieldErr(p+".username", "required when a password is set")
	case out.Username != "" && pw.GetEnv() == "" && pw.GetFile() == "":
		return out, fieldErr(p+".password", "required with a username: env (a variable on the worker) or file (a path on the worker)")
	case pw.GetEnv() != "":
		out.Password.Env = pw.GetEnv()
	case pw.GetFile() != "":
		out.Password.File = pw.GetFile()
	}
	out.TLS, out.TLSCAFile = s.GetTls(), strings.TrimSpace(s.GetTlsCaFile())
	if out.TLSCAFile != "" && !out.TLS {
		return out, fieldErr(p+".tlsCaFile", "set, but tls is off; set tls: true")
	}

	out.RegionTag = strings.TrimSpace(s.GetRegionTag())
	if out.RegionTag == "" {
		out.RegionTag = DefaultRegionTag
	}
	out.SourceRegion, out.TargetRegion = strings.TrimSpace(s.GetSourceRegion()), strings.TrimSpace(s.GetTargetRegion())
	switch {
	case out.SourceRegion == "":
		return out, fieldErr(p+".sourceRegion", "required: the region the primary is in now (the %s tag of its members), e.g. eu-west-1", out.RegionTag)
	case out.TargetRegion == "":
		return out, fieldErr(p+".targetRegion", "required: the region to move the primary to, e.g. eu-west-2")
	case out.SourceRegion == out.TargetRegion:
		return out, fieldErr(p+".targetRegion", "equals sourceRegion (%q); a move needs two regions", out.SourceRegion)
	}

	if len(s.GetNewMembers()) == 0 {
		return out, fieldErr(p+".newMembers", "required: host:port of at least one member to add in %s", out.TargetRegion)
	}
	if len(s.GetNewMembers()) > workflows.MongoMaxMembers-1 {
		return out, fieldErr(p+".newMembers", "%d members; a replica set holds at most %d", len(s.GetNewMembers()), workflows.MongoMaxMembers)
	}
	seen := map[string]int{}
	for i, h := range s.GetNewMembers() {
		f := fmt.Sprintf("%s.newMembers[%d]", p, i)
		h = strings.TrimSpace(h)
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" {
			return out, fieldErr(f, "%q is not host:port, e.g. 10.2.0.1:27017", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return out, fieldErr(f, "port %q is not 1..65535", port)
		}
		if j, dup := seen[h]; dup {
			return out, fieldErr(f, "%s is also newMembers[%d]; each member is added once", h, j)
		}
		seen[h] = i
		out.NewMembers = append(out.NewMembers, h)
	}

	pr := DefaultMongoPriorities
	if sp := s.GetPriorities(); sp != nil {
		pr = workflows.MongoPriorities{TargetFirst: sp.GetTargetFirst(), TargetRest: sp.GetTargetRest(), SourceFirst: sp.GetSourceFirst(), SourceRest: sp.GetSourceRest()}
	}
	for _, v := range []struct {
		name string
		val  float64
	}{{"targetFirst", pr.TargetFirst}, {"targetRest", pr.TargetRest}, {"sourceFirst", pr.SourceFirst}, {"sourceRest", pr.SourceRest}} {
		if math.IsNaN(v.val) || v.val < 0 || v.val > 1000 {
			return out, fieldErr(p+".priorities."+v.name, "%s is outside 0..1000 (MongoDB's priority range)", strconv.FormatFloat(v.val, 'g', -1, 64))
		}
	}
	switch {
	case pr.TargetFirst == 0:
		return out, fieldErr(p+".priorities.targetFirst", "required when priorities is set: the preferred primary's priority, above every source priority (default 2)")
	case pr.TargetFirst <= pr.SourceFirst:
		return out, fieldErr(p+".priorities.targetFirst", "%g is not above sourceFirst %g; the primary would stay in %s", pr.TargetFirst, pr.SourceFirst, out.SourceRegion)
	case pr.TargetFirst <= pr.SourceRest:
		return out, fieldErr(p+".priorities.targetFirst", "%g is not above sourceRest %g; the primary could stay in %s", pr.TargetFirst, pr.SourceRest, out.SourceRegion)
	case pr.TargetRest > pr.TargetFirst:
		return out, fieldErr(p+".priorities.targetRest", "%g is above targetFirst %g; the first new member is the preferred primary", pr.TargetRest, pr.TargetFirst)
	}
	out.Priorities = pr

	// Below 100ms no secondary under write load is ever "caught up", and the wait never ends.
	if out.MaxLag, err = duration(p+".maxLag", s.GetMaxLag(), DefaultMaxLag, 100*time.Millisecond, time.Hour); err != nil {
		return out, err
	}
	if out.CatchUpPeriod, err = duration(p+".catchUpPeriod", s.GetCatchUpPeriod(), DefaultCatchUpPeriod, time.Second, 10*time.Minute); err != nil {
		return out, err
	}
	if out.CatchUpPeriod%time.Second != 0 {
		return out, fieldErr(p+".catchUpPeriod", "%s is not whole seconds; secondaryCatchUpPeriodSecs counts seconds", out.CatchUpPeriod)
	}
	if out.TakeoverTimeout, err = duration(p+".takeoverTimeout", s.GetTakeoverTimeout(), DefaultTakeoverTimeout, 0, time.Hour); err != nil {
		return out, err
	}
	out.SkipPrimaryApproval = s.GetSkipPrimaryApproval()
	out.DemoteSource, out.RemoveSource = s.GetDemoteSource(), s.GetRemoveSource()
	if out.RemoveSource && !out.DemoteSource {
		return out, fieldErr(p+".removeSource", "requires demoteSource: members are demoted (priority 0) before they are removed")
	}
	return out, nil
}
