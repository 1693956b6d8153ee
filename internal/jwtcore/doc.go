// Package jwtcore is the one verification core for every signed JWT kind
// Tether accepts: handshake tokens now; OIDC ID tokens and logout+jwt
// (RS256 and others, from a provider's JWKS), secevent+jwt SETs and
// dpop+jwt proofs (key in the header's jwk) next.
//
// A kind states a Policy: the pinned algorithms (never the token's header),
// the expected typ (compared as a media type, RFC 7515 §4.1.9), the header
// parameters it allows beyond alg, typ and kid, and a KeySource typed for
// its keys (StaticKeys, JWKSKeys, HeaderJWK). Verify then checks the strict
// compact form, the header, the alg and typ, runs the kind's Rule on the
// strictly decodable payload, looks up the key and verifies the signature
// with go-jose. Claims helpers (DecodeObject, Times.Check) and the
// rejection sentinels (all matching ErrInvalid, each with a Reason label)
// are shared by every kind.
//
// The package imports nothing from Tether, so the root package, handshake
// and internal/api can all use it.
package jwtcore
