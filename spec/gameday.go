package spec

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ferryhq/ferry/activities"
	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

// ParseGameDayFile reads a GameDay scenario file (.json, else YAML).
func ParseGameDayFile(path string) (*ferryv1.GameDayScenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	s := &ferryv1.GameDayScenario{}
	if err := ParseMessage(data, filepath.Ext(path), s); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, nil
}

// gameDayFaultKinds are the sandbox's fault kinds a scenario may use (sandbox/control and
// the MongoDB simulator's); the sandbox checks the rest (targets it knows) when the fault
// is injected.
var gameDayFaultKinds = map[string][]string{
	"aws":   {"throttle", "error", "latency", "denied"},
	"app":   {"error", "latency", "unhealthy"},
	"mongo": {"down", "partition", "lag", "slow-sync", "command-error"},
}

// GameDay validates a scenario statically (nothing is injected, nothing started) and, for
// a hidden GameDay, draws its experiments from the pool with the seed: the same seed
// always draws the same experiments in the same order. The first problem is a
// *FieldError naming the field.
func GameDay(s *ferryv1.GameDayScenario) (workflows.GameDaySpec, error) {
	var out workflows.GameDaySpec
	if s == nil {
		return out, fieldErr("scenario", "missing")
	}
	if out.Name = strings.TrimSpace(s.GetName()); out.Name == "" {
		return out, fieldErr("name", "required: a short name for the report, e.g. \"region move under fire\"")
	}
	hidden := s.GetPool() != nil
	switch m := strings.TrimSpace(s.GetMode()); m {
	case "":
		out.Mode = workflows.GameDayInformed
		if hidden {
			out.Mode = workflows.GameDayHidden
		}
	case workflows.GameDayInformed, workflows.GameDayHidden:
		out.Mode = m
	default:
		return out, fieldErr("mode", "%q: use informed (experiments announced) or hidden (drawn from pool)", m)
	}
	members := map[string]string{}
	for i, t := range s.GetTeams() {
		f := fmt.Sprintf("teams[%d]", i)
		team := workflows.GameDayTeam{Name: strings.TrimSpace(t.GetName())}
		if team.Name == "" {
			return out, fieldErr(f+".name", "required")
		}
		if slices.ContainsFunc(out.Teams, func(o workflows.GameDayTeam) bool { return strings.EqualFold(o.Name, team.Name) }) {
			return out, fieldErr(f+".name", "%q is listed twice", team.Name)
		}
		if len(t.GetMembers()) == 0 {
			return out, fieldErr(f+".members", "required: the identities that press detect and mitigate for %s", team.Name)
		}
		for j, m := range t.GetMembers() {
			m = strings.TrimSpace(m)
			if m == "" {
				return out, fieldErr(fmt.Sprintf("%s.members[%d]", f, j), "empty identity")
			}
			if other, ok := members[m]; ok {
				return out, fieldErr(fmt.Sprintf("%s.members[%d]", f, j), "%s is also in team %s; a person scores for one team", m, other)
			}
			members[m] = team.Name
			team.Members = append(team.Members, m)
		}
		out.Teams = append(out.Teams, team)
	}
	ss := s.GetSteadyState()
	out.MaxErrorRate = 0.01
	if ss.GetMaxErrorRate() != 0 {
		if out.MaxErrorRate = ss.GetMaxErrorRate(); out.MaxErrorRate < 0 || out.MaxErrorRate >= 1 {
			return out, fieldErr("steadyState.maxErrorRate", "%v: a share of requests, 0..1 (e.g. 0.01 for 1%%)", out.MaxErrorRate)
		}
	}
	for i, r := range ss.GetRegions() {
		if !regionRE.MatchString(r) {
			return out, fieldErr(fmt.Sprintf("steadyState.regions[%d]", i), "%q is not a region name, e.g. eu-west-2", r)
		}
		out.Regions = append(out.Regions, r)
	}
	if m := s.GetMigration(); m != nil {
		k, _, err := Input(m, "gameday", "")
		if err != nil {
			if fe, ok := err.(*FieldError); ok && fe.Field != "" {
				fe.Field = "migration." + fe.Field
			}
			return out, err
		}
		b, err := protojson.Marshal(m)
		if err != nil {
			return out, err
		}
		out.Migration, out.MigrationKind = string(b), k.Name
		d := m.GetDnsShift()
		if d == nil {
			d = m.GetRegionMove().GetDnsShift()
		}
		if d != nil {
			out.Record = &activities.RecordRef{Zone: d.GetHostedZone(), Name: d.GetRecordName(), Type: strings.ToUpper(d.GetRecordType())}
		}
	}
	switch out.Mode {
	case workflows.GameDayInformed:
		if hidden {
			return out, fieldErr("pool", "an informed GameDay announces its experiments: list them under experiments, or set mode: hidden")
		}
		if len(s.GetExperiments()) == 0 {
			return out, fieldErr("experiments", "required: at least one fault with its startAfter and duration")
		}
		exps, err := gameDayExperiments("experiments", s.GetExperiments())
		if err != nil {
			return out, err
		}
		out.Experiments = exps
	case workflows.GameDayHidden:
		if len(s.GetExperiments()) > 0 {
			return out, fieldErr("experiments", "a hidden GameDay draws its experiments: put the candidates under pool.experiments")
		}
		p := s.GetPool()
		if p == nil || len(p.GetExperiments()) == 0 {
			return out, fieldErr("pool.experiments", "required: the candidates the villains draw from")
		}
		pool, err := gameDayExperiments("pool.experiments", p.GetExperiments())
		if err != nil {
			return out, err
		}
		if n := int(p.GetDraw()); n < 1 || n > len(pool) {
			return out, fieldErr("pool.draw", "%d: draw between 1 and the pool's %d", p.GetDraw(), len(pool))
		}
		out.PoolSize, out.Seed = len(pool), p.GetSeed()
		out.Experiments = DrawExperiments(pool, int(p.GetDraw()), p.GetSeed())
	}
	return out, nil
}

