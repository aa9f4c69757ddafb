package port

import (
	"errors"
	"fmt"
	"time"
)

// PermanentError is returned by a port for a failure that retrying cannot fix.
type PermanentError struct {
	Type string
	Err  error
}

func (e *PermanentError) Error() string { return e.Type + ": " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a permanent failure of the given type.
func Permanent(errType string, format string, args ...any) error {
	return &PermanentError{Type: errType, Err: fmt.Errorf(format, args...)}
}

// ThrottledError is returned by a port when the server asks us to slow down.
// RetryAfter, when set, becomes the next retry delay.
type ThrottledError struct {
	RetryAfter time.Duration
	Err        error
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("throttled (retry after %s): %v", e.RetryAfter, e.Err)
}
func (e *ThrottledError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a permanent failure and of which type.
func IsPermanent(err error) (string, bool) {
	var p *PermanentError
	if errors.As(err, &p) {
		return p.Type, true
	}
	return "", false
}
