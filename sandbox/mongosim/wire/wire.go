// Package wire frames MongoDB wire protocol messages: OP_MSG (the protocol every
// command uses since 3.6), and the legacy OP_QUERY / OP_REPLY pair that drivers
// still use for the first hello of a connection when no API version is declared.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Opcodes understood by the simulator.
const (
	OpReply      int32 = 1
	OpQuery      int32 = 2004
	OpCompressed int32 = 2012
	OpMsg        int32 = 2013
)

// OP_MSG flag bits.
const (
	FlagChecksumPresent uint32 = 1 << 0
	FlagMoreToCome      uint32 = 1 << 1
	FlagExhaustAllowed  uint32 = 1 << 16
)

// OP_QUERY flag bits that matter to a server.
const (
	QuerySecondaryOK int32 = 1 << 2
)

// HeaderLen is the size of the standard message header.
const HeaderLen = 16

// DefaultMaxMessageSize matches mongod's maxMessageSizeBytes.
const DefaultMaxMessageSize = 48000000

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the standard message header that starts every message.
type Header struct {
	Length     int32
	RequestID  int32
	ResponseTo int32
	OpCode     int32
}

// Sequence is an OP_MSG kind 1 section: a named run of documents, used by
// drivers for bulk payloads such as insert's "documents".
type Sequence struct {
	Identifier string
	Documents  []bson.Raw
}

// Msg is a parsed OP_MSG.
type Msg struct {
	Flags     uint32
	Body      bson.Raw
	Sequences []Sequence
}

// Query is a parsed legacy OP_QUERY.
type Query struct {
	Flags              int32
	FullCollectionName string
	NumberToSkip       int32
	NumberToReturn     int32
	Query              bson.Raw
	Fields             bson.Raw
}

// Message is one request read from a connection: exactly one of Msg or Query is set.
type Message struct {
	Header Header
	Msg    *Msg
	Query  *Query
}

// ErrUnsupportedOpCode is returned for opcodes the simulator does not speak
// (it never advertises compression, so OP_COMPRESSED is unexpected).
var ErrUnsupportedOpCode = errors.New("unsupported opcode")

// ReadMessage reads and parses one message. maxSize bounds the declared length so
// a corrupt header cannot make the server allocate gigabytes.
func ReadMessage(r io.Reader, maxSize int32) (*Message, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	var hb [HeaderLen]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return nil, err
	}
	h := Header{
		Length:     int32(binary.LittleEndian.Uint32(hb[0:])),
		RequestID:  int32(binary.LittleEndian.Uint32(hb[4:])),
		ResponseTo: int32(binary.LittleEndian.Uint32(hb[8:])),
		OpCode:     int32(binary.LittleEndian.Uint32(hb[12:])),
	}
	if h.Length < HeaderLen || h.Length > maxSize {
		return nil, fmt.Errorf("message length %d out of range", h.Length)
	}
	payload := make([]byte, h.Length-HeaderLen)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, fmt.Errorf("read message body: %w", err)
	}
	m := &Message{Header: h}
	var err error
	switch h.OpCode {
	case OpMsg:
		m.Msg, err = parseMsg(hb[:], payload)
	case OpQuery:
		m.Query, err = parseQuery(payload)
	default:
		return m, fmt.Errorf("opcode %d: %w", h.OpCode, ErrUnsupportedOpCode)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

func parseMsg(header, p []byte) (*Msg, error) {
	if len(p) < 4 {
		return nil, errors.New("op_msg: missing flags")
	}
	m := &Msg{Flags: binary.LittleEndian.Uint32(p)}
	// Bits 0-15 are required bits: a server must reject unknown ones.
	if m.Flags&0xFFFF&^(FlagChecksumPresent|FlagMoreToCome) != 0 {
		return nil, fmt.Errorf("op_msg: unknown required flag bits %#x", m.Flags&0xFFFF)
	}
	body := p[4:]
	if m.Flags&FlagChecksumPresent != 0 {
		if len(body) < 4 {
			return nil, errors.New("op_msg: missing checksum")
		}
		want := binary.LittleEndian.Uint32(body[len(body)-4:])
		body = body[:len(body)-4]
		crc := crc32.Update(0, castagnoli, header)
		crc = crc32.Update(crc, castagnoli, p[:len(p)-4])
		if crc != want {
			return nil, errors.New("op_msg: checksum mismatch")
		}
	}
	for len(body) > 0 {
		kind := body[0]
		body = body[1:]
		switch kind {
		case 0:
			doc, rest, err := readDoc(body)
			if err != nil {
				return nil, fmt.Errorf("op_msg body: %w", err)
			}
			if m.Body != nil {
				return nil, errors.New("op_msg: more than one body section")
			}
			m.Body, body = doc, rest
		case 1:
			if len(body) < 4 {
				return nil, errors.New("op_msg: short document sequence")
			}
			size := int(int32(binary.LittleEndian.Uint32(body)))
			if size < 5 || size > len(body) {
				return nil, fmt.Errorf("op_msg: document sequence size %d out of range", size)
			}
			sec := body[4:size]
			body = body[size:]
			id, rest, err := readCString(sec)
			if err != nil {
				return nil, fmt.Errorf("op_msg sequence identifier: %w", err)
			}
			seq := Sequence{Identifier: id}
			for len(rest) > 0 {
				var doc bson.Raw
				doc, rest, err = readDoc(rest)
				if err != nil {
					return nil, fmt.Errorf("op_msg sequence %q: %w", id, err)
				}
				seq.Documents = append(seq.Documents, doc)
			}
			m.Sequences = append(m.Sequences, seq)
		default:
			return nil, fmt.Errorf("op_msg: unknown section kind %d", kind)
		}
	}
	if m.Body == nil {
		return nil, errors.New("op_msg: no body section")
	}
	return m, nil
}

func parseQuery(p []byte) (*Query, error) {
	if len(p) < 4 {
		return nil, errors.New("op_query: short message")
	}
	q := &Query{Flags: int32(binary.LittleEndian.Uint32(p))}
	name, rest, err := readCString(p[4:])
	if err != nil {
		return nil, fmt.Errorf("op_query collection name: %w", err)
	}
	q.FullCollectionName = name
	if len(rest) < 8 {
		return nil, errors.New("op_query: short message")
	}
	q.NumberToSkip = int32(binary.LittleEndian.Uint32(rest))
	q.NumberToReturn = int32(binary.LittleEndian.Uint32(rest[4:]))
	q.Query, rest, err = readDoc(rest[8:])
	if err != nil {
		return nil, fmt.Errorf("op_query query: %w", err)
	}
	if len(rest) > 0 {
		q.Fields, _, err = readDoc(rest)
		if err != nil {
			return nil, fmt.Errorf("op_query fields: %w", err)
		}
	}
	return q, nil
}

func readDoc(b []byte) (bson.Raw, []byte, error) {
	if len(b) < 5 {
		return nil, nil, errors.New("short document")
	}
	size := int(int32(binary.LittleEndian.Uint32(b)))
	if size < 5 || size > len(b) {
		return nil, nil, fmt.Errorf("document size %d out of range", size)
	}
	doc := bson.Raw(b[:size])
	if err := doc.Validate(); err != nil {
		return nil, nil, fmt.Errorf("invalid document: %w", err)
	}
	return doc, b[size:], nil
}

func readCString(b []byte) (string, []byte, error) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], nil
		}
	}
	return "", nil, errors.New("unterminated cstring")
}

