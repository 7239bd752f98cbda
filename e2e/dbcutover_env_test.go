package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/mariadbpair"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/sandbox/dbwriter"
	"github.com/ferryhq/ferry/spec"
	"github.com/ferryhq/ferry/workflows"
)

// The database cutover's test world: ferry's stack, two real mariadbd processes (source
// 127.0.0.2, target 127.0.0.3, one port), a private zone shop.internal. whose
// db-primary record points at the source, a public zone pay.example. whose www record is
// the application (the maintenance page goes there), and the sandbox's writer inserting
// through db-primary. Everything is judged from the servers and the sandbox's records.

const (
	dbRecord    = "db-primary.shop.internal."
	appRecord   = "www.pay.example."
	appAddr     = "198.51.100.30"
	maintAddr   = "198.51.100.99"
	adminPWEnv  = "FERRY_E2E_DB_ADMIN_PASSWORD"
	replPWEnv   = "FERRY_E2E_DB_REPL_PASSWORD"
	dbCutoverTO = 2 * time.Minute
)

type dbWorld struct {
	*testenv.Stack
	ctx    context.Context
	pair   *mariadbpair.Pair
	src    *sql.DB
	tgt    *sql.DB
	r53    *route53.Client
	writer *dbwriter.Writer
	stopW  context.CancelFunc
	wdone  chan struct{}
}

func startDBWorld(t testing.TB) *dbWorld {
	t.Helper()
	// Started first: it skips (or fails in CI) before the stack costs anything.
	pair := testenv.StartMariaDBPair(t)
	t.Setenv(adminPWEnv, mariadbpair.AdminPassword)
	t.Setenv(replPWEnv, mariadbpair.ReplPassword)
	st := testenv.StartStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	w := &dbWorld{Stack: st, ctx: ctx, pair: pair, src: testenv.MariaDBAdmin(t, pair.Source), tgt: testenv.MariaDBAdmin(t, pair.Target)}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("sandbox", "sandbox", "")))
	require.NoError(t, err)
	w.r53 = route53.NewFromConfig(cfg, func(o *route53.Options) { o.BaseEndpoint = aws.String(st.Sandbox.Addr()) })
	w.zone(t, "shop.internal.", dbRecord, pair.Source.Host)
	w.zone(t, "pay.example.", appRecord, appAddr)
	return w
}

// zone creates a hosted zone holding one A record with TTL 1s. The sandbox simulates
// public zones only, so shop.internal. stands for the private zone it would be.
func (w *dbWorld) zone(t testing.TB, name string, record, value string) {
	t.Helper()
	in := &route53.CreateHostedZoneInput{Name: aws.String(name), CallerReference: aws.String(name + time.Now().String())}
	z, err := w.r53.CreateHostedZone(w.ctx, in)
	require.NoError(t, err)
	_, err = w.r53.ChangeResourceRecordSets(w.ctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: z.HostedZone.Id,
		ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{Action: r53types.ChangeActionCreate, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: aws.String(record), Type: r53types.RRTypeA, TTL: aws.Int64(1), ResourceRecords: []r53types.ResourceRecord{{Value: aws.String(value)}},
		}}}},
	})
	require.NoError(t, err)
}

// startWriter starts the sandbox's writer through db-primary and waits for its first
// acknowledged write.
func (w *dbWorld) startWriter(t testing.TB) {
	t.Helper()
	w.writer = dbwriter.New(dbwriter.Options{Resolver: w.Sandbox.AWS(), Record: dbRecord, Port: w.pair.Source.Port,
		User: mariadbpair.AppUser, Password: mariadbpair.AppPassword, Schema: mariadbpair.AppSchema})
	ctx, cancel := context.WithCancel(w.ctx)
	w.stopW, w.wdone = cancel, make(chan struct{})
	go func() { defer close(w.wdone); w.writer.Run(ctx) }()
	t.Cleanup(w.stopWriter)
	testenv.Eventually(t, 10*time.Second, "the writer's first acknowledged write", func() bool { return w.writer.Stats().Acked > 0 })
}

func (w *dbWorld) stopWriter() {
	if w.stopW != nil {
		w.stopW()
		<-w.wdone
		w.stopW = nil
	}
}

// specYAML is the cutover's spec; extra lines are appended under databaseCutover.
func (w *dbWorld) specYAML(extra ...string) string {
	y := fmt.Sprintf(`name: payments db to %[2]s
reason: e2e
databaseCutover:
  source: %[1]s
  target: %[2]s
  adminUser: %[3]s
  adminPassword: {env: %[4]s}
  appUser: %[5]s
  replicationUser: %[6]s
  replicationPassword: {env: %[7]s}
  databaseRecord: {hostedZone: shop.internal., name: %[8]s}
  maintenanceRecord: {hostedZone: pay.example., name: %[9]s}
  maintenanceValue: %[10]s
  catchUpTimeout: 5s
`, w.pair.Source.Addr(), w.pair.Target.Addr(), mariadbpair.AdminUser, adminPWEnv, mariadbpair.AppUser, mariadbpair.ReplUser, replPWEnv, dbRecord, appRecord, maintAddr)
	for _, e := range extra {
		y += "  " + e + "\n"
	}
	return y
}

