package handshake

import (
	"errors"

	"github.com/tetherhq/tether/internal/jwtcore"
)

// ErrInvalid matches every rejection of a token (errors.Is(err, ErrInvalid)):
// callers answer all of them with the same 401 and use Reason for logs and
// metrics. An error that does not match ErrInvalid is an operational failure
// (for example the replay guard's store is down) and must fail closed (503).
var ErrInvalid = jwtcore.ErrInvalid

// Each rejection has its own sentinel so that callers can tell the reasons
// apart in logs and metrics. Messages never contain token or key material.
// They are the verification core's, shared with every other token kind.
var (
	ErrMalformed       = jwtcore.ErrMalformed
	ErrHeader          = jwtcore.ErrHeader
	ErrType            = jwtcore.ErrType
	ErrAlgorithm       = jwtcore.ErrAlgorithm
	ErrUnknownIssuer   = jwtcore.ErrUnknownIssuer
	ErrUnknownKey      = jwtcore.ErrUnknownKey
	ErrSignature       = jwtcore.ErrSignature
	ErrClaims          = jwtcore.ErrClaims
	ErrAudience        = jwtcore.ErrAudience
	ErrExpired         = jwtcore.ErrExpired
	ErrNotYetValid     = jwtcore.ErrNotYetValid
	ErrLifetime        = jwtcore.ErrLifetime
	ErrUnknownAudience = errors.New("handshake: unknown audience")
)

// ErrReplayed is Exchange's rejection of a token whose (issuer, jti) the
// ReplayGuard had already consumed.
var ErrReplayed = jwtcore.ErrReplayed

// Reason returns a short, fixed label for err, suitable as a metric label:
// "malformed", "header", "type", "algorithm", "issuer", "unknown_kid",
// "signature", "claims", "audience", "expired", "not_yet_valid",
// "lifetime", "replayed", "unknown_audience"; "" for nil and "internal" for
// anything else.
func Reason(err error) string {
	if errors.Is(err, ErrUnknownAudience) {
		return "unknown_audience"
	}
	return jwtcore.Reason(err)
}

// reject wraps a sentinel with a fixed detail; detail must never carry token
// or key bytes. Verify and Exchange prefix "handshake: " once.
var reject = jwtcore.Reject
