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

	"github.com/ferryhq/ferry/activities"
)

// The cutover's control flow with mocked activities (the real servers are exercised by
// e2e/dbcutover*_test.go): what runs in which order, and what is undone.

type dbHarness struct {
	env   *testsuite.TestWorkflowEnvironment
	mu    sync.Mutex
	calls []string
}

func (h *dbHarness) note(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, s)
}

func (h *dbHarness) seq() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.calls, " | ")
}

func newDBHarness(t *testing.T, verifyErr error) *dbHarness {
	var s testsuite.WorkflowTestSuite
	h := &dbHarness{env: s.NewTestWorkflowEnvironment()}
	env := h.env
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
			h.note("dns " + in.Seen.Name + "=" + strings.Join(in.Values, ","))
			return activities.SetRecordOutput{ChangeID: "C1"}, nil
		})
	env.OnActivity(r53.WaitInsync, mock.Anything, mock.Anything).Return(activities.WaitInsyncOutput{Status: "INSYNC"}, nil)
	env.OnActivity(mysqlActs.DBPreflight, mock.Anything, mock.Anything).Return(activities.DBPreflightOutput{
		Source: activities.DBServerState{ServerID: 1, GTID: "0-1-10"}, Target: activities.DBServerState{ServerID: 2, GTID: "0-1-10"}}, nil)
	env.OnActivity(mysqlActs.DBFreeze, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBFreezeInput) (activities.DBFreezeOutput, error) {
			h.note("freeze " + in.Server.Addr)
			return activities.DBFreezeOutput{Position: "0-1-11"}, nil
		})
	env.OnActivity(mysqlActs.DBUnfreeze, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBUnfreezeInput) error { h.note("unfreeze " + in.Server.Addr); return nil })
	env.OnActivity(mysqlActs.DBUnlockUser, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBUnfreezeInput) error { h.note("unlock " + in.Server.Addr); return nil })
	env.OnActivity(mysqlActs.DBCatchUp, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBCatchUpInput) (activities.DBCatchUpOutput, error) {
			h.note("catchup " + in.Server.Addr)
			return activities.DBCatchUpOutput{Position: in.Position}, nil
		})
	env.OnActivity(mysqlActs.DBPromote, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBPromoteInput) error { h.note("promote " + in.Server.Addr); return nil })
	env.OnActivity(mysqlActs.DBReplicate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBReplicateInput) error {
			h.note("replicate " + in.Server.Addr + "<-" + in.Source)
			return nil
		})
	env.OnActivity(mysqlActs.DBVerify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DBVerifyInput) (activities.DBVerifyOutput, error) {
			h.note("verify " + in.Primary.Addr)
			return activities.DBVerifyOutput{}, verifyErr
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
	h := newDBHarness(t, temporal.NewNonRetryableApplicationError("verify: canary did not read back", activities.ErrDBVerify, nil))
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
