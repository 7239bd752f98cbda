// Package workflows holds ferry's deterministic orchestration: one file per migration plus
// the shared steering (approvals, pause, rollback, audit). This file is the contract that the
// API server and the worker both import: task queue, handler names, search attributes,
// workflow-ID helpers and the structs that cross the Temporal boundary.
//
// Every workflow, signal, query and update takes one struct and returns one struct, so a
// field can be added without breaking running workflows.
package workflows

import (
	"github.com/ferryhq/ferry/activities"
	"github.com/ferryhq/ferry/proof"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
)

// TaskQueue is the one queue every ferry worker polls. Workers are stateless, so adding
// workers on this queue is how ferry scales.
const TaskQueue = "ferry"

// Signal names. The Temporal UI and `temporal workflow signal` can send them too, which is
// why each workflow re-checks authorisation rules (four-eyes) itself.
const (
	SignalApprove  = "approve"
	SignalPause    = "pause"
	SignalResume   = "resume"
	SignalRollback = "rollback"
)

// Update names. Updates run the same handlers as the signals but give the caller an
// immediate yes or no (e.g. "nothing awaits approval").
const (
	UpdateApprove  = "approve-update"
	UpdatePause    = "pause-update"
	UpdateResume   = "resume-update"
	UpdateRollback = "rollback-update"
)

// QueryProgress returns a Progress.
const QueryProgress = "progress"

// Kind values, as stored in the FerryKind search attribute.
const (
	KindDNSShift         = "dns-shift"
	KindAMIShare         = "ami-share"
	KindMongoPrimaryMove = "mongo-primary-move"
	KindRegionMove       = "region-move"
	KindPing             = "ping"
)

// State values, as stored in the FerryState search attribute and in Progress.State.
const (
	StateRunning          = "running"
	StateAwaitingApproval = "awaiting-approval"
	StatePaused           = "paused"
	StateRollingBack      = "rolling-back"
	StateCompleted        = "completed"
	StateRolledBack       = "rolled-back"
	StateFailed           = "failed"
	StateCancelled        = "cancelled"
	// StateBlocked is a step that keeps failing and is retried at a slow pace (the undo
	// of a rollback never gives up); an alert can watch FerryState="blocked".
	StateBlocked = "blocked"
)

// Search attributes: ferry's whole visibility schema, declared here and nowhere else.
// `ferry setup` (internal/clustersetup) registers exactly this list on any cluster and
// `ferry dev` runs the same code; readiness checks it. SQL visibility (Temporal 1.29) allows
// per namespace 10 Keyword, 3 KeywordList and 3 Bool custom attributes
// (TestSearchAttributesFitSQLVisibility keeps the list within them), so another issue's
// filter should reuse a value here before adding a name.
var (
	SAKind         = temporal.NewSearchAttributeKeyKeyword("FerryKind")
	SAPhase        = temporal.NewSearchAttributeKeyKeyword("FerryPhase")
	SAState        = temporal.NewSearchAttributeKeyKeyword("FerryState")
	SASourceRegion = temporal.NewSearchAttributeKeyKeyword("FerrySourceRegion")
	// SATargetRegions holds every target region, one element each, so "X IN targets"
	// matches a multi-region AMI share for each of its regions.
	SATargetRegions    = temporal.NewSearchAttributeKeyKeywordList("FerryTargetRegions")
	SAInitiator        = temporal.NewSearchAttributeKeyKeyword("FerryInitiator")
	SAAwaitingApproval = temporal.NewSearchAttributeKeyBool("FerryAwaitingApproval")

	// SATargetRegionLegacy is the Keyword that held the targets comma-joined before
	// FerryTargetRegions (a Keyword cannot become a KeywordList under its name). Nothing
	// writes it now; it stays registered so migrations started before the change are still
	// found by `ferry list --region` (which asks both) in an existing data directory.
	SATargetRegionLegacy = temporal.NewSearchAttributeKeyKeyword("FerryTargetRegion")
)