func appendHeader(dst []byte, requestID, responseTo, opCode int32) (int, []byte) {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, 0) // length, patched by finish
	dst = binary.LittleEndian.AppendUint32(dst, uint32(requestID))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(responseTo))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(opCode))
	return start, dst
}

func finish(dst []byte, start int) []byte {
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst
}

// AppendMsg appends an OP_MSG with a body section and optional document
// sequences. With FlagChecksumPresent set it appends the CRC-32C checksum.
func AppendMsg(dst []byte, requestID, responseTo int32, flags uint32, body []byte, seqs ...Sequence) []byte {
	start, dst := appendHeader(dst, requestID, responseTo, OpMsg)
	dst = binary.LittleEndian.AppendUint32(dst, flags)
	dst = append(dst, 0)
	dst = append(dst, body...)
	for _, s := range seqs {
		dst = append(dst, 1)
		sizeAt := len(dst)
		dst = binary.LittleEndian.AppendUint32(dst, 0)
		dst = append(dst, s.Identifier...)
		dst = append(dst, 0)
		for _, d := range s.Documents {
			dst = append(dst, d...)
		}
		binary.LittleEndian.PutUint32(dst[sizeAt:], uint32(len(dst)-sizeAt))
	}
	if flags&FlagChecksumPresent != 0 {
		binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start+4))
		crc := crc32.Checksum(dst[start:], castagnoli)
		return binary.LittleEndian.AppendUint32(dst, crc)
	}
	return finish(dst, start)
}

// AppendQuery appends a legacy OP_QUERY (used by tests and by clients that
// handshake the old way).
func AppendQuery(dst []byte, requestID int32, flags int32, fullCollectionName string, skip, limit int32, query []byte) []byte {
	start, dst := appendHeader(dst, requestID, 0, OpQuery)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(flags))
	dst = append(dst, fullCollectionName...)
	dst = append(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(skip))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(limit))
	dst = append(dst, query...)
	return finish(dst, start)
}

// AppendReply appends a legacy OP_REPLY carrying docs, the answer to an OP_QUERY.
func AppendReply(dst []byte, requestID, responseTo int32, responseFlags int32, docs ...[]byte) []byte {
	start, dst := appendHeader(dst, requestID, responseTo, OpReply)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(responseFlags))
	dst = binary.LittleEndian.AppendUint64(dst, 0) // cursorID
	dst = binary.LittleEndian.AppendUint32(dst, 0) // startingFrom
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(docs)))
	for _, d := range docs {
		dst = append(dst, d...)
	}
	return finish(dst, start)
}

// ParseReply parses an OP_REPLY payload (the bytes after the header) into its documents.
func ParseReply(payload []byte) ([]bson.Raw, error) {
	if len(payload) < 20 {
		return nil, errors.New("op_reply: short message")
	}
	n := int(int32(binary.LittleEndian.Uint32(payload[16:])))
	rest := payload[20:]
	docs := make([]bson.Raw, 0, n)
	for range n {
		doc, r, err := readDoc(rest)
		if err != nil {
			return nil, fmt.Errorf("op_reply: %w", err)
		}
		docs = append(docs, doc)
		rest = r
	}
	return docs, nil
}
