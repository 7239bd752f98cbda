package e2e

import (
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/workflows"
)

// freezeWatch polls the source from outside and notes its own GTID (domain 0, its server
// id) the moment it turns read_only: anything the source writes after that is a write
// after the freeze.
type freezeWatch struct {
	mu   sync.Mutex
	pos  string
	seen bool
	stop chan struct{}
	done chan struct{}
}

func (w *dbWorld) watchFreeze(t *testing.T) *freezeWatch {
	f := &freezeWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			select {
			case <-f.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			var ro int
			if w.src.QueryRow("SELECT @@read_only").Scan(&ro) != nil || ro == 0 {
				continue
			}
			var state string
			if w.src.QueryRow("SELECT @@gtid_binlog_state").Scan(&state) == nil {
				f.mu.Lock()
				f.pos, f.seen = state, true
				f.mu.Unlock()
				return
			}
		}
	}()
	t.Cleanup(f.close)
	return f
}

func (f *freezeWatch) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}

// TestDBCutoverSwitchesThePrimaryUnderWrites runs the whole cutover on two real MariaDB
// servers with the sandbox's writer inserting through the database's DNS name, the
// approval before the freeze given through the API, and judges from the servers and the
// sandbox's Route 53: every acknowledged row is on the new primary, the old primary wrote
// nothing after its freeze (its own binlog GTID), it replicates from the new one, and the
// application can write to exactly one server.
func TestDBCutoverSwitchesThePrimaryUnderWrites(t *testing.T) {
	w := startDBWorld(t)
	w.startWriter(t)
	src, tgt := w.pair.Source.Addr(), w.pair.Target.Addr()
	watch := w.watchFreeze(t)
	id := w.start(t, w.specYAML("requireApproval: true"))
	require.Equal(t, workflows.DBCutoverWorkflowID(dbRecord), id)

	// The approval comes before the freeze: while it waits, the source still takes writes.
	bob := w.APIClient(testenv.TokenBob, false)
	testenv.Eventually(t, time.Minute, "the approval gate", func() bool {
		r, err := bob.GetMigration(w.ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
		return err == nil && r.Msg.GetMigration().GetState() == ferryv1.MigrationState_MIGRATION_STATE_AWAITING_APPROVAL
	})
	require.False(t, readOnly(t, w.src), "nothing is frozen while the approval waits")
	before := w.writer.Stats().AckedBy[src]
	testenv.Eventually(t, 5*time.Second, "writes on the source while the approval waits", func() bool { return w.writer.Stats().AckedBy[src] > before+10 })
	_, err := bob.ApproveStep(w.ctx, connect.NewRequest(&ferryv1.ApproveStepRequest{Id: id, Comment: "go"}))
	require.NoError(t, err)

	res, err := w.wait(t, id)
	require.NoError(t, err, res.Message)
	require.Equal(t, workflows.StateCompleted, res.State)
	// The API shows where the writes go (`ferry get`'s view reads it).
	got, err := bob.GetMigration(w.ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: id}))
	require.NoError(t, err)
	db := got.Msg.GetMigration().GetDatabaseCutover()
	require.Equal(t, tgt, db.GetPrimary(), "the API's status names the new primary")
	require.True(t, db.GetPointOfNoReturn())
	require.Positive(t, db.GetWriteFreeze().AsDuration())
	testenv.Eventually(t, 10*time.Second, "acknowledged writes on the new primary", func() bool { return w.writer.Stats().AckedBy[tgt] > 20 })
	w.stopWriter()
	watch.close()

	// DNS, from the sandbox: the database name on the target, the application back.
	assert.Equal(t, w.pair.Target.Host, w.value(t, dbRecord))
	assert.Equal(t, appAddr, w.value(t, appRecord), "maintenance page off")

	// Rows, from the servers.
	onTarget := rows(t, w.tgt)
	st := w.writer.Stats()
	var acked, missing int
	for _, wr := range w.writer.Writes() {
		if wr.Ack {
			acked++
			if !onTarget[wr.N] {
				missing++
			}
		}
	}
	assert.Zero(t, missing, "every acknowledged row (%d) is on the new primary", acked)
	lastSrc, firstTgt, ok := w.writer.Window(src, tgt)
	require.True(t, ok)
	assert.False(t, st.LastAck[src].After(firstTgt), "no write acknowledged by the old primary after the new one took writes")
	t.Logf("writer: %d acknowledged (%d on the source, %d on the target), %d failed; write window %s (ferry's own figure %s: catch-up %s, repoint INSYNC %s)",
		st.Acked, st.AckedBy[src], st.AckedBy[tgt], st.Failed, firstTgt.Sub(lastSrc), res.WriteFreeze, res.CatchUp, res.RepointInsync)

	// The old primary wrote nothing after its freeze: its own GTID in its binlog is where
	// it was when it turned read_only.
	require.True(t, watch.seen, "the source was seen read_only")
	assert.Equal(t, ownGTID(t, w.src, w.pair.Source.ServerID), ownOf(watch.pos, w.pair.Source.ServerID), "the source's own binlog GTID after the freeze")

	// The old primary replicates from the new one, and has every row.
	testenv.Eventually(t, 10*time.Second, "the old primary replicating from the new one with every row", func() bool {
		return replicaOf(t, w.src, tgt) && len(rows(t, w.src)) == len(rows(t, w.tgt))
	})
	assert.True(t, readOnly(t, w.src))
	assert.Equal(t, []string{tgt}, w.appWritable(t), "the application can write to exactly one primary")
}
