package handshake

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tetherhq/tether"
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
	SessionID string    // sid: the minting session's ID, so its revocation can follow (DESIGN §11); empty when not given

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

const (
	maxClaims      = 64
	maxClaimString = 1024
	maxNumericDate = 253402300799 // 9999-12-31T23:59:59Z
)

// registered are the claim names this package reads. A key that differs
// from one of them only by case is refused, because a case-insensitive
// decoder elsewhere (Go's encoding/json is one) would read it as the claim.
var registered = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "auth_time", "sid"}

// decodeObject decodes exactly one JSON object, keeping the exact spelling of
// its member names, and refuses invalid UTF-8, duplicate names and trailing
// data: two parsers must never disagree about what a token says.
func decodeObject(tainted []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(tainted) {
		return nil, errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(tainted))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	members := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		if _, dup := members[name]; dup {
			return nil, errors.New("duplicate member")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		members[name] = v
		if len(members) > maxClaims {
			return nil, errors.New("too many members")
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errors.New("unterminated object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return members, nil
}

// jsonString reads a non-empty JSON string of bounded length; null, numbers
// and other types are refused (json.Unmarshal would leave null as "").
func jsonString(v json.RawMessage) (string, bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil || s == "" || len(s) > maxClaimString {
		return "", false
	}
	return s, true
}

// peekIssuer reads iss from unverified claims, only to select which
// configured issuer's pinned key verifies the token.
func peekIssuer(tainted []byte) (string, error) {
	m, err := decodeObject(tainted)
	if err != nil {
		return "", reject(ErrMalformed, "claims are not a strict JSON object")
	}
	iss, ok := jsonString(m["iss"])
	if !ok {
		return "", reject(ErrClaims, "iss missing or not a string")
	}
	return iss, nil
}

// parseClaims strictly decodes a verified claims set.
func parseClaims(payload []byte, te timeEncoding) (*Claims, error) {
	m, err := decodeObject(payload)
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
		if *f.dst, ok = jsonString(m[f.name]); !ok {
			return nil, reject(ErrClaims, f.name+" missing or not a string")
		}
	}
	if v, present := m["sid"]; present {
		if c.SessionID, ok = jsonString(v); !ok {
			return nil, reject(ErrClaims, "sid not a string")
		}
	}
	if c.Audience, ok = audience(m["aud"]); !ok {
		return nil, reject(ErrClaims, "aud missing or not one string")
	}
	times := []struct {
		name     string
		dst      *time.Time
		optional bool
	}{{"exp", &c.ExpiresAt, false}, {"iat", &c.IssuedAt, false}, {"nbf", &c.NotBefore, true}, {"auth_time", &c.AuthTime, true}}
	for _, f := range times {
		v, present := m[f.name]
		if !present && f.optional {
			continue
		}
		if *f.dst, ok = timeClaim(v, te); !ok {
			return nil, reject(ErrClaims, f.name+" missing or not a valid time")
		}
	}
	return &c, nil
}

// audience accepts a string or an array holding exactly one string.
func audience(v json.RawMessage) (string, bool) {
	if len(v) > 0 && v[0] == '[' {
		var arr []json.RawMessage
		if err := json.Unmarshal(v, &arr); err != nil || len(arr) != 1 {
			return "", false
		}
		v = arr[0]
	}
	return jsonString(v)
}

// timeClaim reads a NumericDate (a positive integer, no fraction or
// exponent) for JWT or an RFC 3339 string for PASETO.
func timeClaim(v json.RawMessage, te timeEncoding) (time.Time, bool) {
	if te == rfc3339 {
		s, ok := jsonString(v)
		if !ok {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339, s)
		return t, err == nil
	}
	if len(v) == 0 || v[0] == '0' {
		return time.Time{}, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n <= 0 || n > maxNumericDate {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// check validates the time window, lifetime and audience of verified claims.
func (c *Claims) check(now time.Time, leeway time.Duration, aud string) error {
	switch {
	case c.Audience != aud:
		return reject(ErrAudience, "aud does not name this service")
	case !c.ExpiresAt.After(c.IssuedAt):
		return reject(ErrLifetime, "exp is not after iat")
	case c.ExpiresAt.Sub(c.IssuedAt) > MaxTTL:
		return reject(ErrLifetime, "exp - iat exceeds 5m")
	case !now.Before(c.ExpiresAt.Add(leeway)):
		return reject(ErrExpired, "exp passed")
	case c.IssuedAt.After(now.Add(leeway)):
		return reject(ErrNotYetValid, "iat in the future")
	case !c.NotBefore.IsZero() && c.NotBefore.After(now.Add(leeway)):
		return reject(ErrNotYetValid, "nbf in the future")
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
