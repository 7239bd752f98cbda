// Package control is the sandbox's control plane: the fault registry used for GameDays,
// the shared types of the control HTTP API (faults, the AWS call record, traffic) and a
// Go client for that API.
package control

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fault kinds.
const (
	KindThrottle  = "throttle"  // aws: the service's throttling error
	KindError     = "error"     // aws: a 5xx (InternalError / InternalFailure / ServiceUnavailable)
	KindLatency   = "latency"   // aws and app: adds LatencyMs
	KindUnhealthy = "unhealthy" // app: /healthz 503 and requests fail at Rate
)

// Fault is one injected failure. Target selects what it hits: "aws:ec2:CopyImage",
// "aws:ec2:*", "aws:route53:*", "aws:*", "app:eu-west-2", or "mongo:..." (handled by the
// MongoDB simulator).
type Fault struct {
	ID          string    `json:"id,omitempty"`
	Target      string    `json:"target"`
	Kind        string    `json:"kind"`
	Rate        float64   `json:"rate"`
	LatencyMs   int       `json:"latencyMs,omitempty"`
	Count       int       `json:"count,omitempty"`
	DurationSec float64   `json:"durationSec,omitempty"`
	Created     time.Time `json:"created,omitzero"`
	// Remaining is how many more times a Count fault fires (read-only).
	Remaining int `json:"remaining,omitempty"`
	// Fired counts how often the fault was applied (read-only).
	Fired int `json:"fired"`
}

// FieldError is a bad fault (or other input) naming the offending field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"error"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Hooks lets owners of other targets (the MongoDB simulator) take part: Add may refuse
// a fault (its error is shown to the user) and Remove is told when one goes away.
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
	rnd     *mrand.Rand
	now     func() time.Time
}

// NewRegistry returns an empty registry; regions are the ones app targets may name.
// seed makes rate decisions reproducible.
func NewRegistry(regions []string, seed uint64) *Registry {
	r := &Registry{
		regions: map[string]bool{},
		hooks:   map[string]Hooks{},
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
	if f.Count < 0 {
		return &FieldError{"count", "must not be negative"}
	}
	if f.DurationSec < 0 {
		return &FieldError{"durationSec", "must not be negative"}
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
		case KindThrottle, KindError:
		case KindLatency:
			if f.LatencyMs == 0 {
				return &FieldError{"latencyMs", "required for a latency fault"}
			}
		default:
			return &FieldError{"kind", fmt.Sprintf("unknown kind %q for an aws target (throttle, error, latency)", f.Kind)}
		}
	case "app":
		if !r.regions[rest] {
			return &FieldError{"target", fmt.Sprintf("unknown region %q", rest)}
		}
		switch f.Kind {
		case KindUnhealthy:
		case KindLatency:
			if f.LatencyMs == 0 {
				return &FieldError{"latencyMs", "required for a latency fault"}
			}
		default:
			return &FieldError{"kind", fmt.Sprintf("unknown kind %q for an app target (unhealthy, latency)", f.Kind)}
		}
	default:
		if _, ok := r.hooks[prefix+":"]; !ok && prefix != "mongo" {
			return &FieldError{"target", fmt.Sprintf("unknown target prefix %q (aws, app, mongo)", prefix)}
		}
		if f.Count > 0 {
			// A hooked fault is a state of the simulator (a member down), not something
			// each request rolls for, so there is nothing for a count to use up.
			return &FieldError{"count", fmt.Sprintf("applies to request faults (aws:, app:); a %s: fault is a state: bound it with durationSec or remove it", prefix)}
		}
		if f.Kind == "" {
			return &FieldError{"kind", "is required"}
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
	hook, hooked := r.hookLocked(f.Target)
	r.mu.Unlock()

	if f.ID == "" {
		f.ID = newID()
	}
	f.Created = r.now()
	f.Remaining = f.Count
	f.Fired = 0
	if hooked && hook.Add != nil {
		if err := hook.Add(f); err != nil {
			return Fault{}, &FieldError{"target", err.Error()}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, &f)
	if hooked && f.DurationSec > 0 {
		// Its owner must be told when it ends, and nothing may wait for a request to
		// notice: the member comes back up on time.
		id := f.ID
		time.AfterFunc(time.Duration(f.DurationSec*float64(time.Second)), func() { _, _ = r.Delete(id) })
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

// Clear removes every fault.
func (r *Registry) Clear() error {
	r.mu.Lock()
	old := r.faults
	r.faults = nil
	r.mu.Unlock()
	var first error
	for _, f := range old {
		if err := r.notifyRemove(f); err != nil && first == nil {
			first = err
		}
	}
	return first
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
// "aws:ec2:CopyImage" or "app:eu-west-2"): each matching fault fires with probability
// Rate, and a Count fault is used up by firing.
func (r *Registry) Hit(target string) []Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	var out []Fault
	for _, f := range r.faults {
		if !Matches(f.Target, target) {
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

// Active returns the faults matching target without rolling or using them up, for
// state-like questions such as "is this app unhealthy right now".
func (r *Registry) Active(target string) []Fault {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked()
	var out []Fault
	for _, f := range r.faults {
		if Matches(f.Target, target) {
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

// Matches reports whether a fault target pattern covers a concrete target. Patterns end
// in "*" to cover everything below them: "aws:*", "aws:ec2:*".
func Matches(pattern, target string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(target, p)
	}
	return pattern == target
}

func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "f-" + hex.EncodeToString(b[:])
}
