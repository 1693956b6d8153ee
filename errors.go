package tether

import "errors"

// Sentinel errors. Callers test them with errors.Is; every error returned by this
// package that matches none of them is an internal fault.
var (
	// ErrInvalidToken: the token is malformed, unknown, expired or revoked. Callers
	// answer all of these alike (401) so as not to tell an attacker which it was.
	ErrInvalidToken = errors.New("tether: invalid or expired session token")

	// ErrNotFound: no live session or record with that ID.
	ErrNotFound = errors.New("tether: not found")

	// ErrUnavailable: the store could not be reached or failed. Validation fails
	// closed with this error; callers answer 503.
	ErrUnavailable = errors.New("tether: store unavailable")

	// ErrStorageFull: the store has no room for a write (a full disk under the
	// embedded store). It comes wrapped with ErrUnavailable, so writes answer
	// 503; reads go on, and a validation whose last-seen update hits it is
	// still served, unslid, rather than refused.
	ErrStorageFull = errors.New("tether: store is full; writes are refused until space is freed")

	// ErrBadInput: a parameter is out of range (empty subject, oversize metadata…).
	ErrBadInput = errors.New("tether: bad input")

	// ErrReplayed: Store.Consume was called twice for the same key before it expired.
	ErrReplayed = errors.New("tether: already consumed")

	// ErrExists: Store.Create was given an ID that is already taken.
	ErrExists = errors.New("tether: already exists")
)
