package e2e

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/workflows"
)

// A failure at each step of the cutover ends with the application writing to exactly one
// primary, the run's state naming it; before the point of no return the freeze is undone
// and nothing else changed. Judged from the servers and the sandbox's records.

// endsOnOnePrimary checks, from outside, that the application writes to want and only to
// it once the run has ended, and that every acknowledged row is there.
func (w *dbWorld) endsOnOnePrimary(t *testing.T, res workflows.DBCutoverResult, want string, host string) {
	t.Helper()
	t.Logf("run ended %s: %s", res.State, res.Message)
	assert.Equal(t, want, res.Primary, "the state names the primary: %s", res.Message)
	assert.Equal(t, host, w.value(t, dbRecord), "the database name points at the primary")
	assert.Equal(t, appAddr, w.value(t, appRecord), "maintenance page off")
	assert.Equal(t, []string{want}, w.appWritable(t), "the application can write to exactly one server")
	n := w.writer.Stats().AckedBy[want]
	testenv.Eventually(t, 10*time.Second, "writes acknowledged by "+want+" after the run", func() bool { return w.writer.Stats().AckedBy[want] > n+10 })
	w.stopWriter()
	db := w.src
	if want == w.pair.Target.Addr() {
		db = w.tgt
	}
	have := rows(t, db)
	missing := 0
	for _, wr := range w.writer.Writes() {
		if wr.Ack && !have[wr.N] {
			missing++
		}
	}
	assert.Zero(t, missing, "every acknowledged row is on %s", want)
}

// targetUntouched: the target is still the source's read-only replica.
func (w *dbWorld) targetUntouched(t *testing.T) {
	t.Helper()
	assert.True(t, readOnly(t, w.tgt), "the target is still read_only")
	testenv.Eventually(t, 10*time.Second, "the target replicating from the source", func() bool { return replicaOf(t, w.tgt, w.pair.Source.Addr()) })
}

