// Package temporalconn turns ferry's connection flags (address, namespace, TLS / mTLS files,
// API key) into a Temporal client, so `ferry worker` and `ferry server` reach any cluster:
// the embedded one, a self-hosted one or Temporal Cloud.
package temporalconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
)

// Options are the connection settings, each a flag and a FERRY_* environment variable.
type Options struct {
	Address   string // host:port of the frontend
	Namespace string
	// TLS turns on TLS with the system roots (or CAFile). CertFile + KeyFile add mTLS.
	TLS        bool
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string
	// APIKey authenticates to Temporal Cloud (or any cluster that takes API keys); it implies TLS.
	APIKey string
	// Identity names this process in the Temporal UI (workers' identity, API callers).
	Identity string
	// MetricsHandler receives the SDK's metrics and those workflows emit (nil: none).
	MetricsHandler client.MetricsHandler
	// Interceptors wrap the client's calls and, when they are worker interceptors too (the
	// tracing one is), the workflows and activities of workers built from the client.
	Interceptors []interceptor.ClientInterceptor
}

// Validate checks the combination of settings before any connection is tried.
func (o Options) Validate() error {
	if o.Address == "" {
		return errors.New("temporal address is empty: set --temporal-address or FERRY_TEMPORAL_ADDRESS (e.g. 127.0.0.1:7233)")
	}
	if o.Namespace == "" {
		return errors.New("temporal namespace is empty: set --temporal-namespace or FERRY_TEMPORAL_NAMESPACE")
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("mTLS needs both --temporal-tls-cert and --temporal-tls-key")
	}
	return nil
}

// Dial connects to Temporal.
func Dial(o Options, logger *slog.Logger) (client.Client, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	co := client.Options{
		HostPort:  o.Address,
		Namespace: o.Namespace,
		Identity:  o.Identity,
	}
	if o.MetricsHandler != nil {
		co.MetricsHandler = o.MetricsHandler
	}
	co.Interceptors = o.Interceptors
	if logger != nil {
		co.Logger = tlog.NewStructuredLogger(logger)
	}
	if o.TLS || o.CAFile != "" || o.CertFile != "" || o.APIKey != "" {
		tc, err := tlsConfig(o)
		if err != nil {
			return nil, err
		}
		co.ConnectionOptions.TLS = tc
	}
	if o.APIKey != "" {
		co.Credentials = client.NewAPIKeyStaticCredentials(o.APIKey)
	}
	c, err := client.Dial(co)
	if err != nil {
		return nil, fmt.Errorf("connect to temporal at %s (namespace %s): %w", o.Address, o.Namespace, err)
	}
	return c, nil
}

func tlsConfig(o Options) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read temporal CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("temporal CA file %s holds no PEM certificate", o.CAFile)
		}
		tc.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load temporal client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
