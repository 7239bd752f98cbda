package workflows

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/ferryhq/ferry/activities"
)

// The cutover's control flow with mocked activities (the real servers are exercised by
// e2e/dbcutover*_test.go): what runs in which order, and what is undone.

type dbHarness struct {
	env   *testsuite.TestWorkflowEnvironment
	mu    sync.Mutex
	calls []string
	// fail answers a call ("freeze 10.0.0.2:3306") with an error, or nil to let it pass.
	fail func(call string) error
}

// note records a call and returns the error fail gives it.
func (h *dbHarness) note(s string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, s)
	if h.fail != nil {
		return h.fail(s)
	}
	return nil
}

func (h *dbHarness) seq() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.calls, " | ")
}

func newDBHarness(t *testing.T, fail func(call string) error) *dbHarness {
	var s testsuite.WorkflowTestSuite
	h := &dbHarness{env: s.NewTestWorkflowEnvironment(), fail: fail}
	env := h.env
	// On a loaded machine (CI's two cores) the first workflow task of the package, which
	// pays for the SDK's lazy set-up, can take over the default second.
	env.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: 30 * time.Second})
	env.RegisterWorkflow(DatabaseCutover)
	RegisterLock(env)
	env.RegisterActivity(&activities.MySQL{})
	env.RegisterActivity(&activities.Route53{})
	env.OnActivity(r53.ReadRecord, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReadRecordInput) (activities.ReadRecordOutput, error) {
			v := "10.0.0.1"
			if strings.HasPrefix(in.Name, "www") {
				v = "198.51.100.30"
			}
			return activities.ReadRecordOutput{ZoneID: "Z1", Set: activities.RecordSet{Name: in.Name, Type: "A", TTL: 1, Values: []string{v}}}, nil
		})
	env.OnActivity(r53.SetRecord, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SetRecordInput) (activities.SetRecordOutput, error) {
			return activities.SetRecordOutput{ChangeID: "C1"}, h.note("dns " + in.Seen.Name + "=" + strings.Join(in.Values, ","))
		})
	env.OnActivity(r53.WaitInsync, mock.Anything, mock.Anything).Return(activities.WaitInsyncOutput{Status: "INSYNC"}, nil)
	env.OnActivity(mysqlActs.DBPreflight, mock.Anything, mock.Anything).Return(activities.DBPreflightOutput{
		Source: activities.DBServerState{ServerID: 1, GTID: "0-1-10"}, Target: activities.DBServerState{ServerID: 2, GTID: "0-1-10"}}, nil)
	env.OnActivity(mysqlActs.DBFreeze, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBFreezeInput) (activities.DBFreezeOutput, error) {
			return activities.DBFreezeOutput{Position: "0-1-11"}, h.note("freeze " + in.Server.Addr)
		})
	env.OnActivity(mysqlActs.DBUnfreeze, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBUnfreezeInput) error {
			return h.note("unfreeze " + in.Server.Addr)
		})
	env.OnActivity(mysqlActs.DBUnlockUser, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBUnfreezeInput) error {
			return h.note("unlock " + in.Server.Addr)
		})
	env.OnActivity(mysqlActs.DBCatchUp, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBCatchUpInput) (activities.DBCatchUpOutput, error) {
			return activities.DBCatchUpOutput{Position: in.Position}, h.note("catchup " + in.Server.Addr)
		})
	env.OnActivity(mysqlActs.DBPromote, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBPromoteInput) error {
			return h.note("promote " + in.Server.Addr)
		})
	env.OnActivity(mysqlActs.DBReplicate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBReplicateInput) error {
			return h.note("replicate " + in.Server.Addr + "<-" + in.Source)
		})
	env.OnActivity(mysqlActs.DBVerify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBVerifyInput) (activities.DBVerifyOutput, error) {
			return activities.DBVerifyOutput{}, h.note("verify " + in.Primary.Addr)
		})
	return h
}

func dbTestInput(approval bool) DBCutoverInput {
	return DBCutoverInput{Spec: DBCutoverSpec{
		Source: "10.0.0.1:3306", Target: "10.0.0.2:3306", Flavor: "mariadb", AdminUser: "ferry", AppUser: "app", AppUserHost: "%",
		ReplUser: "ferry", DBRecord: DBRecordRef{Zone: "shop.internal.", Name: "db.shop.internal.", Type: "A"}, DBRecordValue: "10.0.0.2",
		Maintenance: &DBRecordRef{Zone: "shop.example.", Name: "www.shop.example.", Type: "A"}, MaintenanceValue: "198.51.100.99",
		MaxLag: 5 * time.Second, MaxTxnAge: 30 * time.Second, CatchUpTimeout: 5 * time.Second, RequireApproval: approval, CanarySchema: "ferry",
	}, Common: Common{Initiator: "alice", OnFailure: OnFailureRollback}}
}

