package wire

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
)

func doc(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	require.NoError(t, err)
	return b
}

func TestMsgRoundTripWithSequenceAndChecksum(t *testing.T) {
	body := doc(t, bson.D{{Key: "insert", Value: "c"}, {Key: "$db", Value: "test"}})
	seq := Sequence{Identifier: "documents", Documents: []bson.Raw{doc(t, bson.D{{Key: "_id", Value: 1}}), doc(t, bson.D{{Key: "_id", Value: 2}})}}
	for _, flags := range []uint32{0, FlagChecksumPresent, FlagExhaustAllowed} {
		b := AppendMsg(nil, 7, 3, flags, body, seq)
		m, err := ReadMessage(bytes.NewReader(b), 0)
		require.NoError(t, err)
		require.Equal(t, int32(len(b)), m.Header.Length)
		require.Equal(t, int32(7), m.Header.RequestID)
		require.Equal(t, int32(3), m.Header.ResponseTo)
		require.Equal(t, flags, m.Msg.Flags)
		require.Equal(t, body, m.Msg.Body)
		require.Len(t, m.Msg.Sequences, 1)
		require.Equal(t, "documents", m.Msg.Sequences[0].Identifier)
		require.Equal(t, seq.Documents, m.Msg.Sequences[0].Documents)
	}
}

func TestChecksumMismatchRejected(t *testing.T) {
	b := AppendMsg(nil, 1, 0, FlagChecksumPresent, doc(t, bson.D{{Key: "ping", Value: 1}}))
	b[len(b)-1] ^= 0xff
	_, err := ReadMessage(bytes.NewReader(b), 0)
	require.ErrorContains(t, err, "checksum")
}

func TestUnknownRequiredFlagRejected(t *testing.T) {
	b := AppendMsg(nil, 1, 0, 1<<5, doc(t, bson.D{{Key: "ping", Value: 1}}))
	_, err := ReadMessage(bytes.NewReader(b), 0)
	require.ErrorContains(t, err, "required flag")
}

func TestQueryAndReply(t *testing.T) {
	q := doc(t, bson.D{{Key: "isMaster", Value: 1}})
	b := AppendQuery(nil, 9, QuerySecondaryOK, "admin.$cmd", 0, -1, q)
	m, err := ReadMessage(bytes.NewReader(b), 0)
	require.NoError(t, err)
	require.Equal(t, "admin.$cmd", m.Query.FullCollectionName)
	require.Equal(t, QuerySecondaryOK, m.Query.Flags)
	require.Equal(t, int32(-1), m.Query.NumberToReturn)
	require.Equal(t, q, m.Query.Query)

	r := AppendReply(nil, 10, 9, 0, q, q)
	require.Equal(t, OpReply, int32(binary.LittleEndian.Uint32(r[12:])))
	docs, err := ParseReply(r[HeaderLen:])
	require.NoError(t, err)
	require.Equal(t, []bson.Raw{q, q}, docs)
}

func TestOversizedAndTruncated(t *testing.T) {
	b := AppendMsg(nil, 1, 0, 0, doc(t, bson.D{{Key: "ping", Value: 1}}))
	_, err := ReadMessage(bytes.NewReader(b), 20)
	require.ErrorContains(t, err, "out of range")
	_, err = ReadMessage(bytes.NewReader(b[:len(b)-2]), 0)
	require.Error(t, err)
	comp := AppendMsg(nil, 1, 0, 0, doc(t, bson.D{{Key: "ping", Value: 1}}))
	binary.LittleEndian.PutUint32(comp[12:], uint32(OpCompressed))
	_, err = ReadMessage(bytes.NewReader(comp), 0)
	require.ErrorIs(t, err, ErrUnsupportedOpCode)
}
