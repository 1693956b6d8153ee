package tether

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test them with errors.Is; every error returned by this
// package that matches none of them is an internal fault. Their text carries no
// "tether:" prefix: the layer that presents an error adds it once (the CLI
// prints "tether: store unavailable: …", never "tether: tether: …").
var (
	// ErrInvalidToken: the token is malformed, unknown, expired or revoked. Callers
	// answer all of these alike (401) so as not to tell an attacker which it was.
	ErrInvalidToken = errors.New("invalid or expired session token")

	// ErrNotFound: no live session or record with that ID.
	ErrNotFound = errors.New("not found")

	// ErrUnavailable: the store could not be reached or failed. Validation fails
	// closed with this error; callers answer 503.
	ErrUnavailable = errors.New("store unavailable")

	// ErrStorageFull: the store has no room for a write (a full disk under the
	// embedded store). It comes wrapped with ErrUnavailable, so writes answer
	// 503; reads go on, and a validation whose last-seen update hits it is
	// still served, unslid, rather than refused.
	ErrStorageFull = errors.New("tether: store is full; writes are refused until space is freed")

	// ErrBadInput: a parameter is out of range (empty subject, oversize metadata…).
	ErrBadInput = errors.New("bad input")

	// ErrReplayed: Store.Consume was called twice for the same key before it expired.
	ErrReplayed = errors.New("already consumed")

	// ErrExists: Store.Create was given an ID that is already taken.
	ErrExists = errors.New("already exists")
)

// PublicError is an error whose Message is meant for whoever caused it (an
// API client, a person at a terminal): it says what is wrong in their terms
// and never holds a secret or an internal detail, so it may be shown as is.
// It matches its Kind under errors.Is. Find one in a chain with errors.As,
// or with PublicMessage; never by cutting prefixes off Error().
type PublicError struct {
	Kind    error  // the sentinel it is a case of, such as ErrBadInput
	Message string // shown to the caller
}

func (e *PublicError) Error() string { return e.Kind.Error() + ": " + e.Message }
func (e *PublicError) Unwrap() error { return e.Kind }

// BadInput returns an ErrBadInput whose message, made as by fmt.Sprintf, is
// fit to show the caller.
func BadInput(format string, args ...any) error {
	return &PublicError{Kind: ErrBadInput, Message: fmt.Sprintf(format, args...)}
}

// PublicMessage returns the message of the first PublicError in err's
// chain, and whether there is one.
func PublicMessage(err error) (string, bool) {
	var pe *PublicError
	if errors.As(err, &pe) {
		return pe.Message, true
	}
	return "", false
}