func (w *dbWorld) parse(t testing.TB, y string) *ferryv1.MigrationSpec {
	t.Helper()
	m, err := spec.Parse([]byte(y), ".yaml")
	require.NoError(t, err)
	return m
}

// start starts the cutover through the API and returns its id.
func (w *dbWorld) start(t testing.TB, y string) string {
	t.Helper()
	res, err := w.APIClient(testenv.TokenAlice, false).StartMigration(w.ctx, connect.NewRequest(&ferryv1.StartMigrationRequest{Spec: w.parse(t, y)}))
	require.NoError(t, err)
	return res.Msg.GetMigration().GetId()
}

// wait waits for the run's end and returns its result (a failed run's from its error).
func (w *dbWorld) wait(t testing.TB, id string) (workflows.DBCutoverResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, dbCutoverTO)
	defer cancel()
	var res workflows.DBCutoverResult
	err := w.Client.GetWorkflow(ctx, id, "").Get(ctx, &res)
	if err != nil {
		var ae *temporal.ApplicationError
		if workflows.HasErrorType(err, workflows.ErrMigrationFailed) && errors.As(err, &ae) {
			_ = ae.Details(&res)
		}
	}
	return res, err
}

// --- judging from outside ----------------------------------------------------------------

func (w *dbWorld) value(t testing.TB, record string) string {
	t.Helper()
	ans := w.Sandbox.AWS().Resolve(record, "A")
	require.Len(t, ans, 1, record)
	return strings.Join(ans[0].Values, ",")
}

func scalar[T any](t testing.TB, db *sql.DB, q string) T {
	t.Helper()
	var v T
	require.NoError(t, db.QueryRow(q).Scan(&v), q)
	return v
}

func readOnly(t testing.TB, db *sql.DB) bool { return scalar[int](t, db, "SELECT @@read_only") == 1 }

// replicaOf reports whether db replicates (IO and SQL threads running) from addr.
func replicaOf(t testing.TB, db *sql.DB, addr string) bool {
	t.Helper()
	rows, err := db.Query("SHOW SLAVE STATUS")
	require.NoError(t, err)
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return false
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	require.NoError(t, rows.Scan(ptrs...))
	m := map[string]string{}
	for i, c := range cols {
		m[c] = vals[i].String
	}
	return m["Master_Host"]+":"+m["Master_Port"] == addr && m["Slave_IO_Running"] == "Yes" && m["Slave_SQL_Running"] == "Yes"
}

// rows is the set of row numbers in the writer's table on db.
func rows(t testing.TB, db *sql.DB) map[int64]bool {
	t.Helper()
	r, err := db.Query("SELECT n FROM " + mariadbpair.AppSchema + ".writes")
	require.NoError(t, err)
	defer r.Close()
	out := map[int64]bool{}
	for r.Next() {
		var n int64
		require.NoError(t, r.Scan(&n))
		out[n] = true
	}
	return out
}

// ownGTIDs is the last sequence number db wrote itself in domain 0, from its binlog's GTID
// state ("0-1-57,0-2-80": domain-server-seq per server).
func ownGTID(t testing.TB, db *sql.DB, serverID int) string {
	t.Helper()
	state := scalar[string](t, db, "SELECT @@gtid_binlog_state")
	for _, p := range strings.Split(state, ",") {
		if f := strings.Split(strings.TrimSpace(p), "-"); len(f) == 3 && f[1] == fmt.Sprint(serverID) {
			return strings.TrimSpace(p)
		}
	}
	return ""
}

// appWritable reports where the application can write: the servers that are writable and
// on which the application user is not locked. Exactly one is the invariant.
func (w *dbWorld) appWritable(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, s := range []struct {
		db   *sql.DB
		addr string
	}{{w.src, w.pair.Source.Addr()}, {w.tgt, w.pair.Target.Addr()}} {
		if err := s.db.Ping(); err != nil {
			continue // dead
		}
		locked := scalar[int](t, s.db, fmt.Sprintf("SELECT COUNT(*) FROM mysql.global_priv WHERE User = '%s' AND JSON_VALUE(Priv, '$.account_locked') = 'true'", mariadbpair.AppUser))
		if !readOnly(t, s.db) && locked == 0 {
			out = append(out, s.addr)
		}
	}
	return out
}

// ownOf picks server id's entry out of a gtid_binlog_state.
func ownOf(state string, serverID int) string {
	for _, p := range strings.Split(state, ",") {
		if f := strings.Split(strings.TrimSpace(p), "-"); len(f) == 3 && f[1] == fmt.Sprint(serverID) {
			return strings.TrimSpace(p)
		}
	}
	return ""
}

func startRequest(t testing.TB, w *dbWorld, y string) *ferryv1.StartMigrationRequest {
	t.Helper()
	return &ferryv1.StartMigrationRequest{Spec: w.parse(t, y)}
}
