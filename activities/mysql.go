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

	"github.com/go-sql-driver/mysql"
	"go.temporal.io/sdk/temporal"
)

// Error types of the database cutover's activities (non-retryable unless said).
const (
	// ErrDBPreflight is a preflight that found something that would stop the switch; its
	// message lists every problem and what to fix.
	ErrDBPreflight = "DBPreflightFailed"
	// ErrDBCatchUpTimeout is a target that did not execute the source's last transaction
	// within catchUpTimeout.
	ErrDBCatchUpTimeout = "DBCatchUpTimeout"
	// ErrDBStillWriting is a source whose GTID position kept moving after the freeze.
	ErrDBStillWriting = "DBStillWriting"
	// ErrDBVerify is a verification that failed after the switch.
	ErrDBVerify = "DBVerifyFailed"
	// ErrDBAuth is a login refused: no retry fixes a wrong password.
	ErrDBAuth = "DBAccessDenied"
	// ErrDBUnreachable is a server that could not be connected to (retryable).
	ErrDBUnreachable = "DBUnreachable"
	// ErrDBReplication is a replication that did not start running.
	ErrDBReplication = "DBReplicationNotRunning"
)

// MySQL drives MySQL / MariaDB servers for the database cutover. Every call opens its own
// short-lived connection: the servers are the state, so a retried activity on another
// worker needs nothing from the last one.
type MySQL struct {
	// DialTimeout bounds connecting to a server (default 2s): inside the write freeze a
	// dead server must fail fast, not hang.
	DialTimeout time.Duration
}

// DBConn says how to reach one server as the admin user. Password is a reference the
// worker resolves: secrets never enter workflow history.
type DBConn struct {
	Addr     string // host:port
	User     string
	Password Secret
	Flavor   string // FlavorMariaDB or FlavorMySQL
}

