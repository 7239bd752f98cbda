package spec

import (
	"testing"

	"github.com/stretchr/testify/require"

	ferryv1 "github.com/ferryhq/ferry/gen/ferry/v1"
	"github.com/ferryhq/ferry/workflows"
)

func TestOnFailure(t *testing.T) {
	for _, c := range []struct {
		doc, want string
	}{
		{minimal, workflows.OnFailureRollback},
		{"onFailure: rollback\n" + minimal, workflows.OnFailureRollback},
		{"onFailure: leave\n" + minimal, workflows.OnFailureLeave},
		{"onFailure: ON_FAILURE_LEAVE\n" + minimal, workflows.OnFailureLeave},
	} {
		m, err := Parse([]byte(c.doc), ".yaml")
		require.NoError(t, err)
		k, in, err := Input(m, "alice", "h1")
		require.NoError(t, err)
		require.Equal(t, workflows.KindDNSShift, k.Name)
		d := in.(workflows.DNSShiftInput)
		require.Equal(t, c.want, d.OnFailure, c.doc)
		require.Equal(t, "h1", d.PlanHash)
	}
	_, err := Parse([]byte("onFailure: undo\n"+minimal), ".yaml")
	fe, ok := AsFieldError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "onFailure", fe.Field)
}

// Every kind a spec can describe has both halves of the contract, and the API's enum maps
// both ways.
func TestKindsCoverEveryKind(t *testing.T) {
	require.Len(t, Kinds, len(workflows.Kinds()))
	for _, k := range Kinds {
		require.NotNil(t, k.KindDef)
		back, ok := KindByProto(k.Proto)
		require.True(t, ok)
		require.Equal(t, k.Name, back.Name)
	}
	_, err := KindOf(&ferryv1.MigrationSpec{Name: "x"})
	fe, ok := AsFieldError(err)
	require.True(t, ok)
	require.Equal(t, "spec", fe.Field)
}
