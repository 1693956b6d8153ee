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
// audience or purpose (aud, typ "handshake+jwt" compared as a media type,
// the PASETO implicit assertion "tether-handshake"), or craft input that
// two parsers read differently (compact form only, canonical base64url,
// strict JSON with exact-case claim names and no duplicates in any format,
// an 8 KiB bound). Keys are never logged or put in errors. A trusted
// issuer's JWKS is fetched from its configured URL only (no redirects), by
// one shared refresh at a time, at most once a second, while the keys
// already held keep serving.
//
// Every rejection matches ErrInvalid and carries a metric label (Reason);
// callers answer all of them with one undifferentiated 401.
//
// # Layout
//
// A suite is one (format, alg) pair, in its own file: suite_hs256.go,
// suite_eddsa.go, suite_es256.go, suite_v4public.go, suite_v4local.go. It
// loads its typed keys once (a []byte, an ed25519.PublicKey, a
// paseto.V4SymmetricKey, the ring's prepared signers) and signs or verifies
// with them. The closed table suites in suite.go lists them; only the
// format and alg written in the configuration look a suite up, never a
// token's header. Whatever a suite verifies then goes through the
// Verifier's one shared claims check (claims.go, verify.go): strict claims,
// iss equal to the trusted issuer, aud, exp/nbf/iat with leeway, lifetime
// at most MaxTTL, jti, auth_time and sid when present, a usable subject.
// JWT suites verify through internal/jwtcore, the JWS core that other
// token kinds (OIDC ID and logout tokens, SETs, DPoP proofs) share:
// a pinned jwtcore.Policy (algs, typ, key source) and a claims rule.
//
// # Adding a token format
//
//  1. Add the alg name to the constants in config.go if it is new.
//  2. Write suite_<name>.go: a type with format, alg, sharedKey (the key is
//     a shared secret in key_file, or the node signs with its ring and
//     receivers hold a public key), jwks (may a trusted issuer give a
//     jwks_url), signer and verifier. Load and type every key in signer and
//     verifier, never per token. A JWT suite returns newJWTVerifier with
//     its jose algorithm and a jwtcore.KeySource of its key type
//     (StaticKeys, or JWKSKeys for a jwks_url issuer) and signs with a
//     go-jose signer built once (sharedJWTSigner) or the ring's
//     (ringJWTSigner). A PASETO suite checks its framing with splitPASETO,
//     opens the token with go-paseto and hands check the claims bytes as
//     the token carries them (or, where go-paseto hides them, proves there
//     are no repeated names, as v4.local does), returning ErrSignature when
//     its keys do not verify. Do not check claims in a suite.
//  3. Add one row to suites in suite.go.
//  4. Add its vectors: the alg to allAlgs in helpers_test.go (with
//     formatOf and newEnv's key file and trusted issuer), which every
//     round-trip, replay and exchange test ranges over; official test vectors to vectors_test.go (from
//     ../shared/vectors, copied to testdata/vectors), negative cases to
//     TestVerifyRejects and TestDuplicateClaims, and a seed to the fuzz
//     targets.
//
// Nothing else changes: Minter, Verifier, configuration checks and the
// claims check read the suite.
package handshake
