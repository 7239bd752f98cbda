package activities

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// The write freeze and the switch. Each activity is idempotent (it sets a state, it does
// not toggle one), so a retry after a lost answer does no harm; the workflow bounds every
// one of them tightly while writes are frozen.

// DBFreezeInput freezes writes on a server.
type DBFreezeInput struct {
	Server      DBConn
	AppUser     string
	AppUserHost string
	// Settle is how long the GTID position must stay still to count as stopped.
	Settle time.Duration
}

// DBFreezeOutput is the frozen server's final position.
type DBFreezeOutput struct {
	Position string
	Killed   int
}

// DBFreeze sets read_only, locks the application user against new logins, kills its
// connections, then checks that the GTID position stops moving. The lock is not written
// to the binlog (sql_log_bin=0): replicas keep the account usable, so the promoted target
// accepts the application at once, and the freeze adds no transaction to wait for.
func (m *MySQL) DBFreeze(ctx context.Context, in DBFreezeInput) (DBFreezeOutput, error) {
	d := dialectOf(in.Server.Flavor)
	c, done, err := m.open(ctx, in.Server)
	if err != nil {
		return DBFreezeOutput{}, err
	}
	defer done()
	// read_only waits for running commits (a global read lock); bound that wait so a
	// stuck transaction fails the freeze instead of holding it.
	for _, q := range []string{"SET SESSION lock_wait_timeout = 5", "SET GLOBAL read_only = ON", "SET SESSION sql_log_bin = 0", d.lockUser(in.AppUser, in.AppUserHost)} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return DBFreezeOutput{}, dbErr(fmt.Sprintf("freeze %s: %s", in.Server.Addr, q), err)
		}
	}
	killed, err := killUser(ctx, c, in.AppUser)
	if err != nil {
		return DBFreezeOutput{}, dbErr("kill the application's connections on "+in.Server.Addr, err)
	}
	first, err := d.executed(ctx, c)
	if err != nil {
		return DBFreezeOutput{}, dbErr("read the GTID position of "+in.Server.Addr, err)
	}
	if err := sleepCtx(ctx, in.Settle); err != nil {
		return DBFreezeOutput{}, err
	}
	last, err := d.executed(ctx, c)
	if err != nil {
		return DBFreezeOutput{}, dbErr("read the GTID position of "+in.Server.Addr, err)
	}
	if first != last {
		return DBFreezeOutput{}, permanent(ErrDBStillWriting, nil, "%s still writes after the freeze (GTID %s -> %s): a user with SUPER or READ_ONLY ADMIN, or replication into it; find the writer", in.Server.Addr, first, last)
	}
	return DBFreezeOutput{Position: last, Killed: killed}, nil
}

// killUser kills every connection of user but the caller's own.
func killUser(ctx context.Context, c *sql.Conn, user string) (int, error) {
	rows, err := c.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()", user)
	if err != nil {
		return 0, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err == nil {
			ids = append(ids, id)
		}
	}
	rows.Close()
	n := 0
	for _, id := range ids {
		// 1094: unknown thread, it ended meanwhile.
		if _, err := c.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10)); err == nil {
			n++
		}
	}
	return n, nil
}

// DBUnfreezeInput undoes a freeze.
type DBUnfreezeInput struct {
	Server      DBConn
	AppUser     string
	AppUserHost string
}

// DBUnfreeze makes the server writable and unlocks the application user.
func (m *MySQL) DBUnfreeze(ctx context.Context, in DBUnfreezeInput) error {
	d := dialectOf(in.Server.Flavor)
	c, done, err := m.open(ctx, in.Server)
	if err != nil {
		return err
	}
	defer done()
	for _, q := range []string{"SET SESSION sql_log_bin = 0", d.unlockUser(in.AppUser, in.AppUserHost), "SET GLOBAL read_only = OFF"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return dbErr(fmt.Sprintf("unfreeze %s: %s", in.Server.Addr, q), err)
		}
	}
	return nil
}

// DBCatchUpInput waits for a server to execute a position.
type DBCatchUpInput struct {
	Server   DBConn
	Position string
	Timeout  time.Duration
}

