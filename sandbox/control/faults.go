// Package control is the sandbox's control plane: the fault registry used for GameDays,
// the shared types of the control HTTP API (faults, the AWS call record, traffic) and a
// Go client for that API.
package control

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fault kinds.
const (
	KindThrottle = "throttle" // aws: the service's throttling error
	// KindError is aws: a 5xx (InternalError / InternalFailure / ServiceUnavailable); app:
	// requests answer 500 at Rate while /healthz stays 200, a bad release that health
	// checks (and DNS failover) do not see and only the clients' error rate shows.
	KindError     = "error"
	KindLatency   = "latency"   // aws and app: adds LatencyMs
	KindUnhealthy = "unhealthy" // app: /healthz 503 and requests fail at Rate
	// KindDenied is aws: the service's permission error, which no retry fixes (EC2
	// UnauthorizedOperation, Route 53 and CloudWatch AccessDenied, all HTTP 403).
	KindDenied = "denied"
	// KindCommandError is mongo: the member answers Command with error Code (default 13
	// Unauthorized) instead of running it, as mongod would.
	KindCommandError = "command-error"
)

// MutatingOps is the operation part of a target that covers every operation of a service
// that changes state: "aws:ec2:mutating", "aws:route53:mutating". See Matches.
const MutatingOps = "mutating"

// Fault is one injected failure. Target selects what it hits: "aws:ec2:CopyImage",
// "aws:ec2:*", "aws:ec2:mutating", "aws:route53:*", "aws:*", "app:eu-west-2", or
// "mongo:..." (handled by the MongoDB simulator).
type Fault struct {
	ID          string  `json:"id,omitempty"`
	Target      string  `json:"target"`
	Kind        string  `json:"kind"`
	Rate        float64 `json:"rate"`
	LatencyMs   int     `json:"latencyMs,omitempty"`
	Count       int     `json:"count,omitempty"`
	DurationSec float64 `json:"durationSec,omitempty"`
	// After lets the first After matching calls through untouched; the fault fires (at
	// Rate, Count times) from call After+1 on.
	After int `json:"after,omitempty"`
	// Command is the MongoDB command a command-error fault fails, e.g. "replSetReconfig".
	Command string `json:"command,omitempty"`
	// Code is the MongoDB error code a command-error fault answers (0: 13, Unauthorized).
	Code int `json:"code,omitempty"`
	// Owner labels who injected the fault (e.g. a GameDay's id), so it can list and clear
	// its own faults and only those. Empty: a person at the CLI.
	Owner   string    `json:"owner,omitempty"`
	Created time.Time `json:"created,omitzero"`
	// Remaining is how many more times a Count fault fires (read-only).
	Remaining int `json:"remaining,omitempty"`
	// Fired counts how often the fault was applied (read-only); calls let through because
	// of After do not count.
	Fired int `json:"fired"`

	// passed counts the matching calls let through because of After.
	passed int
}

// armed reports whether the fault has let its After calls through.
func (f *Fault) armed() bool { return f.passed >= f.After }

// FieldError is a bad fault (or other input) naming the offending field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"error"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Hooks lets owners of other targets (the MongoDB simulator) take part: Add may refuse
// a fault (its error is shown to the user, under its field if it is a *FieldError, else
// under target) and Remove is told when one goes away. An owner that applies a fault per
// request (command-error) reports each firing with Registry.Fire.
type Hooks struct {
	Add    func(Fault) error
	Remove func(id string) error
}

// Registry holds the active faults. It is safe for concurrent use.
type Registry struct {
	mu      sync.Mutex
	faults  []*Fault
	regions map[string]bool
	hooks   map[string]Hooks // by target prefix, e.g. "mongo:"
	adding  map[string]int   // hooked faults being added: firings reported before they are stored
	rnd     *mrand.Rand
	now     func() time.Time
}

// NewRegistry returns an empty registry; regions are the ones app targets may name.
// seed makes rate decisions reproducible.
func NewRegistry(regions []string, seed uint64) *Registry {
	r := &Registry{
		regions: map[string]bool{},
		hooks:   map[string]Hooks{},
		adding:  map[string]int{},
		rnd:     mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:     time.Now,
	}
	for _, g := range regions {
		r.regions[g] = true
	}
	return r
}

// Handle registers hooks for faults whose target starts with prefix (e.g. "mongo:").
func (r *Registry) Handle(prefix string, h Hooks) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks[prefix] = h
}

var awsServices = map[string]bool{"ec2": true, "route53": true, "cloudwatch": true}

