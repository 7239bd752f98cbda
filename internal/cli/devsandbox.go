package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/ferryhq/ferry/sandbox"
	"github.com/ferryhq/ferry/sandbox/topology"
)

// devSandbox is the simulated cloud as `ferry dev` and `ferry sandbox` run it: AWS, the
// regional apps and the control API on one port, and the MongoDB replica sets.
type devSandbox struct {
	url   string
	sb    *sandbox.Sandbox
	mongo *sandbox.MongoSets
}

func (d *devSandbox) stop() {
	_ = d.sb.Close()
	_ = d.mongo.Close()
}

func loadTopology(path string) (*topology.Topology, error) {
	if path == "" {
		return topology.Default(), nil
	}
	t, err := topology.Load(path)
	if err != nil {
		return nil, fmt.Errorf("topology %s: %w", path, err)
	}
	return t, nil
}

func startDevSandbox(ctx context.Context, log *slog.Logger, addr, topologyFile string, fast bool) (*devSandbox, error) {
	topo, err := loadTopology(topologyFile)
	if err != nil {
		return nil, err
	}
	mongo, err := sandbox.StartMongo(ctx, topo, fast, log)
	if err != nil {
		return nil, fmt.Errorf("sandbox mongodb (edit the topology's mongo section, or use --no-sandbox): %w", err)
	}
	sb, err := sandbox.Start(ctx, sandbox.Options{Addr: addr, Topology: topo, Fast: fast, Logger: log, Mongo: mongo})
	if err != nil {
		_ = mongo.Close()
		return nil, fmt.Errorf("sandbox on %s (use --sandbox-addr): %w", addr, err)
	}
	return &devSandbox{url: sb.Addr(), sb: sb, mongo: mongo}, nil
}

// describe adds the sandbox's rows to the address table.
func (d *devSandbox) describe(w io.Writer) {
	fmt.Fprintf(w, "sandbox AWS\t%s\tEC2, Route 53, CloudWatch; regions %s\n", d.url, strings.Join(d.sb.Topology().Regions, ", "))
	fmt.Fprintf(w, "sandbox control\t%s/_sandbox/\tfaults, call record, traffic (ferry sandbox --help)\n", d.url)
	// A set goes by its id (the <set> of mongo:<set>:... faults); the name drivers see is
	// shown when it differs, as when two sets are named rs0.
	for _, id := range d.mongo.IDs() {
		c := d.mongo.Cluster(id)
		what := ""
		if c.SetName() != id {
			what = "replica set named " + c.SetName()
		}
		fmt.Fprintf(w, "sandbox MongoDB %s\t%s\t%s\n", id, c.URI(), what)
	}
}
