// Package mariadbpair runs real MariaDB servers for tests and `ferry dev`: a source and a
// target as separate mariadbd processes, each with its own data directory, replicating
// source -> target with GTIDs. Each server listens on its own loopback address (127.0.0.2,
// 127.0.0.3, ...) with one shared port, so a DNS A record (which carries no port) can tell
// them apart: repointing the database's name from one address to the other is the cutover.
package mariadbpair

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/ferryhq/ferry/internal/loopback"
)

// Credentials the pair is set up with. They are for throwaway local servers only.
const (
	AdminUser     = "ferry_admin"
	AdminPassword = "ferry-admin-pw"
	AppUser       = "shop_app"
	AppPassword   = "shop-app-pw"
	ReplUser      = "ferry_repl"
	ReplPassword  = "ferry-repl-pw"
	// AppSchema holds the writer's table.
	AppSchema = "shop"
)

// Find returns the paths of mariadbd and mariadb-install-db, or an error saying how to
// install them.
func Find() (mariadbd, installDB string, err error) {
	mariadbd, err = exec.LookPath("mariadbd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mariadbd"); serr == nil {
			mariadbd, err = "/usr/sbin/mariadbd", nil
		}
	}
	if err != nil {
		return "", "", errors.New("mariadbd not found on PATH or in /usr/sbin; install MariaDB 10.11 (apt-get install mariadb-server) to run the database cutover against real servers")
	}
	installDB, err = exec.LookPath("mariadb-install-db")
	if err != nil {
		return "", "", errors.New("mariadb-install-db not found on PATH; install MariaDB 10.11 (apt-get install mariadb-server)")
	}
	return mariadbd, installDB, nil
}

