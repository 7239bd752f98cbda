package cli

import (
	"bytes"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferryhq/ferry/sandbox/control"
)

func TestSandboxFaultAddTakesTheNewFlags(t *testing.T) {
	reg := control.NewRegistry([]string{"eu-west-2"}, 1)
	reg.Handle("mongo:", control.Hooks{Add: func(control.Fault) error { return nil }})
	hs := httptest.NewServer(control.NewHandler(control.Sources{Faults: reg}))
	t.Cleanup(hs.Close)
	ferry := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := Main(append(args, "--url", hs.URL), &out, &errOut)
		return out.String(), errOut.String(), code
	}

	out, errOut, code := ferry("sandbox", "fault", "add", "aws:ec2:mutating", "denied", "--after", "2", "--count", "1")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "aws:ec2:mutating denied")
	_, errOut, code = ferry("sandbox", "fault", "add", "mongo:rs0:*", "command-error", "--command", "replSetReconfig", "--code", "103", "--after", "1")
	require.Equal(t, 0, code, errOut)

	faults := reg.List()
	require.Len(t, faults, 2)
	assert.Equal(t, control.Fault{Target: "aws:ec2:mutating", Kind: control.KindDenied, Rate: 1, After: 2, Count: 1, Remaining: 1},
		control.Fault{Target: faults[0].Target, Kind: faults[0].Kind, Rate: faults[0].Rate, After: faults[0].After, Count: faults[0].Count, Remaining: faults[0].Remaining})
	assert.Equal(t, "replSetReconfig", faults[1].Command)
	assert.Equal(t, 103, faults[1].Code)
	assert.Equal(t, 1, faults[1].After)

	out, errOut, code = ferry("sandbox", "fault", "list")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "AFTER")
	assert.Contains(t, out, "command-error replSetReconfig/103")

	// Bad input is refused with the field named.
	_, errOut, code = ferry("sandbox", "fault", "add", "aws:ec2:mutating", "denied", "--after", "-1")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "after: must not be negative")
	_, errOut, code = ferry("sandbox", "fault", "add", "mongo:rs0:*", "command-error")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "command: required")
	_, errOut, code = ferry("sandbox", "fault", "add", "aws:ec2:*", "throttle", "--code", "13")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "code: applies to command-error faults only")

	out, _, code = ferry("sandbox", "fault", "add", "--help")
	require.Equal(t, 0, code)
	for _, want := range []string{"--after", "--command", "--code", "aws:ec2:mutating denied --after 2", "command-error --command replSetReconfig"} {
		assert.Contains(t, out, want)
	}
}
