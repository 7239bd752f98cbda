// Package loopback finds ports on loopback addresses for servers that ferry's tests and
// `ferry dev` run side by side (a MariaDB pair, a RabbitMQ pair): each pair listens on two
// loopback addresses with one port, so a DNS A record (which carries no port) tells them
// apart.
package loopback

import (
	"errors"
	"net"
	"strconv"
)

// SharedPort returns a port free on both hosts a moment ago.
func SharedPort(hosts [2]string) (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln2, err := net.Listen("tcp", net.JoinHostPort(hosts[1], strconv.Itoa(port)))
		_ = ln.Close()
		if err == nil {
			_ = ln2.Close()
			return port, nil
		}
	}
	return 0, errors.New("no port free on both loopback addresses")
}
