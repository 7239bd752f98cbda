package pgtemporal

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	sdklog "go.temporal.io/sdk/log"
)

// config is the server's static config: Temporal's development-postgres12.yaml with ports of
// the run's own, archival off, and metrics off (ferry's tests scrape ferry, not the server).
// ports: frontend gRPC, HTTP, membership; history gRPC, membership; matching gRPC,
// membership; worker gRPC, membership.
func (c *Cluster) config(p []int) string {
	store := func(db string, conns int) string {
		return fmt.Sprintf(`      sql:
        pluginName: "postgres12"
        databaseName: %q
        connectAddr: %q
        connectProtocol: "tcp"
        user: %q
        maxConns: %d
        maxIdleConns: %d
        maxConnLifetime: "1h"
`, db, c.opts.PGAddr, c.opts.PGUser, conns, conns)
	}
	return fmt.Sprintf(`log:
  stdout: true
  level: warn

persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:
%s    postgres-visibility:
%s
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"

services:
  frontend:
    rpc: {grpcPort: %d, httpPort: %d, membershipPort: %d, bindOnLocalHost: true}
  history:
    rpc: {grpcPort: %d, membershipPort: %d, bindOnLocalHost: true}
  matching:
    rpc: {grpcPort: %d, membershipPort: %d, bindOnLocalHost: true}
  worker:
    rpc: {grpcPort: %d, membershipPort: %d, bindOnLocalHost: true}

clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "127.0.0.1:%d"

dcRedirectionPolicy:
  policy: "noop"

archival:
  history: {state: "disabled"}
  visibility: {state: "disabled"}

namespaceDefaults:
  archival:
    history: {state: "disabled"}
    visibility: {state: "disabled"}

publicClient:
  hostPort: "127.0.0.1:%d"

dynamicConfigClient:
  filepath: %q
  pollInterval: "10s"
`, store(c.Databases[0], 20), store(c.Databases[1], 4),
		p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[0], p[0],
		filepath.Join(c.opts.Dir, "dynamicconfig.yaml"))
}

// dynamicConfig writes name: value pairs in the server's file format (a list of
// constrained values per name; no constraints here).
func dynamicConfig(values map[string]any) string {
	all := map[string]any{
		// Every approval, pause and rollback is an update.
		"frontend.enableUpdateWorkflowExecution":              true,
		"frontend.enableUpdateWorkflowExecutionAsyncAccepted": true,
	}
	for k, v := range values {
		all[k] = v
	}
	names := make([]string, 0, len(all))
	for k := range all {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "%s:\n  - value: %v\n", k, all[k])
	}
	return b.String()
}

// quiet keeps the SDK's dial retries out of test output while the server starts.
var quiet = sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
