// Package dbwriter is the sandbox's database client: a real MySQL client (go-sql-driver)
// that resolves the database's DNS name through the sandbox's Route 53, as an application
// would (caching the answer for the record's TTL), inserts numbered rows continuously and
// records every write it attempted: acknowledged or failed, and the server it went to. A
// database cutover is judged from its record and the servers' own tables, not from
// ferry's view of itself.
package dbwriter

import (
	"context"
	"database/sql"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/ferryhq/ferry/sandbox/awssim"
)

// Resolver answers a name's record sets; *awssim.Server implements it.
type Resolver interface {
	Resolve(name, typ string) []awssim.WeightedAnswer
}

// Options configure a Writer.
type Options struct {
	Resolver Resolver
	// Record is the database's DNS name (an A record) and Port the servers' port (DNS
	// carries no port).
	Record string
	Port   int
	User   string
	// Password is the application user's; a sandbox credential.
	Password string
	Schema   string
	// Table has columns n BIGINT, at DATETIME(6), server_id INT (default "writes").
	Table string
	// Interval between writes (default 10ms: 100 writes/s).
	Interval time.Duration
	// Timeout bounds one write, connection included (default 1s).
	Timeout time.Duration
}

// Write is one attempted insert.
type Write struct {
	N    int64
	Addr string // host:port the write went to ("" when the name did not resolve)
	At   time.Time
	Ack  bool
	Err  string `json:",omitempty"`
}

// Writer inserts rows until its context ends.
type Writer struct {
	o     Options
	mu    sync.Mutex
	log   []Write
	pools map[string]*sql.DB
	// cached answer and when it expires (the record's TTL after it was resolved).
	addr    string
	expires time.Time
}

// New returns a writer; Run starts it.
func New(o Options) *Writer {
	if o.Interval <= 0 {
		o.Interval = 10 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Table == "" {
		o.Table = "writes"
	}
	return &Writer{o: o, pools: map[string]*sql.DB{}}
}

// Run writes until ctx ends, then closes its connections.
func (w *Writer) Run(ctx context.Context) {
	defer w.close()
	var n int64
	t := time.NewTicker(w.o.Interval)
	defer t.Stop()
	for {
		n++
		w.write(ctx, n)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Writer) resolve(now time.Time) string {
	if w.addr != "" && now.Before(w.expires) {
		return w.addr
	}
	w.addr = ""
	for _, a := range w.o.Resolver.Resolve(w.o.Record, "A") {
		if len(a.Values) > 0 {
			w.addr = net.JoinHostPort(a.Values[0], strconv.Itoa(w.o.Port))
			w.expires = now.Add(time.Duration(a.TTL) * time.Second)
			break
		}
	}
	return w.addr
}

func (w *Writer) pool(addr string) *sql.DB {
	if db := w.pools[addr]; db != nil {
		return db
	}
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = w.o.User, w.o.Password, "tcp", addr, w.o.Schema
	c.Timeout, c.ReadTimeout, c.WriteTimeout = w.o.Timeout, w.o.Timeout, w.o.Timeout
	connector, _ := mysql.NewConnector(c) // a config built here always validates
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	w.pools[addr] = db
	return db
}

func (w *Writer) write(ctx context.Context, n int64) {
	start := time.Now()
	addr := w.resolve(start)
	rec := Write{N: n, Addr: addr}
	if addr == "" {
		rec.Err = "no address for " + w.o.Record
	} else {
		wctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
		_, err := w.pool(addr).ExecContext(wctx, "INSERT INTO "+w.o.Table+" (n, at, server_id) VALUES (?, NOW(6), @@server_id)", n)
		cancel()
		if err != nil {
			rec.Err = err.Error()
		} else {
			rec.Ack = true
		}
	}
	rec.At = time.Now()
	w.mu.Lock()
	w.log = append(w.log, rec)
	w.mu.Unlock()
}

func (w *Writer) close() {
	for _, db := range w.pools {
		_ = db.Close()
	}
}

// Writes returns every write attempted so far, in order.
func (w *Writer) Writes() []Write {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Write(nil), w.log...)
}

// Stats sums the writes up per server.
type Stats struct {
	Acked, Failed int
	// AckedBy counts acknowledged writes per server address.
	AckedBy map[string]int
	// LastAck and FirstAck are per server address.
	LastAck, FirstAck map[string]time.Time
}

// Stats returns the counts so far.
func (w *Writer) Stats() Stats {
	s := Stats{AckedBy: map[string]int{}, LastAck: map[string]time.Time{}, FirstAck: map[string]time.Time{}}
	for _, r := range w.Writes() {
		if !r.Ack {
			s.Failed++
			continue
		}
		s.Acked++
		s.AckedBy[r.Addr]++
		if _, ok := s.FirstAck[r.Addr]; !ok {
			s.FirstAck[r.Addr] = r.At
		}
		s.LastAck[r.Addr] = r.At
	}
	return s
}

// Window is the write-unavailability window as the writer saw it: from the last write
// acknowledged by from before the first acknowledged by to, to that first one on to.
// ok is false when to acknowledged nothing after from did.
func (w *Writer) Window(from, to string) (lastFrom, firstTo time.Time, ok bool) {
	for _, r := range w.Writes() {
		if !r.Ack {
			continue
		}
		switch r.Addr {
		case from:
			if firstTo.IsZero() {
				lastFrom = r.At
			}
		case to:
			if firstTo.IsZero() && !lastFrom.IsZero() {
				firstTo = r.At
			}
		}
	}
	return lastFrom, firstTo, !firstTo.IsZero()
}
