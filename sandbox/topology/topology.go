// Package topology describes the simulated cloud the sandbox starts with: the account,
// regions, KMS keys, AMIs, hosted zones, health checks, alarms, regional apps, the client
// population, timings, AWS limits and the MongoDB replica sets.
//
// Files are YAML (converted to JSON by sigs.k8s.io/yaml, hence the json tags) and unknown
// fields are rejected so a typo never silently changes a rehearsal.
package topology

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"sigs.k8s.io/yaml"
)

// Topology is the whole simulated estate.
type Topology struct {
	Account      string        `json:"account,omitempty"`
	Regions      []string      `json:"regions"`
	KMSKeys      []KMSKey      `json:"kmsKeys,omitempty"`
	Images       []Image       `json:"images,omitempty"`
	HostedZones  []HostedZone  `json:"hostedZones,omitempty"`
	HealthChecks []HealthCheck `json:"healthChecks,omitempty"`
	Alarms       []Alarm       `json:"alarms,omitempty"`
	Apps         []App         `json:"apps,omitempty"`
	Traffic      Traffic       `json:"traffic,omitempty"`
	Timing       Timing        `json:"timing,omitempty"`
	Limits       bool          `json:"limits,omitempty"`
	Mongo        Mongo         `json:"mongo,omitempty"`
}

// KMSKey is a customer-managed key in one region. Encrypted AMI copies into a region need
// a key that exists there; the AWS-managed alias/aws/ebs is always available.
type KMSKey struct {
	Region string `json:"region"`
	ID     string `json:"id"`
	Alias  string `json:"alias,omitempty"`
}

