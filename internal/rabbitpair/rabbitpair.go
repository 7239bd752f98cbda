// Package rabbitpair runs two real RabbitMQ nodes for tests and `ferry dev`: blue (the old
// broker) and green (the new one), each a separate rabbitmq-server with its own config,
// database, logs and plugins (management, shovel). Like internal/mariadbpair, each node
// listens for AMQP on its own loopback address (127.0.0.4, 127.0.0.5) with one shared port,
// so a DNS A record (which carries no port) can tell them apart: repointing the broker's
// name from one address to the other is the switch. The management APIs, which ferry
// calls directly by URL, have a port each on 127.0.0.1.
package rabbitpair

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ferryhq/ferry/internal/loopback"
)

// Credentials of the nodes' administrator (the config file's default user). They are for
// throwaway local nodes only.
const (
	AdminUser     = "ferry_admin"
	AdminPassword = "ferry-admin-pw"
	// VHost is the virtual host the nodes start with.
	VHost = "/"
)

// Debian's wrapper /usr/sbin/rabbitmq-server runs the real script through `su rabbitmq`,
// which would put a shell we do not own between us and the node; the real script is run
// directly as the rabbitmq user instead.
const serverScript = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// Find returns the rabbitmq-server script and the uid/gid of the rabbitmq user, or an error
// saying how to install RabbitMQ.
func Find() (script string, uid, gid uint32, err error) {
	script = serverScript
	if _, err := os.Stat(script); err != nil {
		p, lerr := exec.LookPath("rabbitmq-server")
		if lerr != nil {
			return "", 0, 0, errors.New("rabbitmq-server not found (" + serverScript + " or on PATH); install RabbitMQ 3.10+ (apt-get install rabbitmq-server) to move brokers against real nodes")
		}
		script = p
	}
	u, err := user.Lookup("rabbitmq")
	if err != nil {
		return "", 0, 0, fmt.Errorf("no rabbitmq user (%v); install RabbitMQ with its package (apt-get install rabbitmq-server)", err)
	}
	id, _ := strconv.ParseUint(u.Uid, 10, 32)
	g, _ := strconv.ParseUint(u.Gid, 10, 32)
	return script, uint32(id), uint32(g), nil
}

// Node is one running RabbitMQ node.
type Node struct {
	Name      string // blue or green
	NodeName  string // Erlang node name, e.g. blue-1234@localhost
	Host      string // AMQP loopback address, e.g. 127.0.0.4
	AMQPPort  int
	MgmtPort  int
	DistPort  int
	Dir       string
	cmd       *exec.Cmd
	done      chan struct{}
	mu        sync.Mutex
	startTook time.Duration
}

// AMQPAddr is host:port of the AMQP listener.
func (n *Node) AMQPAddr() string { return net.JoinHostPort(n.Host, strconv.Itoa(n.AMQPPort)) }

// AMQPURL is an amqp:// URL for user on this node's address (host may be a DNS name that
// resolves to Host instead; see URLFor).
func (n *Node) AMQPURL() string { return n.URLFor(n.Host) }

// URLFor is the admin's amqp:// URL with host in place of the node's address.
func (n *Node) URLFor(host string) string {
	u := url.URL{Scheme: "amqp", User: url.UserPassword(AdminUser, AdminPassword),
		Host: net.JoinHostPort(host, strconv.Itoa(n.AMQPPort)), Path: "/"}
	return u.String()
}

// MgmtURL is the management API's base URL (no credentials).
func (n *Node) MgmtURL() string { return "http://127.0.0.1:" + strconv.Itoa(n.MgmtPort) }

// Pid is the process id (the node's process group), or 0 when it is not running.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// StartTook is how long the node took to answer on its management API.
func (n *Node) StartTook() time.Duration { return n.startTook }

// Pair is the two nodes.
type Pair struct {
	Blue, Green *Node
	// Root is the directory holding both nodes' files (owned by the rabbitmq user).
	Root string
	// StatsInterval is the nodes' collect_statistics_interval.
	StatsInterval time.Duration
	ownsRoot      bool
}

// Options configure Start.
type Options struct {
	// Dir holds both nodes' directories. It must be traversable by the rabbitmq user; empty:
	// a new directory under os.TempDir, removed by Stop. (t.TempDir is 0700 root's, which the
	// node cannot enter.)
	Dir string
	// Hosts are the two AMQP loopback addresses (default 127.0.0.4 and 127.0.0.5).
	Hosts [2]string
	// StatsInterval is collect_statistics_interval (default 1s, RabbitMQ's own is 5s): the
	// drain oracle waits at least two of them, so short keeps tests short.
	StatsInterval time.Duration
	// Log receives the nodes' stdout and stderr (nil: each node's dir/out).
	Log *os.File
	// AMQPPort and MgmtPorts (blue's, green's), when set, are fixed ports instead of free
	// ones picked at start: `ferry dev`'s example names them.
	AMQPPort  int
	MgmtPorts [2]int
}