func TestDBCutoverOrder(t *testing.T) {
	h := newDBHarness(t, nil)
	h.env.ExecuteWorkflow(DatabaseCutover, dbTestInput(false))
	require.NoError(t, h.env.GetWorkflowError())
	var res DBCutoverResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	assert.Equal(t, StateCompleted, res.State)
	assert.Equal(t, "10.0.0.2:3306", res.Primary)
	assert.Equal(t, "dns www.shop.example.=198.51.100.99 | freeze 10.0.0.1:3306 | catchup 10.0.0.2:3306 | promote 10.0.0.2:3306 | "+
		"replicate 10.0.0.1:3306<-10.0.0.2:3306 | dns db.shop.internal.=10.0.0.2 | verify 10.0.0.2:3306 | dns www.shop.example.=198.51.100.30", h.seq())
}

// A rollback asked for while the approval waits changes nothing: the freeze never came.
func TestDBCutoverRollbackBeforeTheFreezeChangesNothing(t *testing.T) {
	h := newDBHarness(t, nil)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalRollback, ActionRequest{Identity: "bob", Reason: "cron still running"})
	}, time.Minute)
	h.env.ExecuteWorkflow(DatabaseCutover, dbTestInput(true))
	require.NoError(t, h.env.GetWorkflowError())
	var res DBCutoverResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	assert.Equal(t, StateRolledBack, res.State)
	assert.Equal(t, "10.0.0.1:3306", res.Primary)
	assert.Empty(t, h.seq(), "no change at all")
	assert.True(t, res.Changes.None(), res.Changes.InEffect)
}

// A verification failing after the point of no return switches back: the target frozen,
// the source caught up and promoted, the target its replica again, both names back.
func TestDBCutoverFailureAfterThePromoteSwitchesBack(t *testing.T) {
	h := newDBHarness(t, func(call string) error {
		if call == "verify 10.0.0.2:3306" {
			return temporal.NewNonRetryableApplicationError("verify: canary did not read back", activities.ErrDBVerify, nil)
		}
		return nil
	})
	h.env.ExecuteWorkflow(DatabaseCutover, dbTestInput(false))
	require.NoError(t, h.env.GetWorkflowError())
	var res DBCutoverResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	assert.Equal(t, StateRolledBack, res.State)
	assert.Equal(t, "10.0.0.1:3306", res.Primary, res.Message)
	assert.Contains(t, h.seq(), "verify 10.0.0.2:3306 | freeze 10.0.0.2:3306 | catchup 10.0.0.1:3306 | promote 10.0.0.1:3306 | "+
		"replicate 10.0.0.2:3306<-10.0.0.1:3306 | unlock 10.0.0.2:3306 | dns db.shop.internal.=10.0.0.1 | dns www.shop.example.=198.51.100.30")
	assert.True(t, res.Changes.None(), res.Changes.InEffect)
}

// The target dies right after its promote, before the repoint: the replication back does
// not start, the switch back cannot freeze the target, and, since no application write
// can have reached it, the source takes the writes back; the state says to fence the
// target when it returns.
func TestDBCutoverTargetDeadAfterThePromoteFallsBackToTheSource(t *testing.T) {
	dead := false
	h := newDBHarness(t, func(call string) error {
		switch {
		case call == "replicate 10.0.0.1:3306<-10.0.0.2:3306" && !dead:
			dead = true
			return temporal.NewNonRetryableApplicationError("10.0.0.1:3306 does not replicate from 10.0.0.2:3306", activities.ErrDBReplication, nil)
		case dead && strings.Contains(call, "10.0.0.2:3306") && !strings.HasPrefix(call, "replicate 10.0.0.1"):
			return temporal.NewApplicationError("connect to 10.0.0.2:3306: connection refused", activities.ErrDBUnreachable)
		}
		return nil
	})
	h.env.ExecuteWorkflow(DatabaseCutover, dbTestInput(false))
	require.NoError(t, h.env.GetWorkflowError())
	var res DBCutoverResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	assert.Equal(t, StateRolledBack, res.State)
	assert.Equal(t, "10.0.0.1:3306", res.Primary)
	assert.Contains(t, res.Message, "make it read_only and a replica of 10.0.0.1:3306")
	assert.NotContains(t, h.seq(), "dns db.shop.internal.", "the database name never moved")
	assert.Contains(t, h.seq(), "promote 10.0.0.1:3306")
	assert.True(t, strings.HasSuffix(h.seq(), "dns www.shop.example.=198.51.100.30"), h.seq())
}