// Validate checks a fault without adding it.
func (r *Registry) Validate(f Fault) error {
	// For aws: and app: faults rate is a share of requests; a mongo: slow-sync reads it as
	// a slowdown factor, and the MongoDB simulator validates its own faults.
	if f.Rate < 0 || (f.Rate > 1 && !strings.HasPrefix(f.Target, "mongo:")) {
		return &FieldError{"rate", fmt.Sprintf("must be between 0 and 1, got %v", f.Rate)}
	}
	if f.LatencyMs < 0 {
		return &FieldError{"latencyMs", "must not be negative"}
	}
	if !idRE.MatchString(f.ID) {
		return &FieldError{"id", fmt.Sprintf("%q: use at most 64 letters, digits and . _ - (or none: the sandbox picks one)", f.ID)}
	}
	if !validOwner(f.Owner) {
		return &FieldError{"owner", fmt.Sprintf("%q: use at most 128 letters, digits and . _ - / : @", f.Owner)}
	}
	if f.Count < 0 {
		return &FieldError{"count", "must not be negative"}
	}
	if f.DurationSec < 0 {
		return &FieldError{"durationSec", "must not be negative"}
	}
	if f.After < 0 {
		return &FieldError{"after", "must not be negative"}
	}
	if f.Code < 0 || f.Code > math.MaxInt32 {
		return &FieldError{"code", fmt.Sprintf("must be a MongoDB error code between 1 and %d (0: 13, Unauthorized), got %d", math.MaxInt32, f.Code)}
	}
	if f.Kind != KindCommandError {
		if f.Command != "" {
			return &FieldError{"command", fmt.Sprintf("applies to %s faults only, not %q", KindCommandError, f.Kind)}
		}
		if f.Code != 0 {
			return &FieldError{"code", fmt.Sprintf("applies to %s faults only, not %q", KindCommandError, f.Kind)}
		}
	}
	prefix, rest, ok := strings.Cut(f.Target, ":")
	if !ok || rest == "" {
		return &FieldError{"target", fmt.Sprintf("%q must look like aws:ec2:CopyImage, app:eu-west-2 or mongo:...", f.Target)}
	}
	switch prefix {
	case "aws":
		if rest != "*" {
			svc, op, _ := strings.Cut(rest, ":")
			if !awsServices[svc] {
				return &FieldError{"target", fmt.Sprintf("unknown AWS service %q (ec2, route53, cloudwatch)", svc)}
			}
			if op == "" {
				return &FieldError{"target", fmt.Sprintf("name an operation or * after aws:%s:", svc)}
			}
		}
		switch f.Kind {
		case KindThrottle, KindError, KindDenied:
		case KindLatency:
			if f.LatencyMs == 0 {
				return &FieldError{"latencyMs", "required for a latency fault"}
			}
		default:
			return &FieldError{"kind", fmt.Sprintf("unknown kind %q for an aws target (throttle, error, denied, latency)", f.Kind)}
		}
	case "app":
		if !r.regions[rest] {
			return &FieldError{"target", fmt.Sprintf("unknown region %q", rest)}
		}
		switch f.Kind {
		case KindUnhealthy, KindError:
		case KindLatency:
			if f.LatencyMs == 0 {
				return &FieldError{"latencyMs", "required for a latency fault"}
			}
		default:
			return &FieldError{"kind", fmt.Sprintf("unknown kind %q for an app target (unhealthy, error, latency)", f.Kind)}
		}
	default:
		if _, ok := r.hooks[prefix+":"]; !ok && prefix != "mongo" {
			return &FieldError{"target", fmt.Sprintf("unknown target prefix %q (aws, app, mongo)", prefix)}
		}
		if f.Kind == "" {
			return &FieldError{"kind", "is required"}
		}
		if f.Kind == KindCommandError {
			// The one hooked kind that is about requests: it fails commands one by one.
			if f.Command == "" {
				return &FieldError{"command", "required for a command-error fault (e.g. replSetReconfig)"}
			}
			if f.Rate > 1 {
				return &FieldError{"rate", fmt.Sprintf("must be between 0 and 1 for a command-error fault, got %v", f.Rate)}
			}
			break
		}
		// Other hooked faults are a state of the simulator (a member down), not something
		// each request rolls for, so there is nothing for a count to use up or an after to
		// wait out.
		if f.Count > 0 {
			return &FieldError{"count", fmt.Sprintf("applies to request faults (aws:, app:, %s); a %s: %s fault is a state: bound it with durationSec or remove it", KindCommandError, prefix, f.Kind)}
		}
		if f.After > 0 {
			return &FieldError{"after", fmt.Sprintf("applies to request faults (aws:, app:, %s); a %s: %s fault is a state that starts when added", KindCommandError, prefix, f.Kind)}
		}
	}
	return nil
}

