package mongosim

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/ferryhq/ferry/sandbox/mongosim/wire"
)

const (
	maxBSONObjectSize   = 16 * 1024 * 1024
	maxMessageSizeBytes = 48000000
	maxWriteBatchSize   = 100000
)

var requestIDs atomic.Int32

// connCtx is one client connection to one member.
type connCtx struct {
	n      *node
	conn   net.Conn
	id     int64
	remote string
	stop   <-chan struct{} // the member process stopped
	// stream is set by an awaitable hello that allowed exhaust: the connection
	// then pushes hello responses until the client goes away.
	stream *helloStream
}

type helloStream struct {
	maxAwait time.Duration
	req      *request
}

// request is a command as the handlers see it, whatever the opcode.
type request struct {
	name           string
	body           bson.Raw
	db             string
	seqs           []wire.Sequence
	secondaryOk    bool
	exhaustAllowed bool
	legacy         bool
	// firedFaults are the command-error faults that fired on this command.
	firedFaults []string
}

func (r *request) seq(id string) []bson.Raw {
	for _, s := range r.seqs {
		if s.Identifier == id {
			return s.Documents
		}
	}
	return nil
}

// serve accepts connections for n until its listener closes.
func (c *Cluster) serve(n *node) {
	ln, stop := n.ln, n.stopCh
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			if !n.up || n.ln != ln {
				c.mu.Unlock()
				_ = conn.Close()
				continue
			}
			n.conns[conn] = struct{}{}
			c.nextConnID++
			cc := &connCtx{n: n, conn: conn, id: c.nextConnID, remote: conn.RemoteAddr().String(), stop: stop}
			c.wg.Add(1)
			c.mu.Unlock()
			go c.handleConn(cc)
		}
	}()
}

func (c *Cluster) handleConn(cc *connCtx) {
	defer c.wg.Done()
	defer func() {
		_ = cc.conn.Close()
		c.mu.Lock()
		delete(cc.n.conns, cc.conn)
		c.mu.Unlock()
	}()
	r := bufio.NewReader(cc.conn)
	for {
		m, err := wire.ReadMessage(r, maxMessageSizeBytes)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.log.Debug("connection read failed", "member", cc.n.host, "conn", cc.id, "err", err)
			}
			return
		}
		if !c.handleMessage(cc, m) {
			return
		}
	}
}

// handleMessage answers one message; false closes the connection.
func (c *Cluster) handleMessage(cc *connCtx, m *wire.Message) bool {
	var req *request
	switch {
	case m.Query != nil:
		q := m.Query
		if !strings.HasSuffix(q.FullCollectionName, ".$cmd") {
			// Legacy OP_QUERY reads were removed in 5.1; only commands remain.
			return c.write(cc, wire.AppendReply(nil, requestIDs.Add(1), m.Header.RequestID, 0,
				mustMarshal(errorDoc(errf(codeUnsupportedOpQueryCommand, "OP_QUERY is no longer supported")))))
		}
		body := q.Query
		if inner, ok := body.Lookup("$query").DocumentOK(); ok {
			body = inner
		}
		req = &request{body: body, db: strings.TrimSuffix(q.FullCollectionName, ".$cmd"),
			secondaryOk: q.Flags&wire.QuerySecondaryOK != 0, legacy: true}
	case m.Msg != nil:
		req = &request{body: m.Msg.Body, seqs: m.Msg.Sequences, exhaustAllowed: m.Msg.Flags&wire.FlagExhaustAllowed != 0}
		req.db, _ = m.Msg.Body.Lookup("$db").StringValueOK()
		if rp, ok := m.Msg.Body.Lookup("$readPreference").DocumentOK(); ok {
			mode, _ := rp.Lookup("mode").StringValueOK()
			req.secondaryOk = mode != "" && mode != "primary"
		}
	default:
		return false
	}
	if el, err := req.body.IndexErr(0); err == nil {
		req.name = el.Key()
	}

	c.mu.Lock()
	doc := c.dispatch(cc, req)
	stream := cc.stream
	pid, counter := cc.n.processID, cc.n.tvCounter
	onFired := c.onFaultFired
	c.mu.Unlock()
	if onFired != nil {
		for _, id := range req.firedFaults {
			onFired(id)
		}
	}

	raw := mustMarshal(doc)
	if req.legacy {
		return c.write(cc, wire.AppendReply(nil, requestIDs.Add(1), m.Header.RequestID, 0, raw))
	}
	if m.Msg.Flags&wire.FlagMoreToCome != 0 {
		return true // unacknowledged write: the client wants no reply
	}
	if stream == nil {
		return c.write(cc, wire.AppendMsg(nil, requestIDs.Add(1), m.Header.RequestID, 0, raw))
	}
	return c.streamHello(cc, m.Header.RequestID, raw, pid, counter)
}