// SearchAttributeKeys lists every ferry search attribute, for registration.
var SearchAttributeKeys = []temporal.SearchAttributeKey{
	SAKind, SAPhase, SAState, SASourceRegion, SATargetRegions, SAInitiator, SAAwaitingApproval,
	SATargetRegionLegacy,
}

// DNSShiftWorkflowID derives the workflow id from the record, so two shifts of one record
// can never run at once: the id is the lock.
func DNSShiftWorkflowID(zone, recordName, recordType string) string {
	return "dns/" + strings.TrimSuffix(zone, ".") + "/" + strings.TrimSuffix(recordName, ".") + "/" + recordType
}

// ActionRequest is the payload of approve, pause, resume and rollback signals and updates.
type ActionRequest struct {
	// Identity is who asks; the API fills it from authentication.
	Identity string
	// Reason is free text for the audit trail.
	Reason string
	// Step optionally names the step an approval is for; empty means the one waiting.
	Step string
	// Proof is the API's signature over who asks for what (see package proof); approvals and
	// resumes without a valid one are refused where the worker trusts the API's keys.
	Proof *proof.Proof `json:",omitempty"`
}

// AuditEntry records one action on a migration.
type AuditEntry struct {
	Time     time.Time
	Identity string
	Action   string
	Reason   string
	Step     string
	// Details holds what only a person digging needs, e.g. a failure's whole error chain.
	Details string `json:",omitempty"`
}

// ApprovalPolicy is the normalised approval configuration of a migration.
type ApprovalPolicy struct {
	// RequiredApprovers is how many distinct identities must approve each gate (>= 1).
	RequiredApprovers int
	// AllowSelfApproval lets the initiator approve (four-eyes off).
	AllowSelfApproval bool
}

// StepProgress is one step of a migration as the progress query reports it.
type StepProgress struct {
	Name      string
	Status    string // pending, running, done, failed, rolled-back
	StartTime time.Time
	EndTime   time.Time
	Detail    string
}

// PendingApproval is a gate that waits for approvers.
type PendingApproval struct {
	Step       string
	Required   int
	ApprovedBy []string
}

// GateResult is a gate's latest evaluation.
type GateResult struct {
	Name    string
	Healthy bool
	// Verdict is "pass", "fail" or "inconclusive".
	Verdict string `json:",omitempty"`
	Detail  string
	Time    time.Time
}

// Progress is the full state of any migration, returned by QueryProgress.
type Progress struct {
	Kind            string
	State           string
	Phase           string
	Message         string
	Initiator       string
	PlanHash        string
	Steps           []StepProgress
	PendingApproval *PendingApproval
	Audit           []AuditEntry
	DNS             *DNSProgress
	AMI             *AMIProgress
	Mongo           *MongoProgress
	DB              *DBCutoverProgress  `json:",omitempty"`
	Broker          *BrokerMoveProgress `json:",omitempty"`
	Phases          []PhaseProgress
}

// PingInput starts the ping workflow: a minimal real workflow used by `ferry dev`'s smoke
// test and the foundation's integration tests to prove a worker executes work.
type PingInput struct {
	Message string
}

// PingResult is the ping workflow's answer.
type PingResult struct {
	Message string
	// Worker is the identity of the worker that ran the activity.
	Worker string
}

// --- DNS shift ---------------------------------------------------------------------------

// DNSShiftSpec is the validated, normalised DNS shift spec (built from the proto by
// package spec). It holds no observed state: the workflow's preflight reads that.
type DNSShiftSpec struct {
	Zone       string // hosted zone name ("shop.example.") or id ("Z...")
	RecordName string // fully qualified, trailing dot
	RecordType string
	From       string // set identifier serving traffic now
	To         string // set identifier receiving traffic
	// Percents on To after each step, strictly increasing, ending at 100.
	Percents []int
	// ApproveAfter[i] says whether step i waits for approval after its dwell.
	ApproveAfter  []bool
	TotalWeight   int
	BakeTime      time.Duration
	GateInterval  time.Duration
	Gates         []Gate
	RollbackMode  string // "immediate" | "gradual"
	OnGateFailure string // "rollback" | "pause"
}

