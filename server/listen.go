package server

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// CheckPlaintext refuses to serve the API without TLS on an address other hosts can reach:
// bearer tokens would cross the network in the clear, and anyone on the path could steer
// migrations with them. Loopback (127.0.0.0/8, ::1, localhost) stays allowed, for ferry
// dev and for a server behind a local TLS-terminating proxy; insecure accepts plaintext
// anywhere, on purpose (a service mesh that encrypts for you).
func CheckPlaintext(listen string, files TLSFiles, insecure bool) error {
	if files.CertFile != "" || insecure {
		return nil
	}
	loopback, err := isLoopback(listen)
	if err != nil {
		return err
	}
	if loopback {
		return nil
	}
	return fmt.Errorf("--listen %s is reachable from other hosts, and without TLS bearer tokens would cross the network in the clear: "+
		"give --tls-cert and --tls-key (FERRY_TLS_CERT, FERRY_TLS_KEY), listen on 127.0.0.1 behind a TLS proxy, "+
		"or pass --insecure (FERRY_INSECURE=true) to accept plaintext on purpose", listen)
}

// isLoopback reports whether every address listen may bind is a loopback one. An empty
// host (":8080") binds every interface; a name counts as loopback only if all it resolves
// to is.
func isLoopback(listen string) (bool, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false, fmt.Errorf("--listen %q is not host:port, e.g. 127.0.0.1:8080: %w", listen, err)
	}
	if host == "" {
		return false, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.IsLoopback(), nil
	}
	if host == "localhost" {
		return true, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return false, nil // unknown: treat as reachable
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return false, nil
		}
	}
	return true, nil
}
