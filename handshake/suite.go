package handshake

import (
	"context"
	"fmt"

	"github.com/tetherhq/tether/internal/jwtcore"
)

// suite is one (format, alg) pair: how its keys load, once, and how its
// tokens are signed and verified. Each lives in its own suite_*.go file.
// Everything a suite does not do (claims, time window, issuer, audience,
// subject) is checked once, by the Verifier, after any suite.
type suite interface {
	format() string
	alg() string
	// sharedKey reports whether both ends hold one secret from a key_file.
	// Otherwise the minter signs with the node's key ring and a receiver
	// holds the public key (public_key_file, or jwks_url where jwks allows).
	sharedKey() bool
	// jwks reports whether a trusted issuer may give a jwks_url.
	jwks() bool
	// signer loads what signs for one audience: the shared key in keyFile
	// (already resolved), or the node's ring.
	signer(keyFile string, ring *KeyRing) (tokenSigner, error)
	// verifier loads a trusted issuer's keys: the key file (resolved) or,
	// for a jwks_url issuer, the shared key set.
	verifier(keyFile string, set *jwtcore.JWKS) (tokenVerifier, error)
}

// suites is the closed table of token formats. It is read only when the
// configuration loads, by the names written there; a token's header never
// picks from it. Adding a format: one suite_*.go file and one row here.
var suites = []suite{hs256{}, edDSA{}, es256{}, v4Public{}, v4Local{}}

// lookupSuite returns the suite configured by format and alg.
func lookupSuite(format, alg string) (suite, error) {
	known := false
	for _, s := range suites {
		if s.format() == format {
			known = true
			if s.alg() == alg {
				return s, nil
			}
		}
	}
	if !known {
		return nil, fmt.Errorf("handshake: unknown format %q (want %s or %s)", format, FormatJWT, FormatPASETO)
	}
	return nil, fmt.Errorf("handshake: unknown alg %q for format %s", alg, format)
}

// tokenSigner mints one token from claims.
type tokenSigner interface {
	sign(c *Claims) (string, error)
}

// tokenVerifier checks a token's signature or MAC with one issuer's typed
// keys and hands the payload to check, which decodes and checks the claims.
// It returns ErrSignature when its keys do not verify the token.
type tokenVerifier interface {
	verify(ctx context.Context, tok *token, check claimsCheck) (*Claims, error)
}

// token is the raw input and, for a JWT, its strict parse, made once to
// route it to its issuer.
type token struct {
	raw string
	jws *jwtcore.Unverified
}

// claimsCheck is the Verifier's shared claims check for one trusted issuer.
type claimsCheck func(payload []byte, te timeEncoding) (*Claims, error)