func slaveStatus(t *testing.T, db *sql.DB, col string) string {
	t.Helper()
	rows, err := db.Query("SHOW SLAVE STATUS")
	if err != nil {
		return ""
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return ""
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if rows.Scan(ptrs...) != nil {
		return ""
	}
	for i, c := range cols {
		if c == col {
			return vals[i].String
		}
	}
	return ""
}

// delayTarget makes the target apply the source's events d late (MASTER_DELAY): real lag.
func (w *dbWorld) delayTarget(t testing.TB, d time.Duration) {
	t.Helper()
	for _, q := range []string{"STOP SLAVE", fmt.Sprintf("CHANGE MASTER TO MASTER_DELAY=%d", int(d.Seconds())), "START SLAVE"} {
		_, err := w.tgt.Exec(q)
		require.NoError(t, err, q)
	}
}

func TestDBCutoverPreflightRefusesLag(t *testing.T) {
	w := startDBWorld(t)
	w.startWriter(t)
	w.delayTarget(t, 30*time.Second)
	testenv.Eventually(t, 20*time.Second, "the target 2s behind", func() bool {
		s, _ := strconv.Atoi(slaveStatus(t, w.tgt, "Seconds_Behind_Master"))
		return s >= 2
	})
	res, err := w.wait(t, w.start(t, w.specYAML("maxLag: 1s")))
	require.Error(t, err)
	assert.True(t, workflows.HasErrorType(err, workflows.ErrDBPreflightFailed), "%v", err)
	assert.Contains(t, res.Message, "maxLag 1s", "the failure says what to fix")
	assert.Contains(t, res.Message, "nothing was changed")
	assert.False(t, readOnly(t, w.src), "the source was never frozen")
	w.endsOnOnePrimary(t, res, w.pair.Source.Addr(), w.pair.Source.Host)
}

func TestDBCutoverCatchUpTimeoutUnfreezes(t *testing.T) {
	w := startDBWorld(t)
	w.startWriter(t)
	// The target applies events 20s late: the preflight allows it (maxLag 1h), the
	// catch-up (500ms) cannot.
	w.delayTarget(t, 20*time.Second)
	id := w.start(t, w.specYAML("maxLag: 1h", "catchUpTimeout: 500ms"))
	res, err := w.wait(t, id)
	require.NoError(t, err, "the undo succeeded, so the run ends rolled back: %s", res.Message)
	assert.Equal(t, workflows.StateRolledBack, res.State)
	assert.Contains(t, res.Message, "catchUpTimeout")
	assert.Positive(t, w.writer.Stats().Failed, "writes were frozen for a while")
	w.endsOnOnePrimary(t, res, w.pair.Source.Addr(), w.pair.Source.Host)
	// Nothing else changed: the target is the source's replica as before (delay kept).
	assert.True(t, readOnly(t, w.tgt))
	assert.Equal(t, w.pair.Source.Addr(), slaveStatus(t, w.tgt, "Master_Host")+":"+slaveStatus(t, w.tgt, "Master_Port"))
	assert.Equal(t, "Yes", slaveStatus(t, w.tgt, "Slave_IO_Running"))
}

func TestDBCutoverTargetKilledDuringPromote(t *testing.T) {
	w := startDBWorld(t)
	w.startWriter(t)
	// The promote's first statement stops the target's replication: kill the target the
	// moment that shows, so it dies inside the promote.
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if s := slaveStatus(t, w.tgt, "Slave_SQL_Running"); s != "" && s != "Yes" {
				w.pair.Target.Kill()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	res, err := w.wait(t, w.start(t, w.specYAML()))
	<-killed
	require.NoError(t, err, "the undo succeeded: %s", res.Message)
	assert.Equal(t, workflows.StateRolledBack, res.State)
	assert.Contains(t, res.Message, w.pair.Target.Addr(), "the state says what became of the target")
	w.endsOnOnePrimary(t, res, w.pair.Source.Addr(), w.pair.Source.Host)
}

func TestDBCutoverRepointDeniedSwitchesBack(t *testing.T) {
	w := startDBWorld(t)
	w.startWriter(t)
	// The maintenance page's batch goes through; the repoint's is denied (no retry fixes
	// a permission); the undo's batches go through.
	_, err := w.Sandbox.Faults().Add(deny("aws:route53:ChangeResourceRecordSets", 1, 1))
	require.NoError(t, err)
	res, err := w.wait(t, w.start(t, w.specYAML()))
	require.NoError(t, err, "the switch back succeeded: %s", res.Message)
	assert.Equal(t, workflows.StateRolledBack, res.State)
	assert.True(t, strings.Contains(res.Message, "AccessDenied") || strings.Contains(res.Message, "denied"), res.Message)
	w.endsOnOnePrimary(t, res, w.pair.Source.Addr(), w.pair.Source.Host)
	// The switch back restored the topology: the target replicates from the source.
	w.targetUntouched(t)
}

// TestDBCutoverBadSpecsConnectToNothing: bad specs are InvalidArgument naming the field,
// and neither server sees a connection (its own Connections counter); a record that does
// not exist in Route 53 fails the run before any connection too.
func TestDBCutoverBadSpecsConnectToNothing(t *testing.T) {
	w := startDBWorld(t)
	conns := func() [2]int {
		var out [2]int
		for i, db := range []*sql.DB{w.src, w.tgt} {
			var name string
			require.NoError(t, db.QueryRow("SHOW GLOBAL STATUS LIKE 'Connections'").Scan(&name, &out[i]))
		}
		return out
	}
	// The pools keep one connection each: the counter moves only for new ones.
	before := conns()
	good := w.specYAML()
	for _, c := range []struct{ name, spec, field string }{
		{"same host twice", strings.Replace(good, "target: "+w.pair.Target.Addr(), "target: "+w.pair.Source.Addr(), 1), "databaseCutover.target"},
		{"no application user", strings.Replace(good, "appUser: shop_app", "appUser: \"\"", 1), "databaseCutover.appUser"},
		{"application user not a user name", strings.Replace(good, "appUser: shop_app", "appUser: \"x'; DROP USER root; --\"", 1), "databaseCutover.appUser"},
		{"no database record", strings.Replace(good, "databaseRecord: {hostedZone: shop.internal., name: "+dbRecord+"}", "", 1), "databaseCutover.databaseRecord"},
		{"record outside its zone", strings.Replace(good, "name: "+dbRecord, "name: db.elsewhere.example.", 1), "databaseCutover.databaseRecord.name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := w.APIClient(testenv.TokenAlice, false).StartMigration(w.ctx, connect.NewRequest(startRequest(t, w, c.spec)))
			require.Error(t, err)
			assert.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err), "%v", err)
			assert.Contains(t, err.Error(), c.field)
		})
	}
	t.Run("record missing in Route 53", func(t *testing.T) {
		res, err := w.wait(t, w.start(t, strings.Replace(good, "name: "+dbRecord, "name: db-nope.shop.internal.", 1)))
		require.Error(t, err)
		assert.True(t, workflows.HasErrorType(err, "NoSuchRecord"), "%v", err)
		assert.Contains(t, res.Message, "nothing was changed")
	})
	assert.Equal(t, before, conns(), "no connection was made to either server")
}