// Add validates and stores a fault, giving it an id. An omitted (zero) rate means 1: a
// fault that never fires has no use, and "add a throttle" should simply throttle.
func (r *Registry) Add(f Fault) (Fault, error) {
	if f.Rate == 0 {
		f.Rate = 1
	}
	r.mu.Lock()
	if err := r.Validate(f); err != nil {
		r.mu.Unlock()
		return Fault{}, err
	}
	// A caller's own id makes its retries safe (it finds the fault it added), so an id
	// may not stand for two faults at once.
	r.expireLocked()
	if _, busy := r.adding[f.ID]; f.ID != "" && (busy || slices.ContainsFunc(r.faults, func(g *Fault) bool { return g.ID == f.ID })) {
		r.mu.Unlock()
		return Fault{}, &FieldError{"id", fmt.Sprintf("a fault with id %s is active already", f.ID)}
	}
	hook, hooked := r.hookLocked(f.Target)
	if f.ID == "" {
		f.ID = newID()
	}
	if hooked {
		// Its owner may fire it (Fire) as soon as it has it, before it is stored below.
		r.adding[f.ID] = 0
	}
	r.mu.Unlock()

	f.Created = r.now()
	f.Remaining = f.Count
	f.Fired = 0
	f.passed = 0
	if hooked && hook.Add != nil {
		if err := hook.Add(f); err != nil {
			r.mu.Lock()
			delete(r.adding, f.ID)
			r.mu.Unlock()
			var fe *FieldError
			if errors.As(err, &fe) {
				return Fault{}, fe
			}
			return Fault{}, &FieldError{"target", err.Error()}
		}
	}
	r.mu.Lock()
	stored := f
	r.faults = append(r.faults, &stored)
	early := 0
	if hooked {
		early = r.adding[f.ID]
		delete(r.adding, f.ID)
		if f.DurationSec > 0 {
			// Its owner must be told when it ends, and nothing may wait for a request to
			// notice: the member comes back up on time.
			id := f.ID
			time.AfterFunc(time.Duration(f.DurationSec*float64(time.Second)), func() { _, _ = r.Delete(id) })
		}
	}
	r.mu.Unlock()
	for range early {
		r.Fire(f.ID)
	}
	return f, nil
}

// List returns the active faults (expired ones are dropped first).
func (r *Registry) List() []Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	out := make([]Fault, 0, len(r.faults))
	for _, f := range r.faults {
		out = append(out, *f)
	}
	return out
}

// Delete removes one fault; it reports whether it existed.
func (r *Registry) Delete(id string) (bool, error) {
	r.mu.Lock()
	i := slices.IndexFunc(r.faults, func(f *Fault) bool { return f.ID == id })
	if i < 0 {
		r.mu.Unlock()
		return false, nil
	}
	f := r.faults[i]
	r.faults = slices.Delete(r.faults, i, i+1)
	r.mu.Unlock()
	return true, r.notifyRemove(f)
}

// ownerRE is what an owner label may hold: ids such as "gameday/informed-2026-12-04".
// idRE is a fault id a caller may choose: it goes into URL paths (DELETE /faults/{id}).
var idRE = regexp.MustCompile(`^[A-Za-z0-9._\-]{0,64}$`)

var ownerRE = regexp.MustCompile(`^[A-Za-z0-9._\-/:@]{0,128}$`)

func validOwner(o string) bool { return ownerRE.MatchString(o) }

// Clear removes every fault.
func (r *Registry) Clear() error {
	_, err := r.clear(func(*Fault) bool { return true })
	return err
}

// ClearOwner removes the faults owner injected and no other; it returns how many.
func (r *Registry) ClearOwner(owner string) (int, error) {
	return r.clear(func(f *Fault) bool { return f.Owner == owner })
}

// ListOwner returns the active faults owner injected.
func (r *Registry) ListOwner(owner string) []Fault {
	var out []Fault
	for _, f := range r.List() {
		if f.Owner == owner {
			out = append(out, f)
		}
	}
	return out
}

// clear removes the faults match selects, then tells their simulators (outside the lock:
// a hook may call back into the registry).
func (r *Registry) clear(match func(*Fault) bool) (int, error) {
	r.mu.Lock()
	var old, keep []*Fault
	for _, f := range r.faults {
		if match(f) {
			old = append(old, f)
		} else {
			keep = append(keep, f)
		}
	}
	r.faults = keep
	r.mu.Unlock()
	var first error
	for _, f := range old {
		if err := r.notifyRemove(f); err != nil && first == nil {
			first = err
		}
	}
	return len(old), first
}

