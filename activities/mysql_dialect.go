package activities

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MySQL flavors (DBConn.Flavor).
const (
	FlavorMariaDB = "mariadb"
	FlavorMySQL   = "mysql"
)

// dialect is the small seam between MariaDB 10.11 and MySQL 8: the statements and GTID
// arithmetic that differ. MariaDB's GTIDs are per-domain positions ("0-1-42,1-3-7": domain,
// server id, sequence), MySQL's are sets of source-uuid intervals, so "errant" and
// "caught up" are the dialect's to define. Only MariaDB is tested (on real servers); the
// MySQL 8 forms follow its documentation and are untested.
type dialect interface {
	// executed is the GTID position (MariaDB) or set (MySQL) of everything the server has
	// executed, its own writes and replicated ones.
	executed(ctx context.Context, c *sql.Conn) (string, error)
	// waitExecuted blocks until the server has executed pos or timeout passes.
	waitExecuted(ctx context.Context, c *sql.Conn, pos string, timeout time.Duration) (bool, error)
	// errant lists what target has executed that source has not.
	errant(source, target string) []string
	// replicaStatus is SHOW SLAVE / REPLICA STATUS as a map ("" map: not a replica).
	replicaStatus(ctx context.Context, c *sql.Conn) (map[string]string, error)
	// usesGTID reports whether the replica status shows GTID-based replication.
	usesGTID(st map[string]string) bool
	stopReplica() string
	startReplica() string
	resetReplicaAll() string
	// changeSource points a server at a new source, resuming from the GTIDs it has.
	changeSource(host string, port int, user, password string) []string
	// beforeChangeSource are statements a former primary runs before it replicates from
	// the new one (MariaDB: its replication position is its own binlog's).
	beforeChangeSource() []string
	// bypassPrivileges are the privileges that let a user write through read_only.
	bypassPrivileges() []string
	// lockUser / unlockUser lock an account against new logins.
	lockUser(user, host string) string
	unlockUser(user, host string) string
}

func dialectOf(flavor string) dialect {
	if flavor == FlavorMySQL {
		return mysql8{}
	}
	return mariadb{}
}

type mariadb struct{}

func (mariadb) executed(ctx context.Context, c *sql.Conn) (string, error) {
	var pos string
	err := c.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos)
	if err != nil {
		return "", err
	}
	// A replica without log_slave_updates has replicated GTIDs only in gtid_slave_pos;
	// gtid_current_pos merges both.
	var cur string
	if err := c.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_current_pos").Scan(&cur); err == nil {
		return mergeMariaPos(pos, cur), nil
	}
	return pos, nil
}

func (mariadb) waitExecuted(ctx context.Context, c *sql.Conn, pos string, timeout time.Duration) (bool, error) {
	var r sql.NullInt64
	// MASTER_GTID_WAIT waits for the SQL thread to reach pos in gtid_slave_pos; 0 is
	// reached, -1 timed out.
	if err := c.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", pos, timeout.Seconds()).Scan(&r); err != nil {
		return false, err
	}
	return r.Valid && r.Int64 == 0, nil
}

// errant, per domain: a domain the source never wrote, or a sequence beyond the source's
// in a shared domain (with strict mode, sequences grow across servers within a domain),
// or the same sequence from another server (a diverged history).
func (mariadb) errant(source, target string) []string {
	src, tgt := parseMariaPos(source), parseMariaPos(target)
	var out []string
	for _, t := range tgt {
		s, ok := src[t.domain]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("domain %d (%s): the source has no transaction in it", t.domain, t.raw))
		case t.seq > s.seq:
			out = append(out, fmt.Sprintf("domain %d: target at %s, beyond the source's %s", t.domain, t.raw, s.raw))
		case t.seq == s.seq && t.server != s.server:
			out = append(out, fmt.Sprintf("domain %d: target %s and source %s differ at the same sequence", t.domain, t.raw, s.raw))
		}
	}
	return out
}

func (mariadb) replicaStatus(ctx context.Context, c *sql.Conn) (map[string]string, error) {
	return rowMap(ctx, c, "SHOW SLAVE STATUS")
}
func (mariadb) usesGTID(st map[string]string) bool {
	return st["Using_Gtid"] != "" && st["Using_Gtid"] != "No"
}
func (mariadb) stopReplica() string     { return "STOP SLAVE" }
func (mariadb) startReplica() string    { return "START SLAVE" }
func (mariadb) resetReplicaAll() string { return "RESET SLAVE ALL" }
func (mariadb) changeSource(host string, port int, user, password string) []string {
	return []string{fmt.Sprintf("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
		quote(host), port, quote(user), quote(password))}
}

// A former primary's gtid_slave_pos is stale (it replicated nothing, or long ago); its
// position is what it wrote itself.
func (mariadb) beforeChangeSource() []string {
	return []string{"SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos"}
}
func (mariadb) bypassPrivileges() []string {
	return []string{"SUPER", "READ_ONLY ADMIN", "READ ONLY ADMIN", "ALL PRIVILEGES ON *.*"}
}
func (mariadb) lockUser(u, h string) string { return "ALTER USER " + account(u, h) + " ACCOUNT LOCK" }
func (mariadb) unlockUser(u, h string) string {
	return "ALTER USER " + account(u, h) + " ACCOUNT UNLOCK"
}