// DBCatchUpOutput reports the wait.
type DBCatchUpOutput struct {
	Waited   time.Duration
	Position string
}

// DBCatchUp waits (on the server: MASTER_GTID_WAIT or WAIT_FOR_EXECUTED_GTID_SET) until
// the server has executed Position, at most Timeout; past it ErrDBCatchUpTimeout.
func (m *MySQL) DBCatchUp(ctx context.Context, in DBCatchUpInput) (DBCatchUpOutput, error) {
	d := dialectOf(in.Server.Flavor)
	c, done, err := m.open(ctx, in.Server)
	if err != nil {
		return DBCatchUpOutput{}, err
	}
	defer done()
	start := time.Now()
	ok, err := d.waitExecuted(ctx, c, in.Position, in.Timeout)
	if err != nil {
		return DBCatchUpOutput{}, dbErr("wait for "+in.Position+" on "+in.Server.Addr, err)
	}
	out := DBCatchUpOutput{Waited: time.Since(start)}
	out.Position, _ = d.executed(ctx, c)
	if !ok {
		return out, permanent(ErrDBCatchUpTimeout, nil, "%s did not execute %s within catchUpTimeout %s (it is at %s); check its replication lag and raise catchUpTimeout if the lag is expected", in.Server.Addr, in.Position, in.Timeout, out.Position)
	}
	return out, nil
}

// DBPromoteInput promotes a replica.
type DBPromoteInput struct {
	Server DBConn
	// Position is what it must have executed (the frozen source's); checked after its
	// replication stopped, so nothing is lost by the promotion.
	Position    string
	AppUser     string
	AppUserHost string
}

// DBPromote stops replication on the server, forgets its source, and makes it writable:
// the point of no return, once it answers.
func (m *MySQL) DBPromote(ctx context.Context, in DBPromoteInput) error {
	d := dialectOf(in.Server.Flavor)
	c, done, err := m.open(ctx, in.Server)
	if err != nil {
		return err
	}
	defer done()
	if _, err := c.ExecContext(ctx, d.stopReplica()); err != nil {
		return dbErr("stop replication on "+in.Server.Addr, err)
	}
	if in.Position != "" {
		ok, err := d.waitExecuted(ctx, c, in.Position, 0)
		if err == nil && !ok {
			// MASTER_GTID_WAIT with 0 answers at once; the catch-up saw the position, so
			// this is a server that lost it (a crash without durable relay logs).
			return permanent(ErrDBCatchUpTimeout, nil, "%s no longer has %s after its replication stopped; not promoting it", in.Server.Addr, in.Position)
		}
	}
	for _, q := range []string{d.resetReplicaAll(), "SET SESSION sql_log_bin = 0", d.unlockUser(in.AppUser, in.AppUserHost), "SET GLOBAL read_only = OFF"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return dbErr(fmt.Sprintf("promote %s: %s", in.Server.Addr, q), err)
		}
	}
	return nil
}

// DBReplicateInput makes Server a replica of Source.
type DBReplicateInput struct {
	Server DBConn
	// Source is host:port as Server must reach it.
	Source       string
	ReplUser     string
	ReplPassword Secret
	// FormerPrimary: Server wrote the binlog it stands on (the old primary), so its
	// replication position starts at its own binlog position.
	FormerPrimary bool
	// WaitRunning, when set, waits up to it for both replication threads to run (the IO
	// thread connected to Source): replication back proved before anything relies on it.
	WaitRunning time.Duration `json:",omitempty"`
}

