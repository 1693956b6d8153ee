package handshake

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"aidanwoods.dev/go-paseto"
)

// ImplicitAssertion is bound into every PASETO v4 handshake token, so that
// a v4 token made for any other purpose with the same key never verifies.
const ImplicitAssertion = "tether-handshake"

var implicit = []byte(ImplicitAssertion)

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

// splitPASETO checks the framing after the purpose header strictly: a
// canonical base64url body and, if present, a non-empty canonical footer.
// It returns the decoded body.
func splitPASETO(tainted, header string) ([]byte, error) {
	rest, ok := strings.CutPrefix(tainted, header)
	if !ok {
		return nil, reject(ErrMalformed, "not this PASETO purpose")
	}
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

// uniqueClaims returns the claims of a decrypted v4.local token, after
// proving that its plaintext named each claim once. go-paseto decodes the
// plaintext into a map (a repeated name collapses, last wins) and gives
// no access to it; but XChaCha20 keeps lengths, so plainLen is the
// plaintext's length. The shortest JSON text of the members go-paseto kept
// (values verbatim, names escaped only where JSON requires) is never longer
// than the plaintext, and as long only when the plaintext is that text:
// a repeated name, whitespace between members or an escaped name makes it
// longer and the token is refused. Names holding U+FFFD are refused, since
// that is what invalid UTF-8 decodes to, and it decodes longer.
func uniqueClaims(tok *paseto.Token, plainLen int) ([]byte, error) {
	names := tok.Claims()
	n := 2 + max(len(names)-1, 0) // braces and commas
	for name := range names {
		if strings.ContainsRune(name, utf8.RuneError) {
			return nil, reject(ErrMalformed, "claim name is not valid UTF-8")
		}
		var raw json.RawMessage
		if err := tok.Get(name, &raw); err != nil {
			return nil, reject(ErrMalformed, "claims do not decode")
		}
		n += quotedLen(name) + 1 + len(raw)
	}
	if n != plainLen {
		return nil, reject(ErrMalformed, "claims repeat a name or are not compact JSON")
	}
	return tok.ClaimsJSON(), nil
}

// quotedLen is the length of s as the shortest JSON string.
func quotedLen(s string) int {
	n := 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
			n += 2
		case c < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n
}
