package handshake

import (
	"crypto/ed25519"
	"strings"
	"time"

	"aidanwoods.dev/go-paseto"
)

// ImplicitAssertion is bound into every PASETO v4 handshake token, so that
// a v4 token made for any other purpose with the same key never verifies.
const ImplicitAssertion = "tether-handshake"

var implicit = []byte(ImplicitAssertion)

// pasetoHeader is the exact prefix of each accepted PASETO purpose.
func pasetoHeader(alg string) string { return alg + "." }

// pasetoToken builds the claims of a token to mint.
func pasetoToken(c *Claims) paseto.Token {
	t := paseto.NewToken()
	t.SetIssuer(c.Issuer)
	t.SetSubject(c.Subject)
	t.SetAudience(c.Audience)
	t.SetJti(c.ID)
	t.SetIssuedAt(c.IssuedAt.UTC())
	t.SetExpiration(c.ExpiresAt.UTC())
	if !c.AuthTime.IsZero() {
		t.SetString("auth_time", c.AuthTime.UTC().Format(time.RFC3339))
	}
	if c.SessionID != "" {
		t.SetString("sid", c.SessionID)
	}
	return t
}

// pasetoIssuer is one trusted PASETO issuer with a key of exactly one
// purpose: the purpose comes from configuration, and the token's header
// only selects among issuers configured for that same purpose.
type pasetoIssuer struct {
	issuer string
	prefix string                       // subject prefix
	public paseto.V4AsymmetricPublicKey // v4.public
	local  paseto.V4SymmetricKey        // v4.local
}

// splitPASETO checks the framing strictly: the exact header, a canonical
// base64url body and, if present, a non-empty canonical footer. It returns
// the decoded body.
func splitPASETO(tainted, alg string) ([]byte, error) {
	rest := strings.TrimPrefix(tainted, pasetoHeader(alg))
	body, footer, hasFooter := strings.Cut(rest, ".")
	if hasFooter && (footer == "" || strings.Contains(footer, ".")) {
		return nil, reject(ErrMalformed, "bad footer segment")
	}
	if hasFooter {
		if _, err := decodeB64(footer); err != nil {
			return nil, reject(ErrMalformed, "footer is not canonical base64url")
		}
	}
	b, err := decodeB64(body)
	if err != nil || len(b) == 0 {
		return nil, reject(ErrMalformed, "body is not canonical base64url")
	}
	return b, nil
}

// verifyPASETO tries each issuer configured for the token's purpose; the
// verified iss must name the issuer whose key verified it.
func (v *Verifier) verifyPASETO(tainted, alg string, now time.Time) (*Claims, error) {
	body, err := splitPASETO(tainted, alg)
	if err != nil {
		return nil, err
	}
	entries := v.paseto[alg]
	if len(entries) == 0 {
		return nil, reject(ErrUnknownIssuer, "no issuer configured for this PASETO purpose")
	}
	parser := paseto.MakeParser(nil) // claims are checked below, strictly
	wrongIssuer := false
	for _, e := range entries {
		var payload []byte
		if alg == AlgV4Public {
			if _, err := parser.ParseV4Public(e.public, tainted, implicit); err != nil {
				continue
			}
			// The signed message itself, so that duplicate or case-variant
			// keys are seen; go-paseto re-encodes claims through a map.
			payload = body[:len(body)-ed25519.SignatureSize]
		} else {
			tok, err := parser.ParseV4Local(e.local, tainted, implicit)
			if err != nil {
				continue
			}
			payload = tok.ClaimsJSON()
		}
		c, err := parseClaims(payload, rfc3339)
		if err != nil {
			return nil, err
		}
		if c.Issuer != e.issuer {
			wrongIssuer = true
			continue
		}
		if err := c.check(now, v.leeway, v.audience); err != nil {
			return nil, err
		}
		if err := c.localize(e.prefix); err != nil {
			return nil, err
		}
		return c, nil
	}
	if wrongIssuer {
		return nil, reject(ErrUnknownIssuer, "verified iss is not the key's issuer")
	}
	return nil, reject(ErrSignature, "PASETO does not verify")
}