// DBReplicate points Server at Source (GTID auto-position), read_only, and starts
// replication. Idempotent: it stops whatever replication it finds first.
func (m *MySQL) DBReplicate(ctx context.Context, in DBReplicateInput) error {
	d := dialectOf(in.Server.Flavor)
	pw := ""
	if in.ReplPassword.Set() {
		var err error
		if pw, err = in.ReplPassword.Resolve("replicationPassword"); err != nil {
			return permanent(ErrBadInput, err, "%v", err)
		}
	}
	host, portS, err := net.SplitHostPort(in.Source)
	if err != nil {
		return permanent(ErrBadInput, err, "source %q is not host:port", in.Source)
	}
	port, _ := strconv.Atoi(portS)
	c, done, err := m.open(ctx, in.Server)
	if err != nil {
		return err
	}
	defer done()
	qs := []string{"SET GLOBAL read_only = ON", d.stopReplica()}
	if in.FormerPrimary {
		qs = append(qs, d.beforeChangeSource()...)
	}
	qs = append(qs, d.changeSource(host, port, in.ReplUser, pw)...)
	qs = append(qs, d.startReplica())
	for _, q := range qs {
		if _, err := c.ExecContext(ctx, q); err != nil {
			// The statement holds the replication password: name the step, not the text,
			// and keep the password out of the server's message ("near '...'").
			if pw != "" && strings.Contains(err.Error(), pw) {
				err = errors.New(strings.ReplaceAll(err.Error(), pw, "****"))
			}
			return dbErr(fmt.Sprintf("make %s replicate from %s", in.Server.Addr, in.Source), err)
		}
	}
	if in.WaitRunning <= 0 {
		return nil
	}
	deadline := time.Now().Add(in.WaitRunning)
	for {
		st, err := d.replicaStatus(ctx, c)
		if err != nil {
			return dbErr("replica status of "+in.Server.Addr, err)
		}
		if st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes" {
			return nil
		}
		if time.Now().After(deadline) {
			return permanent(ErrDBReplication, nil, "%s does not replicate from %s after %s (IO %s, SQL %s%s); check that it can reach %s as %s",
				in.Server.Addr, in.Source, in.WaitRunning, orNone(st["Slave_IO_Running"]), orNone(st["Slave_SQL_Running"]), errSuffix(st["Last_IO_Error"]+st["Last_SQL_Error"]), in.Source, in.ReplUser)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// DBReplicaStatus is one server's replication as read.
type DBReplicaStatus struct {
	Addr       string
	Source     string
	IORunning  string
	SQLRunning string
	LastError  string
	ReadOnly   bool
	GTID       string
}

// DBVerifyInput checks the switch from both servers.
type DBVerifyInput struct {
	Primary, Replica DBConn
	AppUser          string
	CanarySchema     string
	CanaryID         string
	// Wait bounds how long the replica may take to start replicating and apply the canary.
	Wait time.Duration
}

// DBVerifyOutput is what the verification read.
type DBVerifyOutput struct {
	AppConnsOnReplica int
	CanaryReadBack    bool
	CanaryReplicated  bool
	Replica           DBReplicaStatus
}

// DBVerify checks that no application connection is left on the replica (the old
// primary), that a canary written on the primary reads back, and that the replica
// replicates from the primary and applies the canary, within Wait.
func (m *MySQL) DBVerify(ctx context.Context, in DBVerifyInput) (DBVerifyOutput, error) {
	d := dialectOf(in.Primary.Flavor)
	var out DBVerifyOutput
	p, doneP, err := m.open(ctx, in.Primary)
	if err != nil {
		return out, err
	}
	defer doneP()
	r, doneR, err := m.open(ctx, in.Replica)
	if err != nil {
		return out, err
	}
	defer doneR()
	if err := r.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", in.AppUser).Scan(&out.AppConnsOnReplica); err != nil {
		return out, dbErr("count application connections on "+in.Replica.Addr, err)
	}
	schema := "`" + in.CanarySchema + "`"
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + schema,
		"CREATE TABLE IF NOT EXISTS " + schema + ".cutover_canary (id VARCHAR(128) PRIMARY KEY, at DATETIME(6) NOT NULL)",
		"REPLACE INTO " + schema + ".cutover_canary VALUES (" + quote(in.CanaryID) + ", NOW(6))",
	} {
		if _, err := p.ExecContext(ctx, q); err != nil {
			return out, dbErr("canary write on "+in.Primary.Addr, err)
		}
	}
	var got string
	err = p.QueryRowContext(ctx, "SELECT id FROM "+schema+".cutover_canary WHERE id = ?", in.CanaryID).Scan(&got)
	out.CanaryReadBack = err == nil && got == in.CanaryID
	pos, err := d.executed(ctx, p)
	if err != nil {
		return out, dbErr("read the GTID position of "+in.Primary.Addr, err)
	}
	out.CanaryReplicated, _ = d.waitExecuted(ctx, r, pos, in.Wait)
	st, err := d.replicaStatus(ctx, r)
	if err != nil {
		return out, dbErr("replica status of "+in.Replica.Addr, err)
	}
	out.Replica = DBReplicaStatus{Addr: in.Replica.Addr, Source: st["Master_Host"] + ":" + st["Master_Port"],
		IORunning: st["Slave_IO_Running"], SQLRunning: st["Slave_SQL_Running"], LastError: st["Last_IO_Error"] + st["Last_SQL_Error"], GTID: pos}
	var problems []string
	if out.AppConnsOnReplica > 0 {
		problems = append(problems, fmt.Sprintf("%d application connection(s) still on %s", out.AppConnsOnReplica, in.Replica.Addr))
	}
	if !out.CanaryReadBack {
		problems = append(problems, "the canary written on "+in.Primary.Addr+" did not read back")
	}
	if !sameServer(st["Master_Host"], st["Master_Port"], in.Primary.Addr) || out.Replica.IORunning != "Yes" || out.Replica.SQLRunning != "Yes" || !out.CanaryReplicated {
		problems = append(problems, fmt.Sprintf("%s does not replicate from %s (source %s, IO %s, SQL %s, canary applied %v%s)",
			in.Replica.Addr, in.Primary.Addr, out.Replica.Source, orNone(out.Replica.IORunning), orNone(out.Replica.SQLRunning), out.CanaryReplicated, errSuffix(out.Replica.LastError)))
	}
	if len(problems) > 0 {
		return out, permanent(ErrDBVerify, nil, "verify: %s", joinProblems(problems))
	}
	return out, nil
}

func errSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func joinProblems(ps []string) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += "; "
		}
		s += p
	}
	return s
}

// DBServerRoleInput reads one server's role.
type DBServerRoleInput struct{ Server DBConn }

// DBServerRole reads whether a server is writable and whom it replicates from: the undo
// reads it before deciding, rather than trusting what the run believed.
func (m *MySQL) DBServerRole(ctx context.Context, in DBServerRoleInput) (DBReplicaStatus, error) {
	d := dialectOf(in.Server.Flavor)
	c, done, err := m.open(ctx, in.Server)
	if err != nil {
		return DBReplicaStatus{}, err
	}
	defer done()
	out := DBReplicaStatus{Addr: in.Server.Addr}
	var ro int
	if err := c.QueryRowContext(ctx, "SELECT @@read_only").Scan(&ro); err != nil {
		return out, dbErr("read "+in.Server.Addr, err)
	}
	out.ReadOnly = ro == 1
	st, err := d.replicaStatus(ctx, c)
	if err != nil {
		return out, dbErr("replica status of "+in.Server.Addr, err)
	}
	if len(st) > 0 {
		out.Source = st["Master_Host"] + ":" + st["Master_Port"]
		out.IORunning, out.SQLRunning = st["Slave_IO_Running"], st["Slave_SQL_Running"]
	}
	out.GTID, _ = d.executed(ctx, c)
	return out, nil
}

// DBUnlockUser unlocks the application user on a server (not binlogged), leaving
// read_only as it is: a replica's account after a switch back.
func (m *MySQL) DBUnlockUser(ctx context.Context, in DBUnfreezeInput) error {
	d := dialectOf(in.Server.Flavor)
	c, done, err := m.open(ctx, in.Server)
	if err != nil {
		return err
	}
	defer done()
	for _, q := range []string{"SET SESSION sql_log_bin = 0", d.unlockUser(in.AppUser, in.AppUserHost)} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return dbErr(fmt.Sprintf("unlock %s on %s", in.AppUser, in.Server.Addr), err)
		}
	}
	return nil
}
