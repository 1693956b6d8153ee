package handshake

import (
	"errors"
	"fmt"
)

// ErrInvalid matches every rejection of a token (errors.Is(err, ErrInvalid)):
// callers answer all of them with the same 401 and use Reason for logs and
// metrics. An error that does not match ErrInvalid is an operational failure
// (for example the replay guard's store is down) and must fail closed (503).
var ErrInvalid = errors.New("handshake: invalid token")

// Each rejection has its own sentinel so that callers can tell the reasons
// apart in logs and metrics. Messages never contain token or key material.
var (
	ErrMalformed       = newReason("malformed", "malformed token")
	ErrHeader          = newReason("header", "forbidden or unexpected header")
	ErrType            = newReason("type", "not a handshake token")
	ErrAlgorithm       = newReason("algorithm", "algorithm not configured for this issuer")
	ErrUnknownIssuer   = newReason("issuer", "issuer not trusted")
	ErrUnknownKey      = newReason("unknown_kid", "no trusted key with this key id")
	ErrSignature       = newReason("signature", "signature or MAC does not verify")
	ErrClaims          = newReason("claims", "missing, duplicate or mistyped claim")
	ErrAudience        = newReason("audience", "token is for another audience")
	ErrExpired         = newReason("expired", "token expired")
	ErrNotYetValid     = newReason("not_yet_valid", "token not yet valid")
	ErrLifetime        = newReason("lifetime", "token lifetime too long")
	ErrUnknownAudience = errors.New("handshake: unknown audience")
)

// ErrReplayed is Exchange's rejection of a token whose (issuer, jti) the
// ReplayGuard had already consumed.
var ErrReplayed = newReason("replayed", "token already used")

// reasonError is a token rejection with a short metric label.
type reasonError struct{ reason, msg string }

func newReason(reason, msg string) error { return &reasonError{reason: reason, msg: msg} }

func (e *reasonError) Error() string { return "handshake: " + e.msg }

// Is makes every rejection match ErrInvalid.
func (e *reasonError) Is(target error) bool { return target == ErrInvalid }

// Reason returns a short, fixed label for err, suitable as a metric label:
// "malformed", "header", "type", "algorithm", "issuer", "unknown_kid",
// "signature", "claims", "audience", "expired", "not_yet_valid",
// "lifetime", "replayed", "unknown_audience"; "" for nil and "internal" for
// anything else.
func Reason(err error) string {
	var re *reasonError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &re):
		return re.reason
	case errors.Is(err, ErrUnknownAudience):
		return "unknown_audience"
	default:
		return "internal"
	}
}

// reject wraps a sentinel with a fixed detail; detail must never carry token
// or key bytes.
func reject(sentinel error, detail string) error {
	return fmt.Errorf("%w: %s", sentinel, detail)
}
