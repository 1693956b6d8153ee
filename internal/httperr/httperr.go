// Package httperr is the one place where errors become what an HTTP client
// sees. Handlers of the API and of the pages return errors; Classify turns
// any of them into an *Error (status, code, public message), which the API
// writes as JSON and the pages as a page. Internal detail goes to the log,
// never to the client; public messages come from typed errors
// (*Error, tether.PublicError), never from cutting up err.Error().
package httperr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/tetherhq/tether"
)

// Error is an error with what a client may see.
type Error struct {
	Status     int           // HTTP status
	Code       string        // stable, machine-readable: "bad_request", "unauthenticated"…
	Message    string        // safe to show; may be empty
	RetryAfter time.Duration // sent as Retry-After when positive (429, 503)
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an Error.
func New(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// BadRequest is a 400 whose message, made as by fmt.Sprintf, says what is wrong.
func BadRequest(format string, args ...any) *Error {
	return New(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf(format, args...))
}

// RateLimited is a 429 that tells the client how long to wait.
func RateLimited(message string, wait time.Duration) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Message: message, RetryAfter: wait}
}

// Codes of the errors Classify makes.
const (
	CodeBadRequest      = "bad_request"
	CodeUnauthenticated = "unauthenticated"
	CodeCrossOrigin     = "cross_origin"
	CodeNotFound        = "not_found"
	CodeRateLimited     = "rate_limited"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
)

// Unauthenticated is the one answer to a missing, wrong or dead credential.
var Unauthenticated = New(http.StatusUnauthorized, CodeUnauthenticated, "")

// Classify maps err to what the client of r sees and logs what it must not
// see. A store that cannot answer in time is 503, as one that cannot answer
// at all; a client that went away is logged at debug level only.
func Classify(r *http.Request, err error, log *slog.Logger) *Error {
	var e *Error
	var pe *tether.PublicError
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, tether.ErrInvalidToken):
		return Unauthenticated
	case errors.Is(err, tether.ErrCrossOrigin):
		return New(http.StatusForbidden, CodeCrossOrigin, "cross-origin request refused")
	case errors.As(err, &pe) && errors.Is(pe.Kind, tether.ErrBadInput):
		return New(http.StatusBadRequest, CodeBadRequest, pe.Message)
	case errors.Is(err, tether.ErrBadInput):
		return New(http.StatusBadRequest, CodeBadRequest, "bad input")
	case errors.Is(err, tether.ErrNotFound):
		return New(http.StatusNotFound, CodeNotFound, "no such session")
	case errors.Is(r.Context().Err(), context.Canceled):
		log.Debug("client went away", "path", r.URL.Path)
		return New(http.StatusServiceUnavailable, CodeUnavailable, "request cancelled")
	case errors.Is(err, tether.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		log.Warn("store unavailable", "path", r.URL.Path, "err", err)
		return New(http.StatusServiceUnavailable, CodeUnavailable, "the session store is unavailable; try again")
	default:
		log.Error("internal error", "path", r.URL.Path, "err", err)
		return New(http.StatusInternalServerError, CodeInternal, "internal error")
	}
}

// SetHeaders sets the headers e calls for: WWW-Authenticate on a 401 and
// Retry-After when the client should wait.
func (e *Error) SetHeaders(h http.Header) {
	if e.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="tether"`)
	}
	if e.RetryAfter > 0 {
		// Rounded up: a wait under half a second must not read "Retry-After: 0".
		h.Set("Retry-After", fmt.Sprint(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
}
