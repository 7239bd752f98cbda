// Package amqpclients is the sandbox's message-broker application: a real AMQP producer
// and consumer (amqp091-go) that resolve the broker's DNS name through the sandbox's
// Route 53, as an application would (caching the answer for the record's TTL), publish
// numbered messages with publisher confirms and consume them with manual acks. amqp091-go
// does not reconnect by itself; these clients do, resolving the name again, which is what
// lets a broker move close their connections on the old broker and find them on the new
// one. A move is judged from their counts (Tally) and the brokers' own state, never from
// ferry's view of itself.
package amqpclients

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ferryhq/ferry/sandbox/awssim"
)

// Resolver answers a name's record sets; *awssim.Server implements it.
type Resolver interface {
	Resolve(name, typ string) []awssim.WeightedAnswer
}

// Options configure a Producer or a Consumer.
type Options struct {
	Resolver Resolver
	// Record is the broker's DNS name (an A record) and Port the brokers' AMQP port (DNS
	// carries no port).
	Record string
	Port   int
	// User and Password are a sandbox credential.
	User, Password string
	VHost          string // default "/"
	// ConnectionName is the client property ferry finds the application's connections by.
	ConnectionName string
	Queue          string
	// Interval between publishes (default 10ms: 100 messages/s).
	Interval time.Duration
	// Prefetch is the consumer's QoS (default 50).
	Prefetch int
	// Retry is the wait before reconnecting (default 100ms).
	Retry time.Duration
}

func (o *Options) defaults() {
	if o.VHost == "" {
		o.VHost = "/"
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Millisecond
	}
	if o.Prefetch <= 0 {
		o.Prefetch = 50
	}
	if o.Retry <= 0 {
		o.Retry = 100 * time.Millisecond
	}
}

// resolver caches the record's answer for its TTL.
type resolver struct {
	o       *Options
	addr    string
	expires time.Time
}

func (r *resolver) resolve(now time.Time) string {
	if r.addr != "" && now.Before(r.expires) {
		return r.addr
	}
	r.addr = ""
	for _, a := range r.o.Resolver.Resolve(r.o.Record, "A") {
		if len(a.Values) > 0 {
			r.addr = net.JoinHostPort(a.Values[0], strconv.Itoa(r.o.Port))
			r.expires = now.Add(time.Duration(a.TTL) * time.Second)
			break
		}
	}
	return r.addr
}

// dial connects to addr as the application.
func dial(o *Options, addr string) (*amqp.Connection, error) {
	if addr == "" {
		return nil, errors.New("the broker's name does not resolve")
	}
	u := url.URL{Scheme: "amqp", User: url.UserPassword(o.User, o.Password), Host: addr, Path: "/" + o.VHost}
	if o.VHost == "/" {
		u.Path = "/"
	}
	cfg := amqp.Config{Properties: amqp.NewConnectionProperties(), Dial: amqp.DefaultDial(2 * time.Second)}
	cfg.Properties.SetClientConnectionName(o.ConnectionName)
	return amqp.DialConfig(u.String(), cfg)
}

// Tally is the clients' account of a run: Sent is the distinct messages published at
// least once, Confirmed those the broker confirmed, Received the distinct messages
// delivered, Duplicated the deliveries beyond each message's first (redeliveries after a
// connection closed with the message unacked, or a publish retried after an unconfirmed
// one), Missing the confirmed messages never delivered: the number that must be 0.
type Tally struct {
	Sent, Confirmed, Received, Duplicated, Missing int
	// Brokers counts messages by the broker address that confirmed or delivered them.
	ConfirmedBy, ReceivedFrom map[string]int
	Reconnects                map[string]int // by client
}

// Count compares what p confirmed with what c received.
func Count(p *Producer, c *Consumer) Tally {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	t := Tally{Sent: int(p.next - 1), Confirmed: len(p.confirmed), Received: len(c.seen),
		ConfirmedBy: map[string]int{}, ReceivedFrom: map[string]int{},
		Reconnects: map[string]int{p.o.ConnectionName: p.reconnects, c.o.ConnectionName: c.reconnects}}
	for n, addr := range p.confirmed {
		t.ConfirmedBy[addr]++
		if c.seen[n] == 0 {
			t.Missing++
		}
	}
	for _, k := range c.seen {
		t.Duplicated += k - 1
	}
	for _, addr := range c.from {
		t.ReceivedFrom[addr]++
	}
	return t
}
