package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/internal/apiclient"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/server"
)

// pki writes a CA and certificates signed by it as PEM files in dir.
type pki struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	p.ca, p.caKey = p.issue(t, "ca", "ferry test CA", true, nil)
	return p
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

func (p *pki) issue(t *testing.T, name, cn string, isCA bool, ips []net.IP) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: true, IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	parent, signer := tmpl, key
	if p.ca != nil {
		parent, signer = p.ca, p.caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(file, typ string, b []byte) {
		if err := os.WriteFile(p.path(file), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(name+".pem", "CERTIFICATE", der)
	write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
	return cert, key
}

// TestMutualTLS serves the API with TLS and a client CA: a client certificate whose common
// name the token file knows authenticates without a token; an unknown one, or none, is
// refused; bearer tokens keep working next to mTLS.
func TestMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("boots an embedded Temporal")
	}
	_, c := testenv.Temporal(t)
	p := newPKI(t)
	p.issue(t, "server", "ferry api", false, []net.IP{net.ParseIP("127.0.0.1")})
	p.issue(t, "alice", "alice", false, nil)
	p.issue(t, "mallory", "mallory", false, nil)
	tokens := server.NewTokens(
		server.TokenEntry{CertCommonName: "alice", Principal: server.Principal{Identity: "alice", Roles: []string{server.RoleViewer}}},
		server.TokenEntry{Token: testenv.TokenVera, Principal: server.Principal{Identity: "vera", Roles: []string{server.RoleViewer}}},
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.ServeTLS(ctx, ln, server.Handler(c, server.Options{Namespace: "default", Tokens: tokens}),
			server.TLSFiles{CertFile: p.path("server.pem"), KeyFile: p.path("server-key.pem"), ClientCAFile: p.path("ca.pem")}, nil)
	}()
	defer func() { cancel(); <-done }()
	url := "https://" + ln.Addr().String()

	call := func(cert, token string) error {
		var certFile, keyFile string
		if cert != "" {
			certFile, keyFile = p.path(cert+".pem"), p.path(cert+"-key.pem")
		}
		tc, err := apiclient.TLSConfig(p.path("ca.pem"), certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}
		_, err = apiclient.New(hc, url, token, true).GetMigration(ctx, connect.NewRequest(&ferryv1.GetMigrationRequest{Id: "dns/none/none/A"}))
		return err
	}
	if err := call("alice", ""); code(err) != connect.CodeNotFound {
		t.Errorf("alice's certificate: %v; want NotFound (authenticated, no such migration)", err)
	}
	if err := call("mallory", ""); code(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "mallory") {
		t.Errorf("an unknown certificate: %v; want Unauthenticated naming it", err)
	}
	if err := call("", ""); code(err) != connect.CodeUnauthenticated {
		t.Errorf("no certificate, no token: %v; want Unauthenticated", err)
	}
	if err := call("", testenv.TokenVera); code(err) != connect.CodeNotFound {
		t.Errorf("a token over TLS: %v; want NotFound", err)
	}
}
