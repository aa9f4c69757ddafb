package connect

import (
	"errors"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
)

// redacting keeps error texts out of log lines above debug. The SDK logs
// every failed activity and workflow task with its error, and an error's
// text can hold what mailwave keeps out of logs: a folder name, or a
// server's reply quoting one. Such a line keeps the error's type; the full
// text goes to a debug line beside it (and, encrypted, to the history,
// where `starter mailbox status` reads it).
type redacting struct{ l tlog.Logger }

// Redacting wraps an SDK logger so that "Error" values above debug level
// carry the error's type only.
func Redacting(l tlog.Logger) tlog.Logger { return redacting{l: l} }

func (r redacting) Debug(msg string, kv ...any) { r.l.Debug(msg, kv...) }
func (r redacting) Info(msg string, kv ...any)  { r.l.Info(msg, r.redact(msg, kv)...) }
func (r redacting) Warn(msg string, kv ...any)  { r.l.Warn(msg, r.redact(msg, kv)...) }
func (r redacting) Error(msg string, kv ...any) { r.l.Error(msg, r.redact(msg, kv)...) }

// With keeps the wrapping for the SDK's contextual loggers.
func (r redacting) With(kv ...any) tlog.Logger { return redacting{l: tlog.With(r.l, kv...)} }

func (r redacting) redact(msg string, kv []any) []any {
	var out []any
	for i := 0; i+1 < len(kv); i += 2 {
		err, ok := kv[i+1].(error)
		if !ok || err == nil {
			continue
		}
		if out == nil {
			out = append([]any(nil), kv...)
		}
		out[i+1] = Summary(err)
	}
	if out == nil {
		return kv
	}
	r.l.Debug(msg+" (the error in full)", kv...)
	return out
}

// Summary names an error by its type, without its text.
func Summary(err error) string {
	var app *temporal.ApplicationError
	var timeout *temporal.TimeoutError
	var canceled *temporal.CanceledError
	switch {
	case errors.As(err, &app):
		return "application error " + app.Type() + " (text at debug level)"
	case errors.As(err, &timeout):
		return "timeout " + timeout.TimeoutType().String()
	case errors.As(err, &canceled):
		return "canceled"
	default:
		return "error (text at debug level)"
	}
}
