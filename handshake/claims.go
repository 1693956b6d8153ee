package handshake

import (
	"strings"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/jwtcore"
)

// Claims are the verified claims of a handshake token.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  string
	ID        string // jti
	IssuedAt  time.Time
	ExpiresAt time.Time
	NotBefore time.Time // zero when the token has no nbf
	AuthTime  time.Time // when the subject authenticated at the issuer; zero when not given
	SessionID string    // sid: the minting session's ID; "" when not given

	// LocalSubject is Subject as the receiving node names it: prefixed per
	// the issuer's subject_prefix. Sessions are created for LocalSubject.
	LocalSubject string
}

// timeEncoding is how a token format writes its time claims.
type timeEncoding int

const (
	numericDate timeEncoding = iota // JWT: integer seconds since the epoch
	rfc3339                         // PASETO: RFC 3339 strings
)

const maxClaimString = jwtcore.MaxString

// registered are the claim names this package reads. A key that differs
// from one of them only by case is refused, because a case-insensitive
// decoder elsewhere (Go's encoding/json is one) would read it as the claim.
var registered = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "auth_time", "sid"}

// peekIssuer reads iss from unverified claims, only to select which
// configured issuer's pinned key verifies the token.
func peekIssuer(tainted []byte) (string, error) {
	m, err := jwtcore.DecodeObject(tainted)
	if err != nil {
		return "", reject(ErrMalformed, "claims are not a strict JSON object")
	}
	iss, ok := m.String("iss")
	if !ok {
		return "", reject(ErrClaims, "iss missing or not a string")
	}
	return iss, nil
}

// parseClaims strictly decodes a claims set.
func parseClaims(payload []byte, te timeEncoding) (*Claims, error) {
	m, err := jwtcore.DecodeObject(payload)
	if err != nil {
		return nil, reject(ErrMalformed, "claims are not a strict JSON object")
	}
	for name := range m {
		for _, r := range registered {
			if name != r && strings.EqualFold(name, r) {
				return nil, reject(ErrClaims, "case variant of a registered claim")
			}
		}
	}
	var c Claims
	var ok bool
	strs := []struct {
		name string
		dst  *string
	}{{"iss", &c.Issuer}, {"sub", &c.Subject}, {"jti", &c.ID}}
	for _, f := range strs {
		if *f.dst, ok = m.String(f.name); !ok {
			return nil, reject(ErrClaims, f.name+" missing or not a string")
		}
	}
	if _, present := m["sid"]; present {
		if c.SessionID, ok = m.String("sid"); !ok {
			return nil, reject(ErrClaims, "sid not a string")
		}
	}
	if c.Audience, ok = m.Audience(); !ok {
		return nil, reject(ErrClaims, "aud missing or not one string")
	}
	times := []struct {
		name     string
		dst      *time.Time
		optional bool
	}{{"exp", &c.ExpiresAt, false}, {"iat", &c.IssuedAt, false}, {"nbf", &c.NotBefore, true}, {"auth_time", &c.AuthTime, true}}
	for _, f := range times {
		if _, present := m[f.name]; !present && f.optional {
			continue
		}
		if te == rfc3339 {
			*f.dst, ok = m.RFC3339(f.name)
		} else {
			*f.dst, ok = m.NumericDate(f.name)
		}
		if !ok {
			return nil, reject(ErrClaims, f.name+" missing or not a valid time")
		}
	}
	return &c, nil
}

// check validates the audience, time window, lifetime and auth_time of
// claims.
func (c *Claims) check(now time.Time, leeway time.Duration, aud string) error {
	if c.Audience != aud {
		return reject(ErrAudience, "aud does not name this service")
	}
	times := jwtcore.Times{IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt, NotBefore: c.NotBefore}
	if err := times.Check(now, leeway, MaxTTL); err != nil {
		return err
	}
	switch {
	case c.AuthTime.After(c.IssuedAt):
		return reject(ErrClaims, "auth_time after iat")
	case !c.AuthTime.IsZero() && c.AuthTime.Unix() <= 0:
		return reject(ErrClaims, "auth_time before 1970")
	}
	return nil
}

// localize names the local subject and checks that it is one a session can
// have, before anything is consumed: a token that could never become a
// session is refused like any other bad token.
func (c *Claims) localize(prefix string) error {
	c.LocalSubject = prefix + c.Subject
	if err := tether.CheckSubject(c.LocalSubject); err != nil {
		return reject(ErrClaims, "sub cannot name a local subject")
	}
	return nil
}