// DrawExperiments picks n of pool without repeats, in the order drawn, from seed alone
// (PCG: the same on every platform and Go version), so a hidden GameDay can be replayed.
func DrawExperiments(pool []workflows.GameDayExperiment, n int, seed int64) []workflows.GameDayExperiment {
	r := rand.New(rand.NewPCG(uint64(seed), 0x66657272792d6764)) // "ferry-gd"
	var out []workflows.GameDayExperiment
	for _, i := range r.Perm(len(pool))[:n] {
		out = append(out, pool[i])
	}
	return out
}

func gameDayExperiments(field string, in []*ferryv1.GameDayExperiment) ([]workflows.GameDayExperiment, error) {
	var out []workflows.GameDayExperiment
	for i, e := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		x := workflows.GameDayExperiment{Name: strings.TrimSpace(e.GetName())}
		if x.Name == "" {
			return nil, fieldErr(f+".name", "required: what breaks, for the report")
		}
		if slices.ContainsFunc(out, func(o workflows.GameDayExperiment) bool { return o.Name == x.Name }) {
			return nil, fieldErr(f+".name", "%q is listed twice", x.Name)
		}
		fl := e.GetFault()
		if fl == nil {
			return nil, fieldErr(f+".fault", "required: target and kind, as `ferry sandbox fault add` takes them")
		}
		x.Fault = workflows.GameDayFault{Target: strings.TrimSpace(fl.GetTarget()), Kind: strings.TrimSpace(fl.GetKind()), Rate: fl.GetRate(),
			LatencyMs: int(fl.GetLatencyMs()), Command: fl.GetCommand(), Code: int(fl.GetCode())}
		prefix, _, _ := strings.Cut(x.Fault.Target, ":")
		kinds, ok := gameDayFaultKinds[prefix]
		if !ok || !strings.Contains(x.Fault.Target, ":") {
			return nil, fieldErr(f+".fault.target", "%q: aws:<service>:<operation>, app:<region> or mongo:<set>:<port>, e.g. app:eu-west-2", x.Fault.Target)
		}
		if !slices.Contains(kinds, x.Fault.Kind) {
			return nil, fieldErr(f+".fault.kind", "%q: a %s fault is one of %s", x.Fault.Kind, prefix, strings.Join(kinds, ", "))
		}
		switch {
		case x.Fault.Kind == "slow-sync":
			// The rate is the initial sync's slowdown factor here (the simulator's default 10).
			if x.Fault.Rate != 0 && x.Fault.Rate < 1 {
				return nil, fieldErr(f+".fault.rate", "%v: a slow-sync's rate is its slowdown factor, at least 1 (default 10)", x.Fault.Rate)
			}
		case x.Fault.Rate == 0:
			x.Fault.Rate = 1
		case x.Fault.Rate < 0 || x.Fault.Rate > 1:
			return nil, fieldErr(f+".fault.rate", "%v: a share of requests, 0..1", x.Fault.Rate)
		}
		if (x.Fault.Kind == "latency" || x.Fault.Kind == "lag") && x.Fault.LatencyMs <= 0 {
			return nil, fieldErr(f+".fault.latencyMs", "required for a %s fault, e.g. 800", x.Fault.Kind)
		}
		x.StartAfter = e.GetStartAfter().AsDuration()
		if x.StartAfter < 0 {
			return nil, fieldErr(f+".startAfter", "%s: must not be negative", x.StartAfter)
		}
		x.Duration = e.GetDuration().AsDuration()
		if x.Duration <= 0 || x.Duration > 24*time.Hour {
			return nil, fieldErr(f+".duration", "required, up to 24h: a GameDay never leaves a fault behind (e.g. 2m)")
		}
		out = append(out, x)
	}
	return out, nil
}
