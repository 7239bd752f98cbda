// The MongoDB activities' connections: one pooled client per set and credentials (or per
// member for direct probes), secrets resolved on the worker, and how driver errors are
// classified for Temporal's retries.

package activities

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
)

// MongoSecret is the replica set's password reference.
type MongoSecret = Secret

// MongoConn says how to reach a replica set. It carries no secret, only where the worker
// finds it, so it can travel through workflow history.
type MongoConn struct {
	URI        string
	ReplicaSet string
	Username   string
	Password   MongoSecret
	TLS        bool
	TLSCAFile  string
}

// Mongo drives replica-set reconfigs through the official driver. Clients are created on
// demand per (URI, user, TLS) and cached, so consecutive activities reuse one topology
// monitor; the password is resolved here, on the worker, from its reference. The cache is
// bounded (maxMongoClients, and clients idle for mongoClientIdle are closed), because the
// hosts come from specs: a worker must not keep a monitor open to every host anyone named.
type Mongo struct {
	logger *slog.Logger

	mu      sync.Mutex
	clients map[string]*cachedClient
	closed  bool
}

type cachedClient struct {
	c    *mongo.Client
	used time.Time
}

// Bounds of the client cache: a worker runs a few moves at once, each with one set client
// and a handful of direct member probes.
const (
	maxMongoClients = 64
	mongoClientIdle = 10 * time.Minute
)

// NewMongo returns the MongoDB activities; Close disconnects the cached clients.
func NewMongo(logger *slog.Logger) *Mongo {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Mongo{logger: logger, clients: map[string]*cachedClient{}}
}

// Close disconnects every cached client.
func (m *Mongo) Close() error {
	m.mu.Lock()
	clients := m.clients
	m.clients, m.closed = map[string]*cachedClient{}, true
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, c := range clients {
		if err := c.c.Disconnect(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// client returns the cached client for conn; direct names one host to talk to alone.
func (m *Mongo) client(conn MongoConn, direct string) (*mongo.Client, error) {
	key := strings.Join([]string{conn.URI, conn.ReplicaSet, conn.Username, fmt.Sprint(conn.TLS), conn.TLSCAFile, direct}, "\x00")
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("mongo activities are closed")
	}
	now := time.Now()
	if c, ok := m.clients[key]; ok {
		c.used = now
		return c.c, nil
	}
	m.evict(now)
	opts := options.Client().
		// The floor the driver allows: the workflow waits on primary changes, and a
		// stale topology would send reconfigs to a stepped-down member.
		SetHeartbeatInterval(500 * time.Millisecond).
		SetServerSelectionTimeout(10 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetAppName("ferry")
	if direct != "" {
		opts.ApplyURI("mongodb://" + direct + "/?directConnection=true")
	} else {
		opts.ApplyURI(conn.URI)
		if conn.ReplicaSet != "" {
			opts.SetReplicaSet(conn.ReplicaSet)
		}
	}
	if conn.Username != "" {
		pw, err := resolveSecret(conn.Password)
		if err != nil {
			return nil, err
		}
		opts.SetAuth(options.Credential{Username: conn.Username, Password: pw})
	}
	if conn.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if conn.TLSCAFile != "" {
			pem, err := os.ReadFile(conn.TLSCAFile)
			if err != nil {
				return nil, permanent(ErrBadInput, err, "read TLS CA file %s: %v", conn.TLSCAFile, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, permanent(ErrBadInput, nil, "TLS CA file %s holds no PEM certificate", conn.TLSCAFile)
			}
			cfg.RootCAs = pool
		}
		opts.SetTLSConfig(cfg)
	}
	if err := opts.Validate(); err != nil {
		return nil, permanent(ErrBadInput, err, "mongodb connection options: %v", err)
	}
	c, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(conn, direct), err)
	}
	m.clients[key] = &cachedClient{c: c, used: now}
	return c, nil
}

// evict closes clients idle for mongoClientIdle and, with the cache full, the least
// recently used one. Called with m.mu held; disconnecting happens in the background.
func (m *Mongo) evict(now time.Time) {
	var gone []*mongo.Client
	oldest, oldestKey := now, ""
	for k, c := range m.clients {
		if now.Sub(c.used) > mongoClientIdle {
			gone = append(gone, c.c)
			delete(m.clients, k)
		} else if c.used.Before(oldest) {
			oldest, oldestKey = c.used, k
		}
	}
	if len(m.clients) >= maxMongoClients && oldestKey != "" {
		gone = append(gone, m.clients[oldestKey].c)
		delete(m.clients, oldestKey)
	}
	for _, c := range gone {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.Disconnect(ctx)
		}()
	}
}

func redact(conn MongoConn, direct string) string {
	if direct != "" {
		return direct
	}
	return conn.URI
}

// resolveSecret reads a password from the worker's environment or a file.
func resolveSecret(s MongoSecret) (string, error) {
	if !s.Set() {
		return "", permanent(ErrMongoSecret, nil, "password: a username is set but no password reference (env or file)")
	}
	v, err := s.Resolve("password")
	if err != nil {
		return "", permanent(ErrMongoSecret, err, "%v", err)
	}
	return v, nil
}

// classify turns a driver error into an activity error: invalid configs and missing
// rights are permanent; everything else (not primary, stepped down, elections, network,
// commit timeouts) is worth a retry once the set settles.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		switch {
		case se.HasErrorCode(codeInvalidReplicaSetConfig), se.HasErrorCode(codeNewReplicaSetConfigIncom):
			return permanent(ErrMongoInvalidConfig, err, "%s: the server rejected the config: %v", op, err)
		case se.HasErrorCode(codeUnauthorized), se.HasErrorCode(codeAuthenticationFailed):
			return permanent(ErrAccessDenied, err, "%s: %v; grant the user clusterAdmin (replSetGetConfig, replSetReconfig, replSetStepDown)", op, err)
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

func runCmd(ctx context.Context, c *mongo.Client, rp *readpref.ReadPref, cmd bson.D) (bson.Raw, error) {
	o := options.RunCmd()
	if rp != nil {
		o.SetReadPreference(rp)
	}
	return c.Database("admin").RunCommand(ctx, cmd, o).Raw()
}
