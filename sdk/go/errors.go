package switchyard

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/switchyard/switchyard/sdk/go/switchyardv1"
)

// Metadata keys that carry an Error's code and retry-after next to a gRPC
// status, as the Rust SDK sends them and the hub reads them.
const (
	failureCodeKey = "switchyard-failure-code"
	retryAfterKey  = "switchyard-retry-after-ms"
)

// Error is a failure the hub understands: permanent (the same input will
// always fail again; the hub does not retry) or retryable (possibly after
// RetryAfter). Make one with Permanent or Retryable; wrap it with %w freely,
// the SDK finds it with errors.As.
type Error struct {
	err        error
	retryable  bool
	retryAfter time.Duration
	code       string
}

// Permanent is an error that the same input will always hit again, for
// example a malformed record or webhook body. The hub does not retry it; a
// webhook sender gets 400. format and args are as in fmt.Errorf (%w wraps).
// Do not put secrets in the message: the hub logs it.
func Permanent(format string, args ...any) *Error {
	return &Error{err: fmt.Errorf(format, args...)}
}

// Retryable is an error that may go away, for example an upstream that is
// down or rate-limiting. The hub retries, not before retryAfter when it is
// positive. format and args are as in fmt.Errorf (%w wraps). Do not put
// secrets in the message: the hub logs it.
func Retryable(retryAfter time.Duration, format string, args ...any) *Error {
	return &Error{err: fmt.Errorf(format, args...), retryable: true, retryAfter: retryAfter}
}

// WithCode returns e with a short machine-readable code (for example
// "rate_limited"), which the hub records with the failure.
func (e *Error) WithCode(code string) *Error {
	copied := *e
	copied.code = code
	return &copied
}

// Error returns the message.
func (e *Error) Error() string { return e.err.Error() }

// Unwrap returns the error wrapped with %w, if any.
func (e *Error) Unwrap() error { return errors.Unwrap(e.err) }

// IsRetryable says whether the hub may retry.
func (e *Error) IsRetryable() bool { return e.retryable }

// RetryAfter is how long the hub should wait before retrying (0: its own backoff).
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

// Code is the machine-readable code set with WithCode, or "".
func (e *Error) Code() string { return e.code }

// asError finds the *Error in err's chain; any other error counts as retryable.
func asError(err error) *Error {
	var failure *Error
	if errors.As(err, &failure) {
		return failure
	}
	return &Error{err: err, retryable: true}
}

// failureFromError is err as a per-item Failure (enrichment results, output nacks).
func failureFromError(err error) *switchyardv1.Failure {
	failure := asError(err)
	// The outermost message: it carries the context added by wrapping.
	out := &switchyardv1.Failure{Message: err.Error(), Retryable: failure.retryable, Code: failure.code}
	if failure.retryAfter > 0 {
		out.RetryAfter = durationpb.New(failure.retryAfter)
	}
	return out
}

// statusFromError maps a failed call to its gRPC status and the trailer
// metadata to send with it: a permanent Error is INVALID_ARGUMENT, a
// retryable one UNAVAILABLE, with its code and retry-after as metadata. A
// gRPC status error (status.Error) and a context error pass through unchanged.
func statusFromError(err error) (error, metadata.MD) {
	var failure *Error
	if !errors.As(err, &failure) {
		if _, ok := status.FromError(err); ok {
			return err, nil
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return status.FromContextError(err).Err(), nil
		}
		failure = asError(err)
	}
	code := codes.InvalidArgument
	if failure.retryable {
		code = codes.Unavailable
	}
	md := metadata.MD{}
	if failure.code != "" {
		md.Set(failureCodeKey, failure.code)
	}
	if failure.retryAfter > 0 {
		md.Set(retryAfterKey, strconv.FormatInt(failure.retryAfter.Milliseconds(), 10))
	}
	return status.Error(code, err.Error()), md
}

// ConfigError is one problem with the config table.
type ConfigError struct {
	// Field is the key the problem is about ("" for the table as a whole).
	Field string
	// Message says what is wrong; do not put the value of a secret in it.
	Message string
}

// ConfigErrors is what Configure returns when the config table is wrong: the
// hub reports every problem with its field and does not start the plugin.
type ConfigErrors []ConfigError

// Add appends a problem with field; format and args are as in fmt.Sprintf.
func (e *ConfigErrors) Add(field, format string, args ...any) {
	*e = append(*e, ConfigError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns e as an error, or nil when there is no problem (so
// `return problems.Err()` ends a Configure).
func (e ConfigErrors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// Error lists the problems on one line.
func (e ConfigErrors) Error() string {
	parts := make([]string, 0, len(e))
	for _, problem := range e {
		if problem.Field == "" {
			parts = append(parts, problem.Message)
		} else {
			parts = append(parts, problem.Field+": "+problem.Message)
		}
	}
	return "invalid configuration: " + strings.Join(parts, "; ")
}