// Image is an AMI the account owns at start.
type Image struct {
	Region      string            `json:"region"`
	Name        string            `json:"name"`
	ID          string            `json:"id,omitempty"`
	Description string            `json:"description,omitempty"`
	SizeGiB     int               `json:"sizeGiB"`
	Encrypted   bool              `json:"encrypted,omitempty"`
	KMSKeyID    string            `json:"kmsKeyId,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// HostedZone is a public Route 53 zone and its records.
type HostedZone struct {
	Name    string   `json:"name"`
	ID      string   `json:"id,omitempty"`
	Records []Record `json:"records,omitempty"`
}

// Record is a name/type; simple when Values is set, weighted when Weighted is set.
type Record struct {
	Name     string        `json:"name"`
	Type     string        `json:"type"`
	TTL      int64         `json:"ttl,omitempty"`
	Values   []string      `json:"values,omitempty"`
	Weighted []WeightedSet `json:"weighted,omitempty"`
}

// WeightedSet is one weighted record set of a name.
type WeightedSet struct {
	SetIdentifier string   `json:"setIdentifier"`
	Weight        int64    `json:"weight"`
	Values        []string `json:"values"`
	// HealthCheck names a health check of the healthChecks section.
	HealthCheck string `json:"healthCheck,omitempty"`
}

// HealthCheck is a Route 53 health check. When App names a region with an app, the
// check's status follows that app's /healthz.
type HealthCheck struct {
	Name             string `json:"name"`
	ID               string `json:"id,omitempty"`
	App              string `json:"app,omitempty"`
	Type             string `json:"type,omitempty"`
	FQDN             string `json:"fqdn,omitempty"`
	ResourcePath     string `json:"resourcePath,omitempty"`
	FailureThreshold int32  `json:"failureThreshold,omitempty"`
}

// Alarm is a CloudWatch metric alarm. When App names a region, the alarm goes to ALARM
// while that app's error rate is above Threshold (a fraction, e.g. 0.05).
type Alarm struct {
	Name      string  `json:"name"`
	Region    string  `json:"region"`
	App       string  `json:"app,omitempty"`
	Threshold float64 `json:"threshold,omitempty"`
	Metric    string  `json:"metric,omitempty"`
	Namespace string  `json:"namespace,omitempty"`
}

// App is the regional deployment clients reach after resolving the weighted record.
type App struct {
	Name    string `json:"name"`
	Region  string `json:"region"`
	Address string `json:"address"`
}

// Traffic sizes the simulated client population.
type Traffic struct {
	Clients        int     `json:"clients,omitempty"`
	RequestsPerSec float64 `json:"requestsPerSec,omitempty"`
	// Record is the name clients resolve; defaults to the first weighted record.
	Record string `json:"record,omitempty"`
}

// Timing sets how long simulated operations take.
type Timing struct {
	CopyTimePerGiB     Duration `json:"copyTimePerGiB,omitempty"`
	Route53InsyncDelay Duration `json:"route53InsyncDelay,omitempty"`
	InstanceStartTime  Duration `json:"instanceStartTime,omitempty"`
}

// Mongo is parsed and validated here and wired to the MongoDB simulator by the caller.
type Mongo struct {
	ReplicaSets []ReplicaSet `json:"replicaSets"`
}

// ReplicaSet is one simulated MongoDB replica set.
type ReplicaSet struct {
	Name string `json:"name"` // e.g. rs0; what members and drivers call the set
	// ID tells the set apart in the sandbox: the <set> of mongo:<set>:<port> faults, the key
	// of the event record and of MongoSets. Empty means Name. It exists because real
	// companies run many sets named rs0, and ferry must be rehearsed with two at once.
	ID                string        `json:"id,omitempty"`
	Members           []MongoMember `json:"members"`
	ElectionTime      Duration      `json:"electionTime,omitempty"`
	Lag               Duration      `json:"lag,omitempty"`
	InitialSyncPerMiB Duration      `json:"initialSyncPerMiB,omitempty"`
	DataSizeMiB       int           `json:"dataSizeMiB,omitempty"`
}

// Key is the set's id, or its name when it has none: what the sandbox tells it apart by.
func (rs ReplicaSet) Key() string {
	if rs.ID != "" {
		return rs.ID
	}
	return rs.Name
}

// MongoMember is one mongod of a replica set.
type MongoMember struct {
	Port     int     `json:"port"`     // 127.0.0.1:<port>
	Region   string  `json:"region"`   // becomes tag region:<region>
	InConfig bool    `json:"inConfig"` // false: started but not in the replica set config yet
	Priority float64 `json:"priority,omitempty"`
	Votes    *int    `json:"votes,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("2s", "150ms").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string; a bare number is refused because its unit
// would be a guess.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"2s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("parse duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Parse reads a topology from YAML or JSON bytes, applies defaults and validates it.
func Parse(data []byte) (*Topology, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parse topology: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var t Topology
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("parse topology: %w", err)
	}
	t.applyDefaults()
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Load reads and parses a topology file.
func Load(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func (t *Topology) applyDefaults() {
	if t.Account == "" {
		t.Account = DefaultAccount
	}
	if t.Traffic.Clients == 0 {
		t.Traffic.Clients = 20
	}
	if t.Traffic.RequestsPerSec == 0 {
		t.Traffic.RequestsPerSec = 20
	}
	if t.Timing.CopyTimePerGiB == 0 {
		t.Timing.CopyTimePerGiB = Duration(2 * time.Second)
	}
	if t.Timing.Route53InsyncDelay == 0 {
		t.Timing.Route53InsyncDelay = Duration(5 * time.Second)
	}
	if t.Timing.InstanceStartTime == 0 {
		t.Timing.InstanceStartTime = Duration(3 * time.Second)
	}
}

// Records lists every record of every zone, for callers that look one up by name.
func (t *Topology) Records() []Record {
	var out []Record
	for _, z := range t.HostedZones {
		out = append(out, z.Records...)
	}
	return out
}

// HasRegion reports whether the topology declares region.
func (t *Topology) HasRegion(region string) bool {
	for _, r := range t.Regions {
		if r == region {
			return true
		}
	}
	return false
}

// AppFor returns the app of a region, if any.
func (t *Topology) AppFor(region string) (App, bool) {
	for _, a := range t.Apps {
		if a.Region == region {
			return a, true
		}
	}
	return App{}, false
}
