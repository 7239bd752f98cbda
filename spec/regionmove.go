package spec

import (
	"errors"
	"slices"
	"strings"
	"time"
	"unicode"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

// maxRegionMoveName bounds the name, which is part of the region move's workflow id.
const maxRegionMoveName = 100

// RegionMoveInput builds a region move workflow's input from a whole spec: each phase is
// validated by its own converter (field paths prefixed with regionMove.), then the phases
// RegionMoveInput builds a region move workflow's input from a whole spec (see Input).
func RegionMoveInput(m *ferryv1.MigrationSpec, initiator string) (workflows.RegionMoveInput, error) {
	if m.GetRegionMove() == nil {
		return workflows.RegionMoveInput{}, fieldErr("regionMove", "missing; the spec must describe a migration (regionMove)")
	}
	_, in, err := Input(m, initiator, "")
	if err != nil {
		return workflows.RegionMoveInput{}, err
	}
	return in.(workflows.RegionMoveInput), nil
}

// regionMoveName checks a region move's name, which is part of its workflow id.
func regionMoveName(name string) error {
	switch {
	case name == "":
		return fieldErr("name", "required for a region move: it names the move's workflow id (region/<name>/<source>/<target>), e.g. shop")
	case len(name) > maxRegionMoveName:
		return fieldErr("name", "%d characters; at most %d (it is part of the workflow id)", len(name), maxRegionMoveName)
	case strings.ContainsRune(name, '/') || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fieldErr("name", "%q holds a / or a control character; the name is part of the workflow id region/<name>/<source>/<target>", name)
	}
	return nil
}

// RegionMove validates a region move spec statically (no cloud calls) and applies the
// phases' defaults. The first problem is returned as a *FieldError naming the field.
func RegionMove(s *ferryv1.RegionMoveSpec) (workflows.RegionMoveSpec, error) {
	const p = "regionMove"
	var out workflows.RegionMoveSpec
	if s == nil {
		return out, fieldErr(p, "missing")
	}
	src, dst := strings.TrimSpace(s.GetSourceRegion()), strings.TrimSpace(s.GetTargetRegion())
	switch {
	case src == "":
		return out, fieldErr(p+".sourceRegion", "required: the region the application runs in now, e.g. eu-west-1")
	case !regionRE.MatchString(src):
		return out, fieldErr(p+".sourceRegion", "%q does not look like an AWS region (e.g. eu-west-1)", src)
	case dst == "":
		return out, fieldErr(p+".targetRegion", "required: the region to move to, e.g. eu-west-2")
	case !regionRE.MatchString(dst):
		return out, fieldErr(p+".targetRegion", "%q does not look like an AWS region (e.g. eu-west-2)", dst)
	case src == dst:
		return out, fieldErr(p+".targetRegion", "equals sourceRegion (%q); a move needs two regions", src)
	}
	out.SourceRegion, out.TargetRegion = src, dst
	out.ApproveBetweenPhases = s.GetApproveBetweenPhases()
	if s.GetAmiShare() == nil && s.GetMongoPrimaryMove() == nil && s.GetDnsShift() == nil {
		return out, fieldErr(p, "has no phase: set at least one of amiShare, mongoPrimaryMove, dnsShift")
	}

	if s.GetAmiShare() != nil {
		a, err := AMIShare(s.GetAmiShare())
		if err != nil {
			return out, prefixed(p, err)
		}
		if a.SourceRegion != src {
			return out, fieldErr(p+".amiShare.sourceRegion", "%q, but the move is from %s; copy the images from the region being left", a.SourceRegion, src)
		}
		if !slices.Contains(a.TargetRegions, dst) {
			return out, fieldErr(p+".amiShare.targetRegions", "%v does not include %s, the region the move goes to", a.TargetRegions, dst)
		}
		out.AMI = &a
	}
	if s.GetMongoPrimaryMove() != nil {
		mm, err := MongoPrimaryMove(s.GetMongoPrimaryMove())
		if err != nil {
			return out, prefixed(p, err)
		}
		// The region tags are compared with the move's regions: a move whose primary goes
		// anywhere else is not this move.
		if mm.SourceRegion != src {
			return out, fieldErr(p+".mongoPrimaryMove.sourceRegion", "%q, but the move is from %s; the members' %s tags must name the move's regions", mm.SourceRegion, src, mm.RegionTag)
		}
		if mm.TargetRegion != dst {
			return out, fieldErr(p+".mongoPrimaryMove.targetRegion", "%q, but the move goes to %s; the members' %s tags must name the move's regions", mm.TargetRegion, dst, mm.RegionTag)
		}
		out.Mongo = &mm
	}
	if s.GetDnsShift() != nil {
		d, err := DNSShift(s.GetDnsShift())
		if err != nil {
			return out, prefixed(p, err)
		}
		if err := checkSetIdentifiers(p+".dnsShift", d, src, dst); err != nil {
			return out, err
		}
		out.DNS = &d
	}
	w, err := window(p+".maintenanceWindow", s.GetMaintenanceWindow())
	if err != nil {
		return out, err
	}
	if w != nil && out.Mongo == nil && out.DNS == nil {
		return out, fieldErr(p+".maintenanceWindow", "holds only the MongoDB and DNS phases, and neither is set; remove it")
	}
	out.Window = w
	return out, nil
}

// checkSetIdentifiers checks the DNS phase moves traffic the move's way. Set identifiers
// are free text (teams name them "blue"/"green", "shop-eu-west-1", ...), so they need not
// equal the regions; but an identifier that is a region name must be the right one, and
// one that mentions the other region is the wrong way round.
func checkSetIdentifiers(p string, d workflows.DNSShiftSpec, src, dst string) error {
	switch {
	case regionRE.MatchString(d.From) && d.From != src:
		return fieldErr(p+".from", "%q is a region, but the move is from %s; from is the set serving traffic now", d.From, src)
	case regionRE.MatchString(d.To) && d.To != dst:
		return fieldErr(p+".to", "%q is a region, but the move goes to %s; to is the set receiving traffic", d.To, dst)
	case strings.Contains(d.From, dst) && !strings.Contains(d.From, src):
		return fieldErr(p+".from", "%q names %s, the region the move goes to; from and to look swapped", d.From, dst)
	case strings.Contains(d.To, src) && !strings.Contains(d.To, dst):
		return fieldErr(p+".to", "%q names %s, the region the move leaves; from and to look swapped", d.To, src)
	}
	return nil
}

// window normalises a maintenance window; nil when none is set.
func window(p string, w *ferryv1.MaintenanceWindow) (*workflows.MaintenanceWindow, error) {
	if w == nil || (w.GetStart() == "" && w.GetEnd() == "" && w.GetTimeZone() == "") {
		return nil, nil
	}
	out := &workflows.MaintenanceWindow{
		Start: strings.TrimSpace(w.GetStart()), End: strings.TrimSpace(w.GetEnd()), Zone: strings.TrimSpace(w.GetTimeZone()),
	}
	if out.Start == "" {
		return nil, fieldErr(p+".start", "required: when the window opens, \"HH:MM\" (e.g. 22:00)")
	}
	if out.End == "" {
		return nil, fieldErr(p+".end", "required: when the window closes, \"HH:MM\" (e.g. 04:00; before start crosses midnight)")
	}
	sh, sm, err := workflows.ParseWindowClock(out.Start)
	if err != nil {
		return nil, fieldErr(p+".start", "%s", err.Error())
	}
	eh, em, err := workflows.ParseWindowClock(out.End)
	if err != nil {
		return nil, fieldErr(p+".end", "%s", err.Error())
	}
	if sh == eh && sm == em {
		return nil, fieldErr(p+".end", "equals start (%s); the window would be empty (or, meant as always open, leave maintenanceWindow out)", out.Start)
	}
	if out.Zone == "" {
		out.Zone = "UTC"
	}
	if strings.EqualFold(out.Zone, "local") {
		return nil, fieldErr(p+".timeZone", "%q depends on the worker's clock; name an IANA zone such as Europe/London", out.Zone)
	}
	if _, err := time.LoadLocation(out.Zone); err != nil {
		return nil, fieldErr(p+".timeZone", "%q is not a known IANA time zone (e.g. Europe/London, UTC)", out.Zone)
	}
	return out, nil
}

// prefixed puts a phase converter's field path under the region move's.
func prefixed(p string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		f := p
		if fe.Field != "" {
			f = p + "." + fe.Field
		}
		return &FieldError{Field: f, Msg: fe.Msg}
	}
	return err
}
