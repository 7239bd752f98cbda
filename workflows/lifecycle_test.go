package workflows

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
)

// Adding a spec field, left at its zero value, must not change the hash of a plan made
// before it existed: a migration pinned to that hash would otherwise refuse to run.
func TestPlanHashIgnoresNewZeroFields(t *testing.T) {
	type specV1 struct {
		Zone    string
		Weights []int
	}
	type specV2 struct {
		Zone     string
		Weights  []int
		NewField string
		NewMap   map[string]string
		NewFlag  bool
		NewPtr   *int
		NewList  []string
	}
	h1 := PlanHash("v", specV1{Zone: "z", Weights: []int{0, 100}})
	h2 := PlanHash("v", specV2{Zone: "z", Weights: []int{0, 100}})
	require.Equal(t, h1, h2)
	require.Len(t, h1, 16)
	require.NotEqual(t, h1, PlanHash("v", specV2{Zone: "z", Weights: []int{0, 100}, NewFlag: true}), "a set field counts")
	require.NotEqual(t, h1, PlanHash("v", specV1{Zone: "z", Weights: []int{100, 0}}), "list order and zeros inside lists count")
	require.NotEqual(t, h1, PlanHash("w", specV1{Zone: "z", Weights: []int{0, 100}}), "the version counts")
	m1 := PlanHash("v", map[string]int{"a": 1, "b": 2})
	for range 20 {
		require.Equal(t, m1, PlanHash("v", map[string]int{"b": 2, "a": 1}), "map order never reaches the hash")
	}
}

func TestCheckDriftAcceptsLegacyPins(t *testing.T) {
	require.NoError(t, checkDrift("", "now", ""))
	require.NoError(t, checkDrift("now", "now", ""))
	require.NoError(t, checkDrift("old", "now", "", "old"), "a pin made under the v1 encoding of the same plan")
	err := checkDrift("other", "now", "zone Z1", "old")
	require.True(t, HasErrorType(err, ErrPlanDrifted))
	require.ErrorContains(t, err, "zone Z1")
	require.ErrorContains(t, err, "ferry plan")
}

// A failure shown to people names what failed and the root cause once, however many
// envelopes (child, phase, activity) repeat it.
func TestFailureLineTellsTheCauseOnce(t *testing.T) {
	root := temporal.NewNonRetryableApplicationError("change weights: AccessDenied: not authorized", "AccessDenied", nil)
	child := temporal.NewNonRetryableApplicationError("failed: change weights: AccessDenied: not authorized; still in effect: x", ErrMigrationFailed, root)
	require.Equal(t, "failed: change weights: AccessDenied: not authorized; still in effect: x", failureLine(child))
	phase := temporal.NewNonRetryableApplicationError("phase dns-shift", ErrRegionPhaseFailed, root)
	require.Equal(t, "phase dns-shift: change weights: AccessDenied: not authorized", failureLine(phase))
	require.Equal(t, "plain", failureLine(errors.New(" plain ")))
	require.True(t, HasErrorType(phase, "AccessDenied"), "the cause's type is found through the chain")
	require.False(t, HasErrorType(phase, ErrPlanDrifted))
}

// A failed kind's result travels in its error's details, and a parent finds it there.
func TestOutcomeTravelsInFailureDetails(t *testing.T) {
	res := DNSShiftResult{Outcome: Outcome{State: StateFailed, Message: "failed: x", Failure: "x",
		Changes: Changes{Kind: KindDNSShift, ID: "dns/z/www/A", InEffect: "weights 50/50", Record: []byte(`{"OriginalFrom":100}`)}}, FromWeight: 50, ToWeight: 50}
	local := temporal.NewNonRetryableApplicationError("failed: x", ErrMigrationFailed, nil, res)
	_, ok := outcomeOf(local)
	require.False(t, ok, "an error made here holds Go values, not an encoded Outcome; no panic")
	// As a parent sees it: through the failure converter, as Temporal carries it.
	fc := temporal.GetDefaultFailureConverter()
	err := fc.FailureToError(fc.ErrorToFailure(local))
	o, ok := outcomeOf(err)
	require.True(t, ok)
	require.Equal(t, res.Outcome, o)
	_, ok = outcomeOf(temporal.NewNonRetryableApplicationError("no details", "X", nil))
	require.False(t, ok)
	rec, derr := decodeRecord[dnsUndoRecord](&o.Changes)
	require.NoError(t, derr)
	require.Equal(t, 100, rec.OriginalFrom)
}

// The registry is the kind contract: every kind complete, names unique and stable (a
// renamed workflow type strands running histories).
func TestKindRegistry(t *testing.T) {
	names := map[string]string{}
	for _, k := range Kinds() {
		require.NotEmpty(t, k.Name)
		require.NotNil(t, k.Workflow, k.Name)
		require.NotNil(t, k.Plan, k.Name)
		for _, f := range []any{k.LockID, k.PlanInput, k.NewInput, k.Summary, k.Regions} {
			require.NotNil(t, f, k.Name)
		}
		require.Same(t, k, KindByName(k.Name))
		names[k.Name] = k.WorkflowName + "/" + k.PlanName
		// Every kind can build an undo run of a report it made.
		in := k.UndoInput(Changes{Kind: k.Name, ID: "x", InEffect: "y", Record: []byte("{}")}, Common{Name: "n"})
		require.NotNil(t, in, k.Name)
	}
	require.Equal(t, map[string]string{
		KindDNSShift:         "DNSShift/PlanDNSShift",
		KindAMIShare:         "AMIShare/PlanAMIShare",
		KindMongoPrimaryMove: "MongoPrimaryMove/PlanMongoPrimaryMove",
		KindRegionMove:       "RegionMove/PlanRegionMove",
		KindDBCutover:        "DatabaseCutover/PlanDatabaseCutover",
		KindBrokerMove:       "BrokerMove/PlanBrokerMove",
	}, names)
	require.Nil(t, KindByName("nope"))
}
