// Package dbsc implements the server side of W3C Device Bound Session
// Credentials (DBSC, https://w3c.github.io/webappsec-dbsc/, editor's draft of
// 2025–2026 with the header names Chrome ships: Secure-Session-Registration,
// Secure-Session-Challenge, Secure-Session-Response, Sec-Secure-Session-Id).
//
// A browser that is offered registration makes a key pair (in a TPM where it
// can), and proves possession of it with a DBSC proof: a JWT of typ dbsc+jwt,
// signed with ES256 or RS256 by the public key in its own "key" claim, whose
// jti is the server's challenge and whose aud, when present, is the URL it
// was sent to. A
// session bound to that key gets a short-lived cookie, and only a fresh proof
// by the same key renews it.
//
// Verify checks a proof on the JOSE core (go-jose via internal/jwtcore),
// never hand-rolled. Challenges are MACs over their issue time and the
// session's ID, keyed with a secret of the session that only its holder
// and the store know (NewChallenge, CheckChallenge); the caller makes each
// one single-use with a replay guard.
package dbsc

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/dpop"
	"github.com/tetherhq/tether/internal/jwtcore"
)

// Header names of the draft, as Chrome ships them.
const (
	HeaderRegistration = "Secure-Session-Registration"
	HeaderChallenge    = "Secure-Session-Challenge"
	HeaderResponse     = "Secure-Session-Response"
	HeaderSessionID    = "Sec-Secure-Session-Id"
)

// Type is the typ of a DBSC proof.
const Type = "dbsc+jwt"

// algs are the algorithms the draft lists; a proof by any other is refused.
var algs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256}

// Bounds.
const (
	// ProofWindow is how far a proof's iat may be from now either way. The
	// challenge is what makes a proof fresh; iat only bounds clock trouble.
	ProofWindow = 5 * time.Minute
	// ChallengeLifetime is how long a challenge may be answered.
	ChallengeLifetime = 2 * time.Minute
	challengeLen      = 8 + 16 // issue time, truncated MAC
)

// Errors. Every refusal of a proof wraps ErrInvalidProof; ErrChallenge (which
// wraps it too) means only the challenge was stale, forged or used, so the
// browser should be sent a new one rather than have its session ended.
var (
	ErrInvalidProof = errors.New("dbsc: invalid proof")
	ErrChallenge    = fmt.Errorf("%w: challenge unknown, stale or used", ErrInvalidProof)
	ErrWrongKey     = fmt.Errorf("%w: not by the key the session is bound to", ErrInvalidProof)
)

// Expect is what a proof must match.
type Expect struct {
	// Audience is the absolute URL the proof was sent to (the registration
	// or refresh endpoint), which a proof's aud must name when it has one;
	// compared as dpop.NormalizeURL compares htu.
	Audience string
	// SessionID is the session a refresh proof must name as sub; "" at
	// registration, where a proof must carry no sub.
	SessionID string
	// JKT is the thumbprint of the key a refresh proof must be signed by;
	// "" at registration, where any key of ES256 or RS256 will do.
	JKT string
	// Now is the current time.
	Now time.Time
}

// Proof is a verified DBSC proof.
type Proof struct {
	JKT       string // RFC 7638 SHA-256 thumbprint of the key, base64url
	Challenge string // jti: the server's challenge, to be checked and consumed by the caller
	IssuedAt  time.Time
}

// claims is a proof's payload, strictly decoded, before its signature is
// checked.
type claims struct {
	aud, jti, sub string
	iat           time.Time
	key           jose.JSONWebKey
}

