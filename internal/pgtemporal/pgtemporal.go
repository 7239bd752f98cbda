// Package pgtemporal runs a real Temporal cluster on PostgreSQL for tests and benchmarks:
// the `temporal-server` and `temporal-sql-tool` binaries of the go.temporal.io/server version
// ferry pins, built once and cached, a fresh pair of databases per run (created and given
// their schema by the SQL tool), and the frontend, history, matching and worker services in
// one server process with a config of its own. It is how production clusters store their
// state, which the embedded SQLite server is not.
package pgtemporal

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
)

// Options says which PostgreSQL to use and where to keep the run's files.
type Options struct {
	// PGAddr is PostgreSQL's host:port. Default 127.0.0.1:5432 (the machine's, trust auth).
	PGAddr string
	// PGUser connects (and must be allowed to create databases). Default postgres.
	PGUser string
	// Dir holds the config and the server's log.
	Dir string
	// BinDir caches the built binaries. Default: the user cache directory.
	BinDir string
	// DynamicConfig adds dynamic config values (name: value).
	DynamicConfig map[string]any
}

// Cluster is a running Temporal server on its own databases.
type Cluster struct {
	HostPort string
	// Databases are the history and visibility databases, dropped by Stop.
	Databases [2]string
	cmd       *exec.Cmd
	opts      Options
	sqlTool   string
	logPath   string
	done      chan struct{}
}

// Reachable says whether PostgreSQL answers at addr; tests use it to skip or fail.
func Reachable(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:5432"
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return fmt.Errorf("postgresql is not reachable at %s (install postgresql and start it, trust auth on loopback): %w", addr, err)
	}
	return c.Close()
}

// ServerVersion is the pinned go.temporal.io/server version, from the build info.
func ServerVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "go.temporal.io/server" {
				return d.Version
			}
		}
	}
	return "unknown"
}

// Binaries builds temporal-server and temporal-sql-tool from the pinned module into dir
// (once per version: an existing binary is reused) and returns their paths. The build runs
// in this module, so it uses go.mod's version and the warm build cache.
func Binaries(ctx context.Context, dir string) (server, sqlTool string, err error) {
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", "", err
		}
		dir = filepath.Join(cache, "ferry", "temporal-"+ServerVersion())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	build := func(name, pkg string) (string, error) {
		out := filepath.Join(dir, name)
		if _, err := os.Stat(out); err == nil {
			return out, nil
		}
		tmp := out + ".tmp." + strconv.Itoa(os.Getpid())
		cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, pkg)
		cmd.Dir = moduleRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s: %w\n%s", pkg, err, b)
		}
		return out, os.Rename(tmp, out)
	}
	if server, err = build("temporal-server", "go.temporal.io/server/cmd/server"); err != nil {
		return "", "", err
	}
	sqlTool, err = build("temporal-sql-tool", "go.temporal.io/server/cmd/tools/sql")
	return server, sqlTool, err
}

// moduleRoot finds ferry's go.mod from the working directory up (tests run in a package
// directory).
func moduleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// Start creates two fresh databases, sets up their schema with the SQL tool, writes a
// config and starts the server, returning once the frontend answers a health check.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.PGAddr == "" {
		o.PGAddr = "127.0.0.1:5432"
	}
	if o.PGUser == "" {
		o.PGUser = "postgres"
	}
	if err := Reachable(o.PGAddr); err != nil {
		return nil, err
	}
	server, sqlTool, err := Binaries(ctx, o.BinDir)
	if err != nil {
		return nil, err
	}
	name := "ferry_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	c := &Cluster{Databases: [2]string{name, name + "_visibility"}, opts: o, sqlTool: sqlTool, done: make(chan struct{})}
	for i, schema := range []string{"postgresql/v12/temporal", "postgresql/v12/visibility"} {
		db := c.Databases[i]
		for _, args := range [][]string{
			{"create-database"},
			{"setup-schema", "-v", "0.0"},
			{"update-schema", "--schema-name", schema},
		} {
			if err := c.sql(ctx, db, args...); err != nil {
				c.dropDatabases()
				return nil, err
			}
		}
	}
	ports, err := freePorts(9)
	if err != nil {
		c.dropDatabases()
		return nil, err
	}
	c.HostPort = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	if err := os.MkdirAll(filepath.Join(o.Dir, "config"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "config", "ferry.yaml"), []byte(c.config(ports)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "dynamicconfig.yaml"), []byte(dynamicConfig(o.DynamicConfig)), 0o644); err != nil {
		return nil, err
	}
	c.logPath = filepath.Join(o.Dir, "temporal.log")
	logFile, err := os.Create(c.logPath)
	if err != nil {
		return nil, err
	}
	c.cmd = exec.Command(server, "--root", o.Dir, "--config", "config", "--env", "ferry", "--allow-no-auth", "start")
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		_ = logFile.Close()
		c.dropDatabases()
		return nil, err
	}
	go func() { _ = c.cmd.Wait(); _ = logFile.Close(); close(c.done) }()
	if err := c.waitHealthy(ctx, 90*time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// sql runs the SQL tool on one database.
func (c *Cluster) sql(ctx context.Context, db string, args ...string) error {
	host, port, _ := net.SplitHostPort(c.opts.PGAddr)
	base := []string{"--plugin", "postgres12", "--ep", host, "-p", port, "-u", c.opts.PGUser, "--db", db}
	cmd := exec.CommandContext(ctx, c.sqlTool, append(base, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("temporal-sql-tool %s on %s: %w\n%s", strings.Join(args, " "), db, err, b)
	}
	return nil
}

func (c *Cluster) waitHealthy(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return fmt.Errorf("temporal server exited during start; its log:\n%s", c.LogTail(40))
		default:
		}
		cl, err := client.Dial(client.Options{HostPort: c.HostPort, Logger: quiet})
		if err == nil {
			hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err = cl.CheckHealth(hctx, &client.CheckHealthRequest{})
			cancel()
			cl.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("temporal server on %s not healthy within %s: %v; its log:\n%s", c.HostPort, limit, last, c.LogTail(40))
}

// Kill stops the server at once (SIGKILL), leaving the databases: a crashed cluster.
func (c *Cluster) Kill() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s) and drops its databases.
func (c *Cluster) Stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			c.Kill()
		}
	}
	c.dropDatabases()
}

func (c *Cluster) dropDatabases() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, db := range c.Databases {
		_ = c.sql(ctx, db, "drop-database", "--force")
	}
}

// LogTail returns the last n lines of the server's log, for failure messages.
func (c *Cluster) LogTail(n int) string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 400 { // the server's JSON lines carry whole stack traces
			lines[i] = l[:400] + "..."
		}
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n ports free a moment ago, below 32768: Temporal's SQL schema keeps
// membership ports in a smallint, so the kernel's ephemeral ports (32768 and up) are refused.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	var ports []int
	for try := 0; len(ports) < n; try++ {
		if try > 500 {
			return nil, errors.New("no free ports between 20000 and 32767 on 127.0.0.1")
		}
		p := 20000 + rand.IntN(12768)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		lns = append(lns, l)
		ports = append(ports, p)
	}
	return ports, nil
}