// open connects to c and returns one connection (session statements need one session).
func (m *MySQL) open(ctx context.Context, c DBConn) (*sql.Conn, func(), error) {
	pw := ""
	if c.Password.Set() {
		var err error
		if pw, err = c.Password.Resolve("adminPassword"); err != nil {
			return nil, nil, permanent(ErrBadInput, err, "%v", err)
		}
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = c.User, pw, "tcp", c.Addr
	cfg.Timeout = m.DialTimeout
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	cfg.ReadTimeout, cfg.WriteTimeout = 30*time.Second, 30*time.Second
	cfg.InterpolateParams = true
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, nil, permanent(ErrBadInput, err, "connect %s: %v", c.Addr, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		_ = db.Close()
		if e := dbErr("connect to "+c.Addr, err); isPermanentErr(e) {
			return nil, nil, e
		}
		// Retryable, but typed: the undo tells a server it cannot reach (dead, or cut
		// off) from one that refused a statement.
		return nil, nil, temporal.NewApplicationErrorWithCause(fmt.Sprintf("connect to %s: %v", c.Addr, err), ErrDBUnreachable, err)
	}
	return conn, func() { _ = conn.Close(); _ = db.Close() }, nil
}

// dbErr wraps a server error; a refused login is permanent (the password or grants are
// wrong), anything else (refused connection, timeout) is left to the retry policy.
func dbErr(what string, err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == 1045 || me.Number == 1044 || me.Number == 1227) {
		return permanent(ErrDBAuth, err, "%s: %s; check the admin user's password reference and grants", what, me.Message)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func isPermanentErr(err error) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.NonRetryable()
}

// DBPreflightInput names both servers and the limits of a cutover.
type DBPreflightInput struct {
	Source, Target DBConn
	AppUser        string
	AppUserHost    string
	ReplUser       string
	MaxLag         time.Duration
	MaxTxnAge      time.Duration
}

// DBServerState is one server as the preflight read it.
type DBServerState struct {
	Addr     string
	ServerID int64
	Version  string
	ReadOnly bool
	GTID     string
	LogBin   bool
	// LogReplicaUpdates is log_slave_updates: replicated transactions are in its binlog.
	LogReplicaUpdates bool
}

// DBPreflightOutput is what the preflight read; Problems is empty when the switch can go.
type DBPreflightOutput struct {
	Source, Target DBServerState
	// Lag is the target's Seconds_Behind_Master.
	Lag time.Duration
	// OldestTxn is the age of the source's oldest open transaction.
	OldestTxn time.Duration
	Problems  []string
}

// DBPreflight checks, changing nothing, everything that could stop the switch once writes
// are frozen. Unreachable servers are an error (retryable); everything else found wrong
// is a Problem with what to fix, all of them at once.
func (m *MySQL) DBPreflight(ctx context.Context, in DBPreflightInput) (DBPreflightOutput, error) {
	d := dialectOf(in.Source.Flavor)
	var out DBPreflightOutput
	src, closeSrc, err := m.open(ctx, in.Source)
	if err != nil {
		return out, err
	}
	defer closeSrc()
	tgt, closeTgt, err := m.open(ctx, in.Target)
	if err != nil {
		return out, err
	}
	defer closeTgt()
	bad := func(format string, args ...any) { out.Problems = append(out.Problems, fmt.Sprintf(format, args...)) }

	// The target first: the source keeps writing, so a target read after it could be
	// ahead of what was read and look errant.
	if out.Target, err = readServer(ctx, d, tgt, in.Target.Addr); err != nil {
		return out, err
	}
	if out.Source, err = readServer(ctx, d, src, in.Source.Addr); err != nil {
		return out, err
	}
	if out.Source.ServerID == out.Target.ServerID {
		bad("source and target both have server_id %d; give each server its own server_id", out.Source.ServerID)
	}
	if out.Source.ReadOnly {
		bad("the source %s is read_only: it is not the primary; check the spec's source", in.Source.Addr)
	}
	if !out.Target.LogBin {
		bad("the target %s has log_bin off; enable binary logging (and log_slave_updates) so the source can replicate back from it", in.Target.Addr)
	} else if !out.Target.LogReplicaUpdates {
		// The old primary resumes from its own last GTID, which the new one has in its
		// binlog only if it logs what it replicates.
		bad("the target %s has log_slave_updates off; turn it on (a restart) so the source can replicate back from its own last GTID", in.Target.Addr)
	}
	if !out.Source.LogBin {
		bad("the source %s has log_bin off; a GTID cutover needs binary logging on both", in.Source.Addr)
	}

	st, err := d.replicaStatus(ctx, tgt)
	if err != nil {
		return out, dbErr("replica status of "+in.Target.Addr, err)
	}
	switch {
	case len(st) == 0:
		bad("the target %s is not a replica; CHANGE MASTER TO the source %s with MASTER_USE_GTID=slave_pos and START SLAVE", in.Target.Addr, in.Source.Addr)
	default:
		if !sameServer(st["Master_Host"], st["Master_Port"], in.Source.Addr) {
			bad("the target replicates from %s:%s, not from the source %s; fix the spec or the replication", st["Master_Host"], st["Master_Port"], in.Source.Addr)
		}
		if !d.usesGTID(st) {
			bad("the target replicates by binlog file and position, not GTID; CHANGE MASTER TO MASTER_USE_GTID=slave_pos")
		}
		if st["Slave_IO_Running"] != "Yes" {
			bad("the target's IO thread is %q (%s); START SLAVE and fix the connection to the source", st["Slave_IO_Running"], st["Last_IO_Error"])
		}
		if st["Slave_SQL_Running"] != "Yes" {
			bad("the target's SQL thread is %q (%s); fix the replication error and START SLAVE", st["Slave_SQL_Running"], st["Last_SQL_Error"])
		}
		if s, err := strconv.Atoi(st["Seconds_Behind_Master"]); err == nil {
			out.Lag = time.Duration(s) * time.Second
			if out.Lag > in.MaxLag {
				bad("the target lags %s behind the source, more than maxLag %s; wait until it catches up or raise maxLag", out.Lag, in.MaxLag)
			}
		} else if st["Slave_SQL_Running"] == "Yes" {
			bad("the target reports no lag (Seconds_Behind_Master NULL); check its replication")
		}
	}
	if e := d.errant(out.Source.GTID, out.Target.GTID); len(e) > 0 {
		bad("errant transactions on the target (not on the source): %s; remove them or inject empty transactions on the source", strings.Join(e, "; "))
	}

	var age sql.NullInt64
	if err := src.QueryRowContext(ctx, "SELECT MAX(TIMESTAMPDIFF(SECOND, trx_started, NOW())) FROM information_schema.INNODB_TRX").Scan(&age); err != nil {
		return out, dbErr("read open transactions on "+in.Source.Addr, err)
	}
	out.OldestTxn = time.Duration(age.Int64) * time.Second
	if age.Valid && out.OldestTxn > in.MaxTxnAge {
		bad("a transaction on the source has been open %s, longer than maxTransactionAge %s; let it finish (or kill it) before the freeze", out.OldestTxn, in.MaxTxnAge)
	}

	for _, s := range []struct {
		name string
		c    *sql.Conn
	}{{"source", src}, {"target", tgt}} {
		for _, p := range userProblems(ctx, d, s.c, in.AppUser, in.AppUserHost, s.name) {
			bad("%s", p)
		}
		if in.ReplUser != "" && !userExists(ctx, s.c, in.ReplUser) {
			bad("the replication user %s does not exist on the %s; create it with REPLICATION SLAVE (the old primary replicates back through it)", in.ReplUser, s.name)
		}
	}
	return out, nil
}

func readServer(ctx context.Context, d dialect, c *sql.Conn, addr string) (DBServerState, error) {
	s := DBServerState{Addr: addr}
	var ro, lb, lsu int
	if err := c.QueryRowContext(ctx, "SELECT @@server_id, @@version, @@read_only, @@log_bin, @@log_slave_updates").Scan(&s.ServerID, &s.Version, &ro, &lb, &lsu); err != nil {
		return s, dbErr("read "+addr, err)
	}
	s.ReadOnly, s.LogBin, s.LogReplicaUpdates = ro == 1, lb == 1, lsu == 1
	var err error
	if s.GTID, err = d.executed(ctx, c); err != nil {
		return s, dbErr("read the GTID position of "+addr, err)
	}
	return s, nil
}

func userExists(ctx context.Context, c *sql.Conn, user string) bool {
	var n int
	return c.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = ?", user).Scan(&n) == nil && n > 0
}

// userProblems checks the application user exists at host on a server and cannot write
// through read_only (SUPER, or READ_ONLY ADMIN on MariaDB 10.11).
func userProblems(ctx context.Context, d dialect, c *sql.Conn, user, host, where string) []string {
	var n int
	if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?", user, host).Scan(&n); err != nil || n == 0 {
		return []string{fmt.Sprintf("the application user %s does not exist on the %s; create it there (or fix appUser / appUserHost)", account(user, host), where)}
	}
	rows, err := c.QueryContext(ctx, "SHOW GRANTS FOR "+account(user, host))
	if err != nil {
		return []string{fmt.Sprintf("cannot read the grants of %s on the %s: %v", account(user, host), where, err)}
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if rows.Scan(&g) != nil {
			continue
		}
		up := strings.ToUpper(g)
		for _, p := range d.bypassPrivileges() {
			if strings.Contains(up, p) {
				out = append(out, fmt.Sprintf("the application user %s has %s on the %s, which writes through read_only; REVOKE it (the freeze relies on read_only)", account(user, host), p, where))
			}
		}
	}
	return out
}

// sameServer compares a replica's source (as the server reports it) with host:port.
func sameServer(host, port, addr string) bool {
	h, p, err := net.SplitHostPort(addr)
	if err != nil || p != port {
		return false
	}
	if strings.EqualFold(h, host) {
		return true
	}
	a, _ := net.LookupHost(h)
	b, _ := net.LookupHost(host)
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}
