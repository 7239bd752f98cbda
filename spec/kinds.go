package spec

import (
	"strings"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

// Kind is the spec side of a migration kind's contract (the workflow side is
// workflows.KindDef, which it carries): which part of a MigrationSpec describes it, its
// enum in the API, and how its workflow's input is built from a whole spec. The server
// looks kinds up here and has no switch on kind.
type Kind struct {
	*workflows.KindDef
	// Proto is the kind's value in the API's MigrationKind enum.
	Proto ferryv1.MigrationKind
	// In reports whether m describes a migration of this kind.
	In func(m *ferryv1.MigrationSpec) bool
	// Input validates m statically (no cloud calls) and builds the workflow's input with
	// the common fields c. Bad input is a *FieldError naming the field.
	Input func(m *ferryv1.MigrationSpec, c workflows.Common) (any, error)
}

// Kinds lists every kind a spec can describe.
var Kinds = []Kind{
	{
		KindDef: workflows.KindByName(workflows.KindDNSShift), Proto: ferryv1.MigrationKind_MIGRATION_KIND_DNS_SHIFT,
		In: func(m *ferryv1.MigrationSpec) bool { return m.GetDnsShift() != nil },
		Input: func(m *ferryv1.MigrationSpec, c workflows.Common) (any, error) {
			s, err := DNSShift(m.GetDnsShift())
			return workflows.DNSShiftInput{Spec: s, Common: c}, err
		},
	},
	{
		KindDef: workflows.KindByName(workflows.KindAMIShare), Proto: ferryv1.MigrationKind_MIGRATION_KIND_AMI_SHARE,
		In: func(m *ferryv1.MigrationSpec) bool { return m.GetAmiShare() != nil },
		Input: func(m *ferryv1.MigrationSpec, c workflows.Common) (any, error) {
			s, err := AMIShare(m.GetAmiShare())
			return workflows.AMIShareInput{Spec: s, Common: c}, err
		},
	},
	{
		KindDef: workflows.KindByName(workflows.KindMongoPrimaryMove), Proto: ferryv1.MigrationKind_MIGRATION_KIND_MONGO_PRIMARY_MOVE,
		In: func(m *ferryv1.MigrationSpec) bool { return m.GetMongoPrimaryMove() != nil },
		Input: func(m *ferryv1.MigrationSpec, c workflows.Common) (any, error) {
			s, err := MongoPrimaryMove(m.GetMongoPrimaryMove())
			return workflows.MongoPrimaryMoveInput{Spec: s, Common: c}, err
		},
	},
	{
		KindDef: workflows.KindByName(workflows.KindRegionMove), Proto: ferryv1.MigrationKind_MIGRATION_KIND_REGION_MOVE,
		In: func(m *ferryv1.MigrationSpec) bool { return m.GetRegionMove() != nil },
		Input: func(m *ferryv1.MigrationSpec, c workflows.Common) (any, error) {
			if err := regionMoveName(c.Name); err != nil {
				return nil, err
			}
			s, err := RegionMove(m.GetRegionMove())
			return workflows.RegionMoveInput{Spec: s, Common: c}, err
		},
	},
	{
		KindDef: workflows.KindByName(workflows.KindDBCutover), Proto: ferryv1.MigrationKind_MIGRATION_KIND_DATABASE_CUTOVER,
		In: func(m *ferryv1.MigrationSpec) bool { return m.GetDatabaseCutover() != nil },
		Input: func(m *ferryv1.MigrationSpec, c workflows.Common) (any, error) {
			s, err := DatabaseCutover(m.GetDatabaseCutover())
			return workflows.DBCutoverInput{Spec: s, Common: c}, err
		},
	},
	{
		KindDef: workflows.KindByName(workflows.KindBrokerMove), Proto: ferryv1.MigrationKind_MIGRATION_KIND_BROKER_MOVE,
		In: func(m *ferryv1.MigrationSpec) bool { return m.GetBrokerMove() != nil },
		Input: func(m *ferryv1.MigrationSpec, c workflows.Common) (any, error) {
			s, err := BrokerMove(m.GetBrokerMove())
			return workflows.BrokerMoveInput{Spec: s, Common: c}, err
		},
	},
}

// KindOf returns the kind m describes, or a *FieldError when it describes none.
func KindOf(m *ferryv1.MigrationSpec) (Kind, error) {
	if m == nil {
		return Kind{}, fieldErr("spec", "is missing")
	}
	for _, k := range Kinds {
		if k.In(m) {
			return k, nil
		}
	}
	return Kind{}, fieldErr("spec", "names no migration: set dnsShift, amiShare, mongoPrimaryMove, regionMove, databaseCutover or brokerMove")
}

// KindByProto returns the kind with the API enum value k.
func KindByProto(k ferryv1.MigrationKind) (Kind, bool) {
	for _, kd := range Kinds {
		if kd.Proto == k {
			return kd, true
		}
	}
	return Kind{}, false
}

// KindByName returns the kind named name (a FerryKind value).
func KindByName(name string) (Kind, bool) {
	for _, kd := range Kinds {
		if kd.Name == name {
			return kd, true
		}
	}
	return Kind{}, false
}

// Input validates a whole spec and builds its workflow's input: the kind's own part and
// the fields every kind shares. initiator is who starts it (from authentication), planHash
// the plan the start is pinned to ("" for none).
func Input(m *ferryv1.MigrationSpec, initiator, planHash string) (Kind, any, error) {
	k, err := KindOf(m)
	if err != nil {
		return Kind{}, nil, err
	}
	c, err := common(m, initiator, planHash)
	if err != nil {
		return Kind{}, nil, err
	}
	in, err := k.Input(m, c)
	if err != nil {
		return Kind{}, nil, err
	}
	return k, in, nil
}

// common validates and normalises the fields every kind shares.
func common(m *ferryv1.MigrationSpec, initiator, planHash string) (workflows.Common, error) {
	if n := m.GetApprovals().GetRequiredApprovers(); n > 10 {
		return workflows.Common{}, fieldErr("approvals.requiredApprovers", "%d is more than 10; no gate should need that many people", n)
	}
	c := workflows.Common{
		Name: strings.TrimSpace(m.GetName()), Reason: m.GetReason(), Initiator: initiator,
		Approvals: Approvals(m.GetApprovals()), PlanHash: planHash, OnFailure: workflows.OnFailureRollback,
	}
	switch m.GetOnFailure() {
	case ferryv1.OnFailure_ON_FAILURE_UNSPECIFIED, ferryv1.OnFailure_ON_FAILURE_ROLLBACK:
	case ferryv1.OnFailure_ON_FAILURE_LEAVE:
		c.OnFailure = workflows.OnFailureLeave
	default:
		return workflows.Common{}, fieldErr("onFailure", "%v is not rollback or leave", m.GetOnFailure())
	}
	return c, nil
}
