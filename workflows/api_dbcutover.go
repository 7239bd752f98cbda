package workflows

import (
	"strings"
	"time"
)

// --- Database cutover (contract) -----------------------------------------------------------

// KindDBCutover is the database cutover's FerryKind value.
const KindDBCutover = "database-cutover"

// DBCutoverWorkflowID names a cutover by the database's DNS name ("db/db-primary.shop.internal."):
// the name is what the application writes through, so two cutovers of it never run at once.
func DBCutoverWorkflowID(recordName string) string {
	return "db/" + strings.ToLower(fqdnName(strings.TrimSpace(recordName)))
}

// DBSecretRef points at a secret the worker resolves (an environment variable or a file).
type DBSecretRef struct {
	Env  string
	File string
}

// DBRecordRef names a simple Route 53 record.
type DBRecordRef struct {
	Zone string // name or id
	Name string // fully qualified
	Type string // A or CNAME
}

// DBCutoverSpec is the validated, normalised database cutover spec (built from the proto
// by package spec). It holds no observed state.
type DBCutoverSpec struct {
	Source, Target string // host:port
	Flavor         string // "mariadb" or "mysql"
	AdminUser      string
	AdminPassword  DBSecretRef
	AppUser        string
	AppUserHost    string
	ReplUser       string
	ReplPassword   DBSecretRef
	DBRecord       DBRecordRef
	// DBRecordValue is the value the database record gets: the target's address.
	DBRecordValue string
	// Maintenance is the application's record, pointed at MaintenanceValue meanwhile; nil
	// for none.
	Maintenance      *DBRecordRef `json:",omitempty"`
	MaintenanceValue string       `json:",omitempty"`
	MaxLag           time.Duration
	MaxTxnAge        time.Duration
	CatchUpTimeout   time.Duration
	RequireApproval  bool
	CanarySchema     string
	// FreezeSettle is how long the frozen source's GTID position must stay still (default
	// 100ms).
	FreezeSettle time.Duration `json:",omitempty"`
}

// DBCutoverInput starts a database cutover.
type DBCutoverInput struct {
	Spec DBCutoverSpec
	Common
}

// PlanDBCutoverInput asks for a database cutover plan (a dry run).
type PlanDBCutoverInput struct {
	Spec DBCutoverSpec
}

// DBCutoverResult is how a cutover ended.
type DBCutoverResult struct {
	Outcome
	// Primary is the server (host:port) the application writes to now.
	Primary string
	// WriteFreeze is from the freeze to the new primary being writable and reachable by
	// its DNS name (INSYNC), as the workflow saw it; zero when writes were never frozen.
	WriteFreeze time.Duration
	// CatchUp and RepointInsync are the mandated waits inside it.
	CatchUp       time.Duration
	RepointInsync time.Duration
}

// DBCutoverProgress is the database cutover's part of Progress.
type DBCutoverProgress struct {
	Source, Target string
	// Primary is the server the application writes to (or will, once writes resume).
	Primary string
	// WritesFrozen: the freeze is in effect on the primary.
	WritesFrozen bool
	// PointOfNoReturn: the target was made writable; going back is a switch the other way.
	PointOfNoReturn  bool
	MaintenanceOn    bool
	DBRecordValue    string
	SourceGTID       string
	TargetGTID       string
	Lag              time.Duration
	WriteFreeze      time.Duration
	FreezeStartedAt  time.Time `json:",omitzero"`
	FreezeEndedAt    time.Time `json:",omitzero"`
	ReverseReplicate bool
}
