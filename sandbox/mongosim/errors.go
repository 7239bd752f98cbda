package mongosim

import (
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Server error codes, with mongod's code names (src/mongo/base/error_codes.yml).
const (
	codeInternalError                          = 1
	codeBadValue                               = 2
	codeFailedToParse                          = 9
	codeUnauthorized                           = 13
	codeTypeMismatch                           = 14
	codeCommandNotFound                        = 59
	codeWriteConcernFailed                     = 64
	codeNodeNotFound                           = 74
	codeInvalidReplicaSetConfig                = 93
	codeNotYetInitialized                      = 94
	codeNotSecondary                           = 95
	codeNewReplicaSetConfigurationIncompatible = 103
	codeConfigurationInProgress                = 109
	codePrimarySteppedDown                     = 189
	codeExceededTimeLimit                      = 262
	codeLocation40324                          = 40324
	codeUnsupportedOpQueryCommand              = 352
	codeNotWritablePrimary                     = 10107
	codeInterruptedDueToReplStateChange        = 11602
	codeDuplicateKey                           = 11000
	codeNotPrimaryNoSecondaryOk                = 13435
	codeAlreadyInitialized                     = 23
	codeInvalidOptions                         = 72
	codeCursorNotFound                         = 43
	codeInvalidNamespace                       = 73
)

var codeNames = map[int32]string{
	codeInternalError:                          "InternalError",
	codeBadValue:                               "BadValue",
	codeFailedToParse:                          "FailedToParse",
	codeUnauthorized:                           "Unauthorized",
	codeTypeMismatch:                           "TypeMismatch",
	codeCommandNotFound:                        "CommandNotFound",
	codeWriteConcernFailed:                     "WriteConcernFailed",
	codeNodeNotFound:                           "NodeNotFound",
	codeInvalidReplicaSetConfig:                "InvalidReplicaSetConfig",
	codeNotYetInitialized:                      "NotYetInitialized",
	codeNotSecondary:                           "NotSecondary",
	codeNewReplicaSetConfigurationIncompatible: "NewReplicaSetConfigurationIncompatible",
	codeConfigurationInProgress:                "ConfigurationInProgress",
	codePrimarySteppedDown:                     "PrimarySteppedDown",
	codeExceededTimeLimit:                      "ExceededTimeLimit",
	codeLocation40324:                          "Location40324",
	codeUnsupportedOpQueryCommand:              "UnsupportedOpQueryCommand",
	codeNotWritablePrimary:                     "NotWritablePrimary",
	codeInterruptedDueToReplStateChange:        "InterruptedDueToReplStateChange",
	codeDuplicateKey:                           "DuplicateKey",
	codeNotPrimaryNoSecondaryOk:                "NotPrimaryNoSecondaryOk",
	codeAlreadyInitialized:                     "AlreadyInitialized",
	codeInvalidOptions:                         "InvalidOptions",
	codeCursorNotFound:                         "CursorNotFound",
	codeInvalidNamespace:                       "InvalidNamespace",
}

// labelRetryableWrite tells a driver it may retry the write on the next primary.
const labelRetryableWrite = "RetryableWriteError"

// cmdError is a command failure as mongod reports it.
type cmdError struct {
	Code   int32
	Msg    string
	Labels []string
	// stateChange errors carry the member's topologyVersion so drivers can
	// tell a stale error from news.
	stateChange bool
}

func (e *cmdError) Error() string {
	return fmt.Sprintf("%s (%d): %s", codeName(e.Code), e.Code, e.Msg)
}

// codeName is mongod's name for code; codes without one are named as mongod names its
// numbered assertions (Location40324).
func codeName(code int32) string {
	if n, ok := codeNames[code]; ok {
		return n
	}
	return fmt.Sprintf("Location%d", code)
}

func errf(code int32, format string, args ...any) *cmdError {
	return &cmdError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// retryable marks a state-change error on a retryable write the way mongod does.
func (e *cmdError) retryable(isRetryableWrite bool) *cmdError {
	e.stateChange = true
	if isRetryableWrite {
		e.Labels = append(e.Labels, labelRetryableWrite)
	}
	return e
}

// asCmdError keeps a server error as it is and reports anything else as BadValue.
func asCmdError(err error) *cmdError {
	var ce *cmdError
	if errors.As(err, &ce) {
		return ce
	}
	return errf(codeBadValue, "%v", err)
}

func errorDoc(e *cmdError) bson.D {
	d := bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: e.Msg}, {Key: "code", Value: e.Code},
		{Key: "codeName", Value: codeName(e.Code)}}
	if len(e.Labels) > 0 {
		d = append(d, bson.E{Key: "errorLabels", Value: e.Labels})
	}
	return d
}

func notWritablePrimary(retryableWrite bool) *cmdError {
	return errf(codeNotWritablePrimary, "not primary").retryable(retryableWrite)
}

const (
	codeUnsatisfiableWriteConcern = 100
	codeInterruptedAtShutdown     = 11600
	codeNotPrimaryOrSecondary     = 13436
)

func init() {
	codeNames[codeUnsatisfiableWriteConcern] = "UnsatisfiableWriteConcern"
	codeNames[codeInterruptedAtShutdown] = "InterruptedAtShutdown"
	codeNames[codeNotPrimaryOrSecondary] = "NotPrimaryOrSecondary"
}

const codeConflictingOperationInProgress = 117

func init() { codeNames[codeConflictingOperationInProgress] = "ConflictingOperationInProgress" }