// hookLocked returns the hooks of the owner of target (the MongoDB simulator for mongo:).
func (r *Registry) hookLocked(target string) (Hooks, bool) {
	for p, h := range r.hooks {
		if strings.HasPrefix(target, p) {
			return h, true
		}
	}
	return Hooks{}, false
}

func (r *Registry) notifyRemove(f *Fault) error {
	r.mu.Lock()
	h, _ := r.hookLocked(f.Target)
	r.mu.Unlock()
	if h.Remove != nil {
		return h.Remove(f.ID)
	}
	return nil
}

// Hit returns the faults that fire for one request to target (an exact target such as
// "aws:ec2:CopyImage" or "app:eu-west-2"): each matching fault first lets After requests
// through, then fires with probability Rate, and a Count fault is used up by firing.
func (r *Registry) Hit(target string) []Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	var out []Fault
	for _, f := range r.faults {
		if !Matches(f.Target, target) {
			continue
		}
		if !f.armed() {
			f.passed++
			continue
		}
		if f.Rate <= 0 || (f.Rate < 1 && r.rnd.Float64() >= f.Rate) {
			continue
		}
		f.Fired++
		if f.Count > 0 {
			f.Remaining--
		}
		out = append(out, *f)
	}
	r.expireLocked()
	return out
}

// Fire records that the owner of a hooked fault (the MongoDB simulator) applied it once:
// it counts in Fired, and a Count fault that is used up goes away (its owner is told).
// The owner must not hold its own locks when calling it. Unknown ids are ignored.
func (r *Registry) Fire(id string) {
	r.mu.Lock()
	i := slices.IndexFunc(r.faults, func(f *Fault) bool { return f.ID == id })
	if i < 0 {
		if _, ok := r.adding[id]; ok {
			r.adding[id]++
		}
		r.mu.Unlock()
		return
	}
	f := r.faults[i]
	f.Fired++
	usedUp := false
	if f.Count > 0 {
		f.Remaining--
		usedUp = f.Remaining <= 0
	}
	r.mu.Unlock()
	if usedUp {
		_, _ = r.Delete(id)
	}
}

// Active returns the faults matching target without rolling or using them up, for
// state-like questions such as "is this app unhealthy right now". A fault still letting
// its After requests through is not active yet.
func (r *Registry) Active(target string) []Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	var out []Fault
	for _, f := range r.faults {
		if Matches(f.Target, target) && f.armed() {
			out = append(out, *f)
		}
	}
	return out
}

// expireLocked drops used-up and timed-out request faults. Hooked faults (mongo:) end by
// their own timer, which also tells their owner (see Add).
func (r *Registry) expireLocked() {
	now := r.now()
	r.faults = slices.DeleteFunc(r.faults, func(f *Fault) bool {
		if _, hooked := r.hookLocked(f.Target); hooked {
			return false
		}
		if f.Count > 0 && f.Remaining <= 0 {
			return true
		}
		if f.DurationSec > 0 && now.Sub(f.Created) >= time.Duration(f.DurationSec*float64(time.Second)) {
			return true
		}
		return false
	})
}

// Matches reports whether a fault target pattern covers a concrete target; it is the one
// place patterns are interpreted. Patterns end in "*" to cover everything below them
// ("aws:*", "aws:ec2:*"), or name MutatingOps as the operation to cover every operation
// of a service that changes state ("aws:ec2:mutating", "aws:route53:mutating"): all but
// the read-only Describe*, Get* and List* ones.
func Matches(pattern, target string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(target, p)
	}
	if svc, ok := strings.CutSuffix(pattern, ":"+MutatingOps); ok && strings.HasPrefix(svc, "aws:") {
		op, ok := strings.CutPrefix(target, svc+":")
		return ok && op != "" && !strings.Contains(op, ":") && mutatingOp(op)
	}
	return pattern == target
}

// mutatingOp reports whether an AWS operation changes state, judged by its name: the
// Describe*, Get* and List* operations only read; everything else (Create*, Copy*,
// Modify*, Change*, Delete*, Run*, Set*, Put*, ...) writes.
func mutatingOp(op string) bool {
	for _, read := range []string{"Describe", "Get", "List"} {
		if strings.HasPrefix(op, read) {
			return false
		}
	}
	return op != ""
}

func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "f-" + hex.EncodeToString(b[:])
}