// Server is one running mariadbd.
type Server struct {
	Name     string
	Host     string // loopback address, e.g. 127.0.0.2
	Port     int
	ServerID int
	Dir      string
	cmd      *exec.Cmd
	done     chan struct{}
	mu       sync.Mutex
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Pid is the process id, or 0 when it is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// DSN is a go-sql-driver DSN for user on this server.
func (s *Server) DSN(user, password, schema string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, password, "tcp", s.Addr(), schema
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 2*time.Second, 10*time.Second, 10*time.Second
	c.InterpolateParams = true
	return c.FormatDSN()
}

// Admin opens a connection pool as the admin user.
func (s *Server) Admin() (*sql.DB, error) {
	return sql.Open("mysql", s.DSN(AdminUser, AdminPassword, ""))
}

// Pair is a source and a target.
type Pair struct {
	Source, Target *Server
}

// Options configure Start.
type Options struct {
	// Dir holds both data directories.
	Dir string
	// Hosts are the two loopback addresses (default 127.0.0.2 and 127.0.0.3).
	Hosts [2]string
	// Port both listen on (0: a free one).
	Port int
	// Log receives the servers' stderr (nil: discarded).
	Log *os.File
}

// Start initialises and starts both servers, creates the users and the application's
// schema on the source, and makes the target replicate from it with GTIDs. On error it
// stops whatever it started.
func Start(ctx context.Context, o Options) (*Pair, error) {
	mariadbd, installDB, err := Find()
	if err != nil {
		return nil, err
	}
	if o.Hosts[0] == "" {
		o.Hosts = [2]string{"127.0.0.2", "127.0.0.3"}
	}
	if o.Port == 0 {
		if o.Port, err = loopback.SharedPort(o.Hosts); err != nil {
			return nil, err
		}
	}
	p := &Pair{}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	servers := make([]*Server, 2)
	for i, name := range []string{"source", "target"} {
		servers[i] = &Server{Name: name, Host: o.Hosts[i], Port: o.Port, ServerID: i + 1, Dir: filepath.Join(o.Dir, name)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = servers[i].start(ctx, mariadbd, installDB, o.Log)
		}()
	}
	wg.Wait()
	p.Source, p.Target = servers[0], servers[1]
	if err := errors.Join(errs...); err != nil {
		p.Stop()
		return nil, err
	}
	if err := p.setup(ctx); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func (s *Server) start(ctx context.Context, mariadbd, installDB string, logf *os.File) error {
	data := filepath.Join(s.Dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	// Seen failing now and then on a loaded machine (the bootstrap server it runs): one
	// retry on a clean directory.
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		_ = os.RemoveAll(data)
		if err = os.MkdirAll(data, 0o755); err != nil {
			return err
		}
		install := exec.CommandContext(ctx, installDB, "--no-defaults", "--datadir="+data, "--user=root",
			"--auth-root-authentication-method=normal", "--skip-test-db")
		out, ierr := install.CombinedOutput()
		if ierr == nil {
			return s.run(ctx, mariadbd, logf)
		}
		err = fmt.Errorf("mariadb-install-db %s: %v: %s", s.Name, ierr, errorLines(out))
	}
	return err
}

// run starts mariadbd on the initialised data directory and waits until it answers.
func (s *Server) run(ctx context.Context, mariadbd string, logf *os.File) error {
	data := filepath.Join(s.Dir, "data")
	args := []string{"--no-defaults", "--datadir=" + data, "--port=" + strconv.Itoa(s.Port), "--bind-address=" + s.Host,
		"--socket=" + filepath.Join(s.Dir, "sock"), "--pid-file=" + filepath.Join(s.Dir, "pid"), "--user=root",
		"--server-id=" + strconv.Itoa(s.ServerID), "--log-bin=mysql-bin", "--log-slave-updates", "--gtid-strict-mode=1",
		"--binlog-format=ROW", "--skip-name-resolve", "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
		"--performance-schema=OFF", "--skip-log-error", "--max-connections=200",
		// A fast sandbox: durability is not what these servers are for.
		"--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0"}
	cmd := exec.Command(mariadbd, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a ^C to `ferry dev` reaches ferry first, which stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mariadbd %s: %w", s.Name, err)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	s.mu.Unlock()
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("mariadbd %s exited at startup (see its log in %s)", s.Name, data)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond); err == nil {
			_ = c.Close()
			db, err := sql.Open("mysql", rootDSN(s))
			if err == nil {
				err = db.PingContext(ctx)
				_ = db.Close()
			}
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mariadbd %s did not answer on %s within 30s", s.Name, s.Addr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func rootDSN(s *Server) string {
	c := mysql.NewConfig()
	c.User, c.Net, c.Addr, c.Timeout = "root", "tcp", s.Addr(), 2*time.Second
	return c.FormatDSN()
}

// errorLines picks the lines of a tool's output that say what went wrong.
func errorLines(b []byte) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(strings.ToLower(l), "error") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	if len(out) == 0 && len(b) > 400 {
		return string(b[:400])
	}
	if len(out) == 0 {
		return string(b)
	}
	return strings.Join(out, " | ")
}

// setup creates the users on both servers (with binary logging off: each server gets its
// own, so they are not replicated twice), the application schema on the source, and
// starts GTID replication source -> target.
func (p *Pair) setup(ctx context.Context) error {
	for _, s := range []*Server{p.Source, p.Target} {
		db, err := sql.Open("mysql", rootDSN(s))
		if err != nil {
			return err
		}
		stmts := []string{
			"SET SESSION sql_log_bin = 0",
			fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", AdminUser, AdminPassword),
			fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%' WITH GRANT OPTION", AdminUser),
			fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", ReplUser, ReplPassword),
			fmt.Sprintf("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '%s'@'%%'", ReplUser),
			fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", AppUser, AppPassword),
			fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON %s.* TO '%s'@'%%'", AppSchema, AppUser),
		}
		err = execAll(ctx, db, stmts)
		_ = db.Close()
		if err != nil {
			return fmt.Errorf("set up users on %s: %w", s.Name, err)
		}
	}
	src, err := sql.Open("mysql", rootDSN(p.Source))
	if err != nil {
		return err
	}
	defer src.Close()
	if err := execAll(ctx, src, []string{
		"CREATE DATABASE " + AppSchema,
		"CREATE TABLE " + AppSchema + ".writes (n BIGINT PRIMARY KEY, at DATETIME(6) NOT NULL, server_id INT NOT NULL)",
	}); err != nil {
		return fmt.Errorf("create the application schema: %w", err)
	}
	tgt, err := sql.Open("mysql", rootDSN(p.Target))
	if err != nil {
		return err
	}
	defer tgt.Close()
	// slave_pos starts empty, so the target replicates the source's whole binlog (the
	// schema above included).
	return execAll(ctx, tgt, []string{
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
			p.Source.Host, p.Source.Port, ReplUser, ReplPassword),
		"START SLAVE",
		"SET GLOBAL read_only = ON",
	})
}

func execAll(ctx context.Context, db *sql.DB, stmts []string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// Kill stops a server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Stop stops a server by its pid (SIGTERM, then SIGKILL after 10s).
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Stop stops both servers.
func (p *Pair) Stop() {
	var wg sync.WaitGroup
	for _, s := range []*Server{p.Source, p.Target} {
		if s != nil {
			wg.Add(1)
			go func() { defer wg.Done(); s.Stop() }()
		}
	}
	wg.Wait()
}
