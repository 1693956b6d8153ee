package jwtcore

import (
	"errors"
	"fmt"
)

// ErrInvalid matches every rejection of a token (errors.Is(err, ErrInvalid)).
// Callers answer all of them alike and use Reason for logs and metrics; an
// error that does not match ErrInvalid is an operational failure and must
// fail closed.
var ErrInvalid = errors.New("invalid token")

// Each rejection has its own sentinel and a short metric label (Reason).
// Messages never carry token or key bytes.
var (
	ErrMalformed     = NewReason("malformed", "malformed token")
	ErrHeader        = NewReason("header", "forbidden or unexpected header")
	ErrType          = NewReason("type", "unexpected token type")
	ErrAlgorithm     = NewReason("algorithm", "algorithm not allowed for this issuer")
	ErrUnknownIssuer = NewReason("issuer", "issuer not trusted")
	ErrUnknownKey    = NewReason("unknown_kid", "no trusted key with this key id")
	ErrSignature     = NewReason("signature", "signature or MAC does not verify")
	ErrClaims        = NewReason("claims", "missing, duplicate or mistyped claim")
	ErrAudience      = NewReason("audience", "token is for another audience")
	ErrExpired       = NewReason("expired", "token expired")
	ErrNotYetValid   = NewReason("not_yet_valid", "token not yet valid")
	ErrLifetime      = NewReason("lifetime", "token lifetime too long")
	ErrReplayed      = NewReason("replayed", "token already used")
)

// rejection is a token rejection with a short metric label.
type rejection struct{ reason, msg string }

// NewReason makes a rejection sentinel with a fixed metric label, for a
// token kind whose rules refuse something the sentinels above do not name.
func NewReason(reason, msg string) error { return &rejection{reason: reason, msg: msg} }

func (e *rejection) Error() string { return e.msg }

// Is makes every rejection match ErrInvalid.
func (e *rejection) Is(target error) bool { return target == ErrInvalid }

// Reject wraps a sentinel with a fixed detail; detail must never carry token
// or key bytes.
func Reject(sentinel error, detail string) error {
	return fmt.Errorf("%w: %s", sentinel, detail)
}

// Reason returns err's metric label: "" for nil, the rejection's label, or
// "internal" for anything that is not a rejection.
func Reason(err error) string {
	var r *rejection
	switch {
	case err == nil:
		return ""
	case errors.As(err, &r):
		return r.reason
	default:
		return "internal"
	}
}