// Verify checks raw, the value of a Secure-Session-Response header (an
// RFC 9651 string, or the bare JWT), against want. The challenge is returned
// for the caller to check (CheckChallenge) and consume.
func Verify(ctx context.Context, raw string, want Expect) (*Proof, error) {
	jwt, ok := UnquoteString(raw)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a string", ErrInvalidProof, HeaderResponse)
	}
	u, err := jwtcore.Parse(jwt)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidProof, err)
	}
	c, err := parseClaims(u.Header, u.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidProof, err)
	}
	// The key is the proof's own, from its payload: the signature shows
	// possession of it, and the caller binds the session to its thumbprint.
	policy := &jwtcore.Policy[any]{Algs: algs, Type: Type, Keys: jwtcore.StaticKeys[any]{c.key.Key}}
	if _, err := jwtcore.VerifyParsed(ctx, u, policy, func(jwtcore.Header, []byte) (struct{}, error) { return struct{}{}, nil }); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidProof, err)
	}
	tp, err := c.key.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w: no thumbprint for the key", ErrInvalidProof)
	}
	p := &Proof{JKT: jwtcore.B64.EncodeToString(tp), Challenge: c.jti, IssuedAt: c.iat}
	switch {
	case want.JKT != "" && !hmac.Equal([]byte(p.JKT), []byte(want.JKT)):
		return nil, ErrWrongKey
	case c.sub != want.SessionID:
		return nil, fmt.Errorf("%w: sub is not the session being refreshed", ErrInvalidProof)
	case want.Now.Sub(c.iat).Abs() > ProofWindow:
		return nil, fmt.Errorf("%w: iat outside the %v window", ErrInvalidProof, ProofWindow)
	}
	if c.aud == "" {
		return p, nil
	}
	wantAud, err := dpop.NormalizeURL(want.Audience)
	if err != nil {
		return nil, fmt.Errorf("%w: the endpoint URL is not an absolute http(s) URL", ErrInvalidProof)
	}
	if got, err := dpop.NormalizeURL(c.aud); err != nil || got != wantAud {
		return nil, fmt.Errorf("%w: aud is not this endpoint", ErrInvalidProof)
	}
	return p, nil
}

// parseClaims reads the claims the draft requires (jti, iat, key; sub on
// refresh; aud when present) and checks that the key is public and fits the header's alg.
func parseClaims(h jwtcore.Header, tainted []byte) (*claims, error) {
	o, err := jwtcore.DecodeObject(tainted)
	if err != nil {
		return nil, errors.New("claims are not a strict JSON object")
	}
	var c claims
	var ok bool
	// Chrome 156 sends aud only with its DeviceBoundSessionsIncludeAudienceClaim
	// feature; without it the challenge alone ties the proof to this server.
	if _, present := o["aud"]; present {
		if c.aud, ok = o.String("aud"); !ok {
			return nil, errors.New("aud is not a string")
		}
	}
	if c.jti, ok = o.String("jti"); !ok {
		return nil, errors.New("jti (the challenge) missing")
	}
	if _, present := o["sub"]; present {
		if c.sub, ok = o.String("sub"); !ok {
			return nil, errors.New("sub is not a string")
		}
	}
	if c.iat, ok = numericDate(o); !ok {
		return nil, errors.New("iat missing or not a NumericDate")
	}
	if err := c.key.UnmarshalJSON(o["key"]); err != nil || !c.key.Valid() || !c.key.IsPublic() {
		return nil, errors.New("key is not a valid public JWK")
	}
	if err := jwtcore.KeyFits(h.Alg, c.key.Key); err != nil || (h.Alg != string(jose.ES256) && h.Alg != string(jose.RS256)) {
		return nil, errors.New("key does not fit alg, or alg is not ES256 or RS256")
	}
	return &c, nil
}

// numericDate reads iat as a NumericDate; the draft's example writes it as a
// string of digits, so that form is taken too.
func numericDate(o jwtcore.Object) (time.Time, bool) {
	if t, ok := o.NumericDate("iat"); ok {
		return t, true
	}
	s, ok := o.String("iat")
	if !ok {
		return time.Time{}, false
	}
	q, err := json.Marshal(json.Number(s))
	if err != nil {
		return time.Time{}, false
	}
	return jwtcore.Object{"iat": q}.NumericDate("iat")
}

