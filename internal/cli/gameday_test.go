package cli

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A bad scenario is named, field and fix, before anything reaches the API: the API here
// counts the requests it gets, and gets none.
func TestGameDayRunRefusesABadScenarioBeforeCallingTheAPI(t *testing.T) {
	var calls atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no", http.StatusTeapot)
	}))
	t.Cleanup(api.Close)
	b, err := os.ReadFile("../../examples/gameday-informed.yaml")
	require.NoError(t, err)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(string(b), "duration: 1m", "duration: 0s", 1)), 0o600))
	ferry := func(args ...string) (string, int) {
		var out, errOut bytes.Buffer
		code := Main(append(args, "--api", api.URL, "--token", "t"), &out, &errOut)
		return out.String() + errOut.String(), code
	}

	out, code := ferry("gameday", "run", "-f", bad)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "experiments[0].duration")
	out, code = ferry("gameday", "run")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, out, "-f SCENARIO is required")
	out, code = ferry("gameday", "detect")
	assert.NotEqual(t, 0, code, out)
	assert.Zero(t, calls.Load(), "the API was called")
}
