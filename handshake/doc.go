// Package handshake mints and verifies Tether's single-use cross-service
// handshake tokens: JWT (HS256, EdDSA, ES256) and PASETO (v4.public,
// v4.local). Service A mints a token for audience B; B verifies it and at
// once exchanges it, exactly once, for its own opaque session.
//
// Threat model. The token arrives from an untrusted client. An attacker may
// replay a token (stopped by Exchange and a shared ReplayGuard keyed by
// issuer and jti), forge or alter one (signatures and MACs via go-jose and
// go-paseto, never hand-rolled), pick the algorithm or key (the algorithm
// and typed key are pinned per trusted issuer at load time; alg "none",
// HS256-with-a-public-key, and embedded jwk/jku/x5u/x5c/crit headers are
// refused; PASETO purposes never mix), present a token meant for another
// audience or purpose (aud, typ "handshake+jwt", the PASETO implicit
// assertion "tether-handshake"), or craft input that two parsers read
// differently (compact form only, canonical base64url, strict JSON with
// exact-case claim names and no duplicates, an 8 KiB bound). Keys are
// never logged or put in errors.
//
// Every rejection matches ErrInvalid and carries a metric label (Reason);
// callers answer all of them with one undifferentiated 401.
package handshake
