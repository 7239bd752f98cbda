package spec

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/workflows"
)

func TestMongoPrimaryMoveExample(t *testing.T) {
	m, err := ParseFile("../examples/mongo-primary-move.yaml")
	require.NoError(t, err)
	in, err := MongoPrimaryMoveInput(m, "alice")
	require.NoError(t, err)
	s := in.Spec
	require.Equal(t, "rs0", s.ReplicaSet)
	require.Equal(t, []string{"127.0.0.1:27020", "127.0.0.1:27021", "127.0.0.1:27022"}, s.NewMembers)
	require.Equal(t, DefaultMongoPriorities, s.Priorities)
	require.Equal(t, 10*time.Second, s.MaxLag)
	require.Equal(t, 60*time.Second, s.TakeoverTimeout)
	require.Equal(t, workflows.ApprovalPolicy{RequiredApprovers: 1}, in.Approvals)
	require.Equal(t, "alice", in.Initiator)
}

func TestMongoPrimaryMoveDefaults(t *testing.T) {
	m, err := Parse([]byte(`
mongoPrimaryMove:
  uri: mongodb://10.0.0.1:27017/?replicaSet=rs0
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  newMembers: [10.2.0.1:27017]
  username: ferry
  password: {env: MONGO_PW}
`), ".yaml")
	require.NoError(t, err)
	s, err := MongoPrimaryMove(m.GetMongoPrimaryMove())
	require.NoError(t, err)
	require.Equal(t, "rs0", s.ReplicaSet, "taken from the uri")
	require.Equal(t, "region", s.RegionTag)
	require.Equal(t, workflows.MongoSecretRef{Env: "MONGO_PW"}, s.Password)
	require.Equal(t, 10*time.Second, s.CatchUpPeriod)
	require.Equal(t, DefaultMongoPriorities, s.Priorities)
}

func TestMongoPrimaryMoveErrors(t *testing.T) {
	const base = `
mongoPrimaryMove:
  uri: mongodb://10.0.0.1:27017/?replicaSet=rs0
  sourceRegion: eu-west-1
  targetRegion: eu-west-2
  newMembers: [10.2.0.1:27017, 10.2.0.2:27017]
`
	cases := []struct {
		name, extra, yaml, field, contains string
	}{
		{name: "credentials in uri", yaml: "mongoPrimaryMove:\n  uri: mongodb://u:secret@10.0.0.1:27017/?replicaSet=rs0\n  sourceRegion: a\n  targetRegion: b\n  newMembers: [h:1]\n",
			field: "mongoPrimaryMove.uri", contains: "holds credentials"},
		{name: "bad scheme", yaml: "mongoPrimaryMove:\n  uri: http://10.0.0.1:27017\n", field: "mongoPrimaryMove.uri", contains: "scheme"},
		{name: "no set", yaml: "mongoPrimaryMove:\n  uri: mongodb://10.0.0.1:27017\n", field: "mongoPrimaryMove.replicaSet", contains: "required"},
		{name: "same region", yaml: "mongoPrimaryMove:\n  uri: mongodb://h:1/?replicaSet=rs0\n  sourceRegion: a\n  targetRegion: a\n", field: "mongoPrimaryMove.targetRegion", contains: "equals sourceRegion"},
		{name: "duplicate member", extra: "  newMembers: [10.2.0.1:27017, 10.2.0.1:27017]\n", field: "mongoPrimaryMove.newMembers[1]", contains: "also newMembers[0]"},
		{name: "bad host", extra: "  newMembers: [10.2.0.1]\n", field: "mongoPrimaryMove.newMembers[0]", contains: "not host:port"},
		{name: "priority range", extra: "  priorities: {targetFirst: 2000}\n", field: "mongoPrimaryMove.priorities.targetFirst", contains: "outside 0..1000"},
		{name: "target not above source", extra: "  priorities: {targetFirst: 1, sourceFirst: 1}\n", field: "mongoPrimaryMove.priorities.targetFirst", contains: "not above sourceFirst"},
		{name: "remove without demote", extra: "  removeSource: true\n", field: "mongoPrimaryMove.removeSource", contains: "requires demoteSource"},
		{name: "password without user", extra: "  password: {file: /run/secrets/pw}\n", field: "mongoPrimaryMove.username", contains: "required when a password"},
		{name: "user without password", extra: "  username: ferry\n", field: "mongoPrimaryMove.password", contains: "required with a username"},
		{name: "catch-up range", extra: "  catchUpPeriod: 500ms\n", field: "mongoPrimaryMove.catchUpPeriod", contains: "outside"},
		{name: "max lag range", extra: "  maxLag: 10ms\n", field: "mongoPrimaryMove.maxLag", contains: "outside"},
		{name: "set mismatch", extra: "  replicaSet: rs1\n", field: "mongoPrimaryMove.replicaSet", contains: "differs from replicaSet=rs0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := c.yaml
			if doc == "" {
				doc = base + c.extra
			}
			m, err := Parse([]byte(doc), ".yaml")
			require.NoError(t, err)
			_, err = MongoPrimaryMoveInput(m, "alice")
			fe, ok := AsFieldError(err)
			require.True(t, ok, "want a FieldError, got %v", err)
			require.Equal(t, c.field, fe.Field, fe.Error())
			require.Contains(t, fe.Msg, c.contains)
			require.NotContains(t, fe.Error(), "secret@", "errors must not echo credentials")
		})
	}
}