// streamHello implements the exhaust side of the streaming SDAM protocol: after
// the first awaitable reply, each later reply answers the previous one and is
// sent when the topology changes or maxAwaitTimeMS passes.
//
// pid and counter are the topologyVersion of the reply in raw: the next reply
// waits for a version newer than the one the client has, not the current one.
func (c *Cluster) streamHello(cc *connCtx, responseTo int32, raw []byte, pid bson.ObjectID, counter int64) bool {
	for {
		id := requestIDs.Add(1)
		if !c.write(cc, wire.AppendMsg(nil, id, responseTo, wire.FlagMoreToCome, raw)) {
			return false
		}
		responseTo = id
		c.mu.Lock()
		n := cc.n
		deadline := time.Now().Add(cc.stream.maxAwait)
		for n.up && n.processID == pid && n.tvCounter == counter {
			if !c.waitLocked(deadline, cc.stop) {
				break
			}
		}
		if !n.up || c.closed || isClosed(cc.stop) {
			c.mu.Unlock()
			return false
		}
		doc := c.helloDoc(cc, cc.stream.req)
		pid, counter = n.processID, n.tvCounter
		c.mu.Unlock()
		raw = mustMarshal(doc)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (c *Cluster) write(cc *connCtx, b []byte) bool {
	_ = cc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := cc.conn.Write(b); err != nil {
		c.log.Debug("connection write failed", "member", cc.n.host, "conn", cc.id, "err", err)
		return false
	}
	return true
}

type handler func(c *Cluster, cc *connCtx, req *request) (bson.D, error)

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"hello":            (*Cluster).cmdHello,
		"isMaster":         (*Cluster).cmdHello,
		"ismaster":         (*Cluster).cmdHello,
		"ping":             (*Cluster).cmdPing,
		"buildInfo":        (*Cluster).cmdBuildInfo,
		"buildinfo":        (*Cluster).cmdBuildInfo,
		"getParameter":     (*Cluster).cmdGetParameter,
		"hostInfo":         (*Cluster).cmdHostInfo,
		"endSessions":      (*Cluster).cmdPing,
		"killCursors":      (*Cluster).cmdKillCursors,
		"getMore":          (*Cluster).cmdGetMore,
		"replSetGetConfig": (*Cluster).cmdReplSetGetConfig,
		"replSetGetStatus": (*Cluster).cmdReplSetGetStatus,
		"replSetReconfig":  (*Cluster).cmdReplSetReconfig,
		"replSetStepDown":  (*Cluster).cmdReplSetStepDown,
		"replSetFreeze":    (*Cluster).cmdReplSetFreeze,
		"replSetInitiate":  (*Cluster).cmdReplSetInitiate,
		"insert":           (*Cluster).cmdInsert,
		"find":             (*Cluster).cmdFind,
		"aggregate":        (*Cluster).cmdAggregate,
		"count":            (*Cluster).cmdCount,
		"delete":           (*Cluster).cmdDelete,
		"update":           (*Cluster).cmdUpdate,
		"listDatabases":    (*Cluster).cmdListDatabases,
		"listCollections":  (*Cluster).cmdListCollections,
		"drop":             (*Cluster).cmdDrop,
		"dropDatabase":     (*Cluster).cmdDropDatabase,
		"create":           (*Cluster).cmdCreate,
		"connectionStatus": (*Cluster).cmdConnectionStatus,
		"whatsmyuri":       (*Cluster).cmdWhatsMyURI,
		"getCmdLineOpts":   (*Cluster).cmdGetCmdLineOpts,
		"serverStatus":     (*Cluster).cmdServerStatus,
	}
}

// adminOnly commands are refused elsewhere, as mongod does.
var adminOnly = map[string]bool{
	"replSetGetConfig": true, "replSetGetStatus": true, "replSetReconfig": true, "replSetStepDown": true,
	"replSetFreeze": true, "replSetInitiate": true, "listDatabases": true, "getParameter": true,
	"hostInfo": true, "getCmdLineOpts": true,
}

// dispatch runs a command with c.mu held; handlers that wait release it through waitLocked.
func (c *Cluster) dispatch(cc *connCtx, req *request) bson.D {
	h, ok := handlers[req.name]
	if !ok {
		return errorDoc(errf(codeCommandNotFound, "no such command: '%s'", req.name))
	}
	if adminOnly[req.name] && req.db != "admin" {
		return errorDoc(errf(codeUnauthorized, "%s may only be run against the admin database.", req.name))
	}
	if len(c.cmdFaults) > 0 {
		var ce *cmdError
		ce, req.firedFaults = c.commandFaultLocked(cc.n, req)
		if ce != nil {
			return errorDoc(ce)
		}
	}
	doc, err := h(c, cc, req)
	if err != nil {
		var ce *cmdError
		if !errors.As(err, &ce) {
			ce = errf(codeInternalError, "%v", err)
		}
		d := errorDoc(ce)
		if ce.stateChange {
			d = append(d, bson.E{Key: "topologyVersion", Value: c.topologyVersion(cc.n)})
		}
		return d
	}
	if !hasKey(doc, "ok") {
		doc = append(doc, bson.E{Key: "ok", Value: 1.0})
	}
	return doc
}

func hasKey(d bson.D, k string) bool {
	for _, e := range d {
		if e.Key == k {
			return true
		}
	}
	return false
}

func mustMarshal(d bson.D) []byte {
	b, err := bson.Marshal(d)
	if err != nil {
		b, _ = bson.Marshal(errorDoc(errf(codeInternalError, "marshal reply: %v", err)))
	}
	return b
}