type mysql8 struct{}

func (mysql8) executed(ctx context.Context, c *sql.Conn) (string, error) {
	var s string
	err := c.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&s)
	return strings.ReplaceAll(s, "\n", ""), err
}
func (mysql8) waitExecuted(ctx context.Context, c *sql.Conn, pos string, timeout time.Duration) (bool, error) {
	var r sql.NullInt64
	// 0: executed; 1: timed out.
	if err := c.QueryRowContext(ctx, "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)", pos, timeout.Seconds()).Scan(&r); err != nil {
		return false, err
	}
	return r.Valid && r.Int64 == 0, nil
}

// errant on MySQL 8 would be GTID_SUBTRACT(target, source), which needs a server; this
// offline comparison only catches source uuids the source never had.
func (mysql8) errant(source, target string) []string {
	var out []string
	for _, part := range strings.Split(target, ",") {
		uuid, _, _ := strings.Cut(strings.TrimSpace(part), ":")
		if uuid != "" && !strings.Contains(source, uuid) {
			out = append(out, strings.TrimSpace(part))
		}
	}
	return out
}
func (mysql8) replicaStatus(ctx context.Context, c *sql.Conn) (map[string]string, error) {
	m, err := rowMap(ctx, c, "SHOW REPLICA STATUS")
	if err != nil {
		return nil, err
	}
	// The rest of this package reads MariaDB's column names.
	for from, to := range map[string]string{"Replica_IO_Running": "Slave_IO_Running", "Replica_SQL_Running": "Slave_SQL_Running",
		"Source_Host": "Master_Host", "Source_Port": "Master_Port", "Seconds_Behind_Source": "Seconds_Behind_Master"} {
		if v, ok := m[from]; ok {
			m[to] = v
		}
	}
	return m, nil
}
func (mysql8) usesGTID(st map[string]string) bool { return st["Auto_Position"] == "1" }
func (mysql8) stopReplica() string                { return "STOP REPLICA" }
func (mysql8) startReplica() string               { return "START REPLICA" }
func (mysql8) resetReplicaAll() string            { return "RESET REPLICA ALL" }
func (mysql8) changeSource(host string, port int, user, password string) []string {
	return []string{fmt.Sprintf("CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%d, SOURCE_USER=%s, SOURCE_PASSWORD=%s, SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1",
		quote(host), port, quote(user), quote(password))}
}
func (mysql8) beforeChangeSource() []string { return nil }
func (mysql8) bypassPrivileges() []string {
	return []string{"SUPER", "CONNECTION_ADMIN", "ALL PRIVILEGES ON *.*"}
}
func (mysql8) lockUser(u, h string) string { return "ALTER USER " + account(u, h) + " ACCOUNT LOCK" }
func (mysql8) unlockUser(u, h string) string {
	return "ALTER USER " + account(u, h) + " ACCOUNT UNLOCK"
}

// mariaGTID is one domain's position.
type mariaGTID struct {
	domain, server uint64
	seq            uint64
	raw            string
}

// parseMariaPos parses "0-1-42,1-3-7" by domain.
func parseMariaPos(pos string) map[uint64]mariaGTID {
	out := map[uint64]mariaGTID{}
	for _, part := range strings.Split(pos, ",") {
		part = strings.TrimSpace(part)
		f := strings.Split(part, "-")
		if len(f) != 3 {
			continue
		}
		d, e1 := strconv.ParseUint(f[0], 10, 32)
		s, e2 := strconv.ParseUint(f[1], 10, 32)
		q, e3 := strconv.ParseUint(f[2], 10, 64)
		if e1 != nil || e2 != nil || e3 != nil {
			continue
		}
		if cur, ok := out[d]; !ok || q > cur.seq {
			out[d] = mariaGTID{domain: d, server: s, seq: q, raw: part}
		}
	}
	return out
}

// mergeMariaPos keeps, per domain, the further of two positions.
func mergeMariaPos(a, b string) string {
	m := parseMariaPos(a)
	for d, g := range parseMariaPos(b) {
		if cur, ok := m[d]; !ok || g.seq > cur.seq {
			m[d] = g
		}
	}
	return formatMariaPos(m)
}

func formatMariaPos(m map[uint64]mariaGTID) string {
	var ds []uint64
	for d := range m {
		ds = append(ds, d)
	}
	for i := range ds { // few domains: insertion sort keeps it dependency-free
		for j := i; j > 0 && ds[j] < ds[j-1]; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = m[d].raw
	}
	return strings.Join(parts, ",")
}

// quote is a SQL string literal. Values come from the spec and secrets, and CHANGE MASTER
// takes no placeholders.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func account(user, host string) string { return quote(user) + "@" + quote(host) }

// rowMap reads the first row of a query as column -> text; an empty map when no row.
func rowMap(ctx context.Context, c *sql.Conn, q string) (map[string]string, error) {
	rows, err := c.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if !rows.Next() {
		return out, rows.Err()
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	for i, c := range cols {
		out[c] = string(vals[i])
	}
	return out, rows.Err()
}