// Gate is one normalised gate. Exactly one of the check fields is set.
type Gate struct {
	Name string
	// FailureThreshold is the failing evaluations in a row that fail the gate: the spec's
	// failureLimit + 1. (The name predates failureLimit; running workflows' inputs carry it.)
	FailureThreshold int
	// InconclusiveLimit is the inconclusive evaluations in a row tolerated before
	// OnInconclusive acts.
	InconclusiveLimit int `json:",omitempty"`
	// OnInconclusive is OnInconclusivePause ("" too), OnInconclusiveRollback or
	// OnInconclusiveIgnore.
	OnInconclusive string `json:",omitempty"`
	// Count is the fewest evaluations per step (the plan stretches dwells to fit them).
	Count         int `json:",omitempty"`
	HTTP          *HTTPProbe
	HealthCheckID string
	Alarm         *AlarmRef
	// ErrorRate was the sandbox-only error-rate check, retired for the metric gates. No
	// spec sets it; it stays so the JSON of a gate, and so the plan hash of every shift
	// planned before, is unchanged (the new fields are omitted when empty for the same
	// reason).
	ErrorRate *ErrorRateRef
	// The metric checks are the activity's own types: they carry nothing the workflow
	// reads, only what the worker needs to ask.
	Prometheus *activities.PrometheusCheck `json:",omitempty"`
	Metric     *activities.MetricCheck     `json:",omitempty"`
}

// ErrorRateRef is the retired sandbox error-rate check (see Gate.ErrorRate).
type ErrorRateRef struct {
	Region       string
	MaxErrorRate float64
}

// What an inconclusive gate does (Gate.OnInconclusive).
const (
	OnInconclusivePause    = "pause"
	OnInconclusiveRollback = "rollback"
	OnInconclusiveIgnore   = "ignore"
)

// HTTPProbe is an HTTP GET gate.
type HTTPProbe struct {
	URL          string
	ExpectStatus int
	Timeout      time.Duration
}

// AlarmRef names a CloudWatch alarm.
type AlarmRef struct {
	Name   string
	Region string
}

// DNSShiftInput starts a DNS shift workflow.
type DNSShiftInput struct {
	Spec DNSShiftSpec
	Common
	// Continued is the state an earlier run of the chain handed over (continue-as-new);
	// nil for a migration's first run.
	Continued *DNSShiftContinued `json:",omitempty"`
}

// DNSShiftResult is how a DNS shift ended.
type DNSShiftResult struct {
	Outcome
	FromWeight int
	ToWeight   int
}

// DNSProgress is the DNS-specific part of Progress.
type DNSProgress struct {
	FromWeight int
	ToWeight   int
	StepIndex  int
	Gates      []GateResult
}

// --- plans (dry runs) ----------------------------------------------------------------------

// PlannedStep is one step a plan would run.
type PlannedStep struct {
	Name          string
	Description   string
	NeedsApproval bool
	Wait          time.Duration
}

// Plan is the result of a dry run: every step, the state it was computed from, and a hash
// over both that a later start can pin.
type Plan struct {
	ID           string
	Kind         string
	Steps        []PlannedStep
	Observations []string
	Hash         string
	// Resources are what a run of the plan changes, named as the cloud knows them: the
	// run locks them (locks.go), and a composite locks its phases' all at once.
	Resources []Resource `json:",omitempty"`
}

// PlanDNSShiftInput asks for a DNS shift plan. The plan runs as a short workflow so the
// read-only calls happen on workers, which hold the cloud credentials; the API server only
// talks to Temporal.
type PlanDNSShiftInput struct {
	Spec DNSShiftSpec
}

// ActionResult answers an approve, pause, resume or rollback update (added with the DNS
// shift): the caller learns at once what its action did, e.g. "approved 1 of 2".
type ActionResult struct {
	// State is the migration state after the action.
	State   string
	Message string
}

// SystemIdentity is the identity ferry records for actions it takes itself (a gate failing,
// an automatic rollback), so the audit trail separates people from automation.
const SystemIdentity = "ferry"