// Start writes both nodes' configs and starts them in parallel, returning when both
// management APIs answer. On error it stops whatever it started.
func Start(ctx context.Context, o Options) (*Pair, error) {
	script, uid, gid, err := Find()
	if err != nil {
		return nil, err
	}
	if o.Hosts[0] == "" {
		o.Hosts = [2]string{"127.0.0.4", "127.0.0.5"}
	}
	if o.StatsInterval == 0 {
		o.StatsInterval = time.Second
	}
	p := &Pair{StatsInterval: o.StatsInterval}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "ferry-rabbitpair-"); err != nil {
			return nil, err
		}
		p.ownsRoot = true
	}
	p.Root = o.Dir
	amqpPort := o.AMQPPort
	if amqpPort == 0 {
		if amqpPort, err = loopback.SharedPort(o.Hosts); err != nil {
			return nil, err
		}
	}
	// Management and distribution ports, two each, held open together so none repeats.
	local, err := freeLocalPorts(4)
	if err != nil {
		return nil, err
	}
	nodes := make([]*Node, 2)
	for i, name := range []string{"blue", "green"} {
		mgmt := local[2*i]
		if o.MgmtPorts[i] != 0 {
			mgmt = o.MgmtPorts[i]
		}
		nodes[i] = &Node{Name: name, Host: o.Hosts[i], AMQPPort: amqpPort, MgmtPort: mgmt, DistPort: local[2*i+1],
			// The pid keeps two packages' pairs (go test runs packages in parallel) apart in epmd.
			NodeName: fmt.Sprintf("%s-%d@localhost", name, os.Getpid()),
			Dir:      filepath.Join(o.Dir, name)}
	}
	p.Blue, p.Green = nodes[0], nodes[1]
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.start(ctx, script, uid, gid, o)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// Stop stops both nodes by their process groups and removes the directory Start made.
func (p *Pair) Stop() {
	var wg sync.WaitGroup
	for _, n := range []*Node{p.Blue, p.Green} {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); n.Stop() }()
	}
	wg.Wait()
	if p.ownsRoot {
		_ = os.RemoveAll(p.Root)
	}
}

// Stop stops the node: SIGTERM to its process group (the script forwards it as a clean
// shutdown), SIGKILL after 5s, since these nodes hold nothing worth a slow shutdown.
func (n *Node) Stop() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	// The group may still hold beam.smp after the script exited.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-done
}

func (n *Node) start(ctx context.Context, script string, uid, gid uint32, o Options) error {
	if err := n.writeFiles(uid, gid, o.StatsInterval); err != nil {
		return err
	}
	logf := o.Log
	if logf == nil {
		f, err := os.Create(filepath.Join(n.Dir, "out"))
		if err != nil {
			return err
		}
		defer f.Close()
		logf = f
	}
	cmd := exec.Command(script)
	cmd.Dir = n.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(),
		"HOME="+n.Dir, // the Erlang cookie lives in $HOME
		"RABBITMQ_NODENAME="+n.NodeName,
		"RABBITMQ_DIST_PORT="+strconv.Itoa(n.DistPort),
		// The system's /etc/rabbitmq/rabbitmq.conf pins port 5672: our own file, always.
		"RABBITMQ_CONFIG_FILE="+filepath.Join(n.Dir, "rabbitmq.conf"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(n.Dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(n.Dir, "log"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(n.Dir, "enabled_plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(n.Dir, "pid"),
	)
	// Its own process group, so Stop reaches the script and beam.smp together and a ^C to
	// `ferry dev` reaches ferry first, which stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: gid}
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start rabbitmq %s: %w", n.Name, err)
	}
	n.mu.Lock()
	n.cmd, n.done = cmd, make(chan struct{})
	done := n.done
	n.mu.Unlock()
	go func() { _ = cmd.Wait(); close(done) }()
	// About 13s on 2 idle cores; a loaded machine takes longer.
	deadline := time.Now().Add(90 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-done:
			return fmt.Errorf("rabbitmq %s exited at startup (see %s and %s)", n.Name, filepath.Join(n.Dir, "out"), filepath.Join(n.Dir, "log"))
		case <-ctx.Done():
			return fmt.Errorf("rabbitmq %s: %w", n.Name, ctx.Err())
		default:
		}
		if n.ready(ctx, client) {
			n.startTook = time.Since(began)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rabbitmq %s: management API %s did not answer within 90s (see %s)", n.Name, n.MgmtURL(), filepath.Join(n.Dir, "log"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ready reports whether the management API answers and the node's vhost is up: the API
// answers /api/overview a little before the AMQP listener is accepting.
func (n *Node) ready(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.MgmtURL()+"/api/aliveness-test/%2F", nil)
	if err != nil {
		return false
	}
	req.SetBasicAuth(AdminUser, AdminPassword)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	c, err := net.DialTimeout("tcp", n.AMQPAddr(), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func (n *Node) writeFiles(uid, gid uint32, stats time.Duration) error {
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf(`listeners.tcp.1 = %s
management.tcp.ip = 127.0.0.1
management.tcp.port = %d
loopback_users = none
default_user = %s
default_pass = %s
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
collect_statistics_interval = %d
`, n.AMQPAddr(), n.MgmtPort, AdminUser, AdminPassword, stats.Milliseconds())
	files := map[string]string{
		"rabbitmq.conf":   conf,
		"enabled_plugins": "[rabbitmq_management,rabbitmq_shovel,rabbitmq_shovel_management].\n",
		// The nodes never cluster; the cookie only has to exist and be private.
		".erlang.cookie": "FERRYRABBITPAIR" + strconv.Itoa(os.Getpid()),
	}
	for name, body := range files {
		mode := os.FileMode(0o644)
		if name == ".erlang.cookie" {
			mode = 0o400
		}
		if err := os.WriteFile(filepath.Join(n.Dir, name), []byte(body), mode); err != nil {
			return err
		}
	}
	if os.Geteuid() != 0 {
		return nil
	}
	// The node runs as the rabbitmq user: it must own its directory (and reach it).
	if err := os.Chown(filepath.Dir(n.Dir), int(uid), int(gid)); err != nil {
		return err
	}
	return filepath.Walk(n.Dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(path, int(uid), int(gid))
	})
}

func freeLocalPorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
