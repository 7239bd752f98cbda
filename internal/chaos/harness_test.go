//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/ferryhq/ferry/internal/devtemporal"
)

// workerPool runs ferry worker processes, kills them on request and notices the ones that
// exit on their own.
type workerPool struct {
	mu     sync.Mutex
	bin    string
	args   []string
	logDir string // each slot's processes append their stderr (warnings and errors) here
	procs  []*exec.Cmd
	exited []chan struct{}
	killed []bool
	kills  int
	// selfExits counts processes that ended without being killed (e.g. started while
	// Temporal was restarting: `ferry worker` exits when it cannot connect).
	selfExits int
}

func (p *workerPool) startLocked(i int) error {
	cmd := exec.Command(p.bin, p.args...)
	logf, err := os.OpenFile(filepath.Join(p.logDir, fmt.Sprintf("worker-%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = nil, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	p.procs[i], p.exited[i], p.killed[i] = cmd, done, false
	return nil
}

func (p *workerPool) killOne(r *rand.Rand) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := r.IntN(len(p.procs))
	p.killed[i] = true
	_ = p.procs[i].Process.Signal(syscall.SIGKILL)
	<-p.exited[i]
	p.kills++
	return p.startLocked(i)
}

// restartExited starts again every process that ended without being killed.
func (p *workerPool) restartExited() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.procs {
		select {
		case <-p.exited[i]:
			if !p.killed[i] {
				p.selfExits++
			}
			if err := p.startLocked(i); err != nil {
				return err
			}
		default:
		}
	}
	return nil
}

func (p *workerPool) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.procs {
		if c != nil {
			p.killed[i] = true
			_ = c.Process.Signal(syscall.SIGKILL)
			<-p.exited[i]
		}
	}
}

// temporalServer is the embedded Temporal on a fixed port and a durable file, so it can
// restart under everyone's feet.
type temporalServer struct {
	mu       sync.Mutex
	port     int
	dbFile   string
	s        *devtemporal.Server
	restarts int
}

func (ts *temporalServer) start() error {
	s, err := devtemporal.Start(devtemporal.Options{Port: ts.port, UIPort: -1, DBFile: ts.dbFile})
	if err != nil {
		return fmt.Errorf("start temporal: %w", err)
	}
	ts.s = s
	return nil
}

func (ts *temporalServer) restart() error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.s.Stop()
	ts.s = nil
	ts.restarts++
	return ts.start()
}

func (ts *temporalServer) stop() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.s != nil {
		ts.s.Stop()
		ts.s = nil
	}
}

// ec2State lists the account's images (id -> state) and snapshots in eu-west-2, read over
// the EC2 API like any client would.
func ec2State(t *testing.T, endpoint string) (map[string]string, map[string]bool) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(target),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("sandbox", "sandbox", "")))
	if err != nil {
		t.Fatal(err)
	}
	ec2c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(endpoint) })
	ims, err := ec2c.DescribeImages(ctx, &ec2.DescribeImagesInput{Owners: []string{"self"}})
	if err != nil {
		t.Fatalf("describe images in %s: %v", target, err)
	}
	images := map[string]string{}
	for _, im := range ims.Images {
		images[aws.ToString(im.ImageId)] = string(im.State)
	}
	sns, err := ec2c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}})
	if err != nil {
		t.Fatalf("describe snapshots in %s: %v", target, err)
	}
	snapshots := map[string]bool{}
	for _, s := range sns.Snapshots {
		snapshots[aws.ToString(s.SnapshotId)] = true
	}
	return images, snapshots
}

// waitResult waits for a workflow's result, asking again after errors that are not the
// workflow's own ending (the server restarting, a long poll cut short) until ctx ends.
func waitResult(ctx context.Context, c client.Client, id string, out any) error {
	for {
		err := c.GetWorkflow(ctx, id, "").Get(ctx, out)
		if err == nil {
			return nil
		}
		var wee *temporal.WorkflowExecutionError
		if errors.As(err, &wee) {
			return err // failed, cancelled, terminated or timed out
		}
		if ctx.Err() != nil {
			return fmt.Errorf("not finished within the limit: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}
