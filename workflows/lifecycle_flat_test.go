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

// The AWS SDK's transport detail and a cause repeated per item leave the sentence.
func TestReadableFailure(t *testing.T) {
	sdk := "copy image ami-1 from eu-west-1 to eu-west-2: UnauthorizedOperation: not authorized; grant the worker's role the permission: operation error EC2: CopyImage, https response error StatusCode: 403, RequestID: 1e5f, api error UnauthorizedOperation: not authorized"
	require.Equal(t, "copy image ami-1 from eu-west-1 to eu-west-2: UnauthorizedOperation: not authorized; grant the worker's role the permission", readable(sdk))
	require.Equal(t, "a; b", readable("a; b; a"))
}