// NewChallenge makes a challenge for session id at now: the issue time and a
// MAC over it and id, keyed with key, a secret of the session (its token at
// registration, the hash of its current secret at refresh). Nobody without
// that secret can make one, and every one dies when the session's secret
// rotates.
func NewChallenge(key []byte, id string, now time.Time) string {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, challengeLen), uint64(now.Unix()))
	return jwtcore.B64.EncodeToString(append(b, challengeMAC(key, id, b)...))
}

// CheckChallenge accepts a challenge NewChallenge made with key for id within
// ChallengeLifetime of now. It does not make it single-use: the caller
// consumes it in a replay guard shared by every node.
func CheckChallenge(key []byte, id, challenge string, now time.Time) error {
	b, err := jwtcore.DecodeB64(challenge)
	if err != nil || len(b) != challengeLen {
		return ErrChallenge
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(b)), 0)
	if !hmac.Equal(b[8:], challengeMAC(key, id, b[:8])) {
		return ErrChallenge
	}
	// A second of skew between nodes is tolerated on the early side.
	if issued.After(now.Add(time.Second)) || now.Sub(issued) > ChallengeLifetime {
		return ErrChallenge
	}
	return nil
}

func challengeMAC(key []byte, id string, issued []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("tether dbsc challenge\x00" + id + "\x00"))
	m.Write(issued)
	return m.Sum(nil)[:16]
}

// Registration is a Secure-Session-Registration value that offers a session
// with the draft's algorithms, the registration endpoint at path (relative,
// or an absolute URL) and challenge.
func Registration(path, challenge string) string {
	return "(ES256 RS256);path=" + QuoteString(path) + ";challenge=" + QuoteString(challenge)
}

// Challenge is a Secure-Session-Challenge value: challenge for session id.
func Challenge(challenge, id string) string {
	return QuoteString(challenge) + ";id=" + QuoteString(id)
}

// QuoteString serialises s as an RFC 9651 sf-string. s must be printable
// ASCII; anything else is dropped, as no value Tether sends has any.
func QuoteString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c <= 0x7e:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// UnquoteString parses an RFC 9651 sf-string item, ignoring any parameters
// after it, as the draft asks of Secure-Session-Response and
// Sec-Secure-Session-Id; a bare value of URL-safe characters is taken as it is.
func UnquoteString(raw string) (string, bool) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > jwtcore.MaxSize {
		return "", false
	}
	if raw[0] != '"' {
		for i := 0; i < len(raw); i++ {
			if !jwtcore.IsB64Char(raw[i]) && raw[i] != '.' {
				return "", false
			}
		}
		return raw, true
	}
	var b strings.Builder
	for i := 1; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '\\':
			if i+1 >= len(raw) || (raw[i+1] != '"' && raw[i+1] != '\\') {
				return "", false
			}
			i++
			b.WriteByte(raw[i])
		case c == '"':
			if rest := raw[i+1:]; rest != "" && rest[0] != ';' {
				return "", false
			}
			return b.String(), b.Len() > 0
		case c < 0x20 || c > 0x7e:
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return "", false
}

// Instructions are the JSON session instructions a registration (and, to
// keep the browser's view current, a refresh) answers with.
type Instructions struct {
	SessionIdentifier string       `json:"session_identifier"`
	RefreshURL        string       `json:"refresh_url"`
	Scope             Scope        `json:"scope"`
	Credentials       []Credential `json:"credentials"`
}

// Scope is the part of the site the session covers.
type Scope struct {
	Origin      string `json:"origin,omitempty"`
	IncludeSite bool   `json:"include_site"`
}

// Credential names a cookie the session keeps alive, with the attributes of
// its Set-Cookie line (Max-Age and Expires aside).
type Credential struct {
	Type       string `json:"type"`
	Name       string `json:"name"`
	Attributes string `json:"attributes"`
}
