package workflows

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
)

// A failed migration's error reads as one sentence with one cause below it, however deep
// the chain it failed with (the Temporal UI shows every cause nested), and still carries
// the root cause's type for HasErrorType.
func TestFlatCauseOneSentence(t *testing.T) {
	root := temporal.NewNonRetryableApplicationError("change weights: AccessDenied: not authorized", "AccessDenied", nil)
	child := temporal.NewNonRetryableApplicationError("failed: change weights: AccessDenied: not authorized; nothing was changed", ErrMigrationFailed, root)
	phase := temporal.NewNonRetryableApplicationError("phase dns-shift", ErrRegionPhaseFailed, child)
	flat := flatCause(phase)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(flat, &ae))
	require.Nil(t, ae.Unwrap(), "no chain below the cause")
	require.Equal(t, "AccessDenied", ae.Type())
	require.Equal(t, "phase dns-shift: failed: change weights: AccessDenied: not authorized; nothing was changed", ae.Message())
	top := temporal.NewNonRetryableApplicationError("failed: "+ae.Message(), ErrMigrationFailed, flat)
	require.True(t, HasErrorType(top, "AccessDenied"))
	require.Nil(t, flatCause(nil))
}
