package activities

import (
	"errors"
	"fmt"

	"github.com/aws/smithy-go"
	"go.temporal.io/sdk/temporal"
)

// Error types of non-retryable application errors. Workflows and the API match on these
// names (temporal.ApplicationError.Type()), so they are part of the contract.
const (
	ErrNoSuchZone          = "NoSuchZone"
	ErrAmbiguousZone       = "AmbiguousZone"
	ErrNoSuchSetIdentifier = "NoSuchSetIdentifier"
	ErrRecordTypeMismatch  = "RecordTypeMismatch"
	ErrNotWeighted         = "NotWeighted"
	ErrZeroTotalWeight     = "ZeroTotalWeight"
	ErrNoSuchChange        = "NoSuchChange"
	ErrInvalidChangeBatch  = "InvalidChangeBatch"
	ErrBadInput            = "BadInput"
	ErrGateConfig          = "GateConfig"
	ErrAccessDenied        = "AccessDenied"
)

// Retryable error types: the activity gives up its own bounded retries with these so the
// activity's RetryPolicy (with its longer backoff) takes over.
const (
	ErrThrottled = "Throttled"
)

func permanent(errType string, err error, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), errType, err)
}

func badInput(format string, args ...any) error {
	return permanent(ErrBadInput, nil, format, args...)
}

// apiCode returns the AWS error code of err, or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isThrottle reports whether err means "same request, later": Route 53 answers Throttling
// above about 10 requests/s per account and PriorRequestNotComplete while a zone's last
// change is still being applied.
func isThrottle(err error) bool {
	switch apiCode(err) {
	case "Throttling", "ThrottlingException", "PriorRequestNotComplete", "RequestLimitExceeded":
		return true
	}
	return false
}

// apiText is an AWS error as people read it: the service's code and message, without the
// SDK's envelope (operation, HTTP status, request id), which the error chain keeps.
func apiText(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return err.Error()
}

// isAccessDenied reports errors no retry can fix: the worker's credentials lack a permission.
func isAccessDenied(err error) bool {
	switch apiCode(err) {
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "InvalidClientTokenId", "SignatureDoesNotMatch":
		return true
	}
	return false
}
