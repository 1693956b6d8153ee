package handshake

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// JWTType is the typ header of every handshake JWT (RFC 8725 §3.11): no
// other kind of token shares it.
const JWTType = "handshake+jwt"

// allowedHeaders are the only JOSE header parameters a handshake JWT may
// carry. Everything else (crit, jwk, jku, x5u, x5c, b64, …) is refused, so
// no key, URL or processing rule can come from the token.
var allowedHeaders = map[string]bool{"alg": true, "typ": true, "kid": true}

// jwtClaims is what this package mints; field order is the wire order.
type jwtClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
	ID       string `json:"jti"`
	AuthTime int64  `json:"auth_time,omitempty"`
	SID      string `json:"sid,omitempty"`
}

// signJWT signs claims in compact serialization with a typed key bound to
// alg: []byte for HS256, crypto.Signer for EdDSA and ES256.
func signJWT(alg string, key any, kid string, c *Claims) (string, error) {
	payload, err := json.Marshal(jwtClaims{
		Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience,
		IssuedAt: c.IssuedAt.Unix(), Expiry: c.ExpiresAt.Unix(), ID: c.ID,
		AuthTime: unixOrZero(c.AuthTime), SID: c.SessionID,
	})
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{}).WithType(JWTType)
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, opts)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// jwtIssuer is one trusted JWT issuer: a pinned alg and typed keys, either
// static (from configuration) or from the issuer's configured JWKS.
type jwtIssuer struct {
	issuer string
	prefix string // subject prefix
	alg    string
	static []any // []byte (HS256: several while a shared key rotates), ed25519.PublicKey or *ecdsa.PublicKey
	jwks   *jwksCache
}

// keys returns the keys that may have signed a token with this kid.
func (j *jwtIssuer) keys(ctx context.Context, kid string) ([]any, error) {
	if j.jwks == nil {
		return j.static, nil // configured keys: kid selects nothing
	}
	k, err := j.jwks.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	return []any{k}, nil
}

// jwtHeader holds the strictly checked protected header.
type jwtHeader struct{ alg, kid string }

// splitJWT checks the compact form strictly (three non-empty canonical
// base64url segments, nothing else) and decodes header and payload.
func splitJWT(tainted string) (hdr jwtHeader, payload []byte, err error) {
	parts := strings.Split(tainted, ".")
	if len(parts) != 3 {
		return hdr, nil, reject(ErrMalformed, "not three compact segments")
	}
	var dec [3][]byte
	for i, p := range parts {
		if dec[i], err = decodeB64(p); err != nil || len(dec[i]) == 0 {
			return hdr, nil, reject(ErrMalformed, "segment is not canonical base64url")
		}
	}
	h, err := decodeObject(dec[0])
	if err != nil {
		return hdr, nil, reject(ErrMalformed, "header is not a strict JSON object")
	}
	for name := range h {
		if !allowedHeaders[name] {
			return hdr, nil, reject(ErrHeader, "header parameter not allowed")
		}
	}
	var ok bool
	if hdr.alg, ok = jsonString(h["alg"]); !ok {
		return hdr, nil, reject(ErrHeader, "alg missing or not a string")
	}
	if typ, ok := jsonString(h["typ"]); !ok || typ != JWTType {
		return hdr, nil, reject(ErrType, "typ is not "+JWTType)
	}
	if v, present := h["kid"]; present {
		if hdr.kid, ok = jsonString(v); !ok {
			return hdr, nil, reject(ErrHeader, "kid not a string")
		}
	}
	return hdr, dec[1], nil
}

// verifyJWT verifies a compact JWS with the pinned alg and key of the
// configured issuer that the unverified iss selects.
func (v *Verifier) verifyJWT(ctx context.Context, tainted string, now time.Time) (*Claims, error) {
	hdr, taintedPayload, err := splitJWT(tainted)
	if err != nil {
		return nil, err
	}
	iss, err := peekIssuer(taintedPayload)
	if err != nil {
		return nil, err
	}
	entries := v.jwt[iss]
	if len(entries) == 0 {
		return nil, reject(ErrUnknownIssuer, "no JWT issuer configured")
	}
	var entry *jwtIssuer
	for _, e := range entries {
		if e.alg == hdr.alg {
			entry = e
		}
	}
	if entry == nil {
		return nil, reject(ErrAlgorithm, "alg is not the issuer's pinned alg")
	}
	keys, err := entry.keys(ctx, hdr.kid)
	if err != nil {
		return nil, err
	}
	jws, err := jose.ParseSignedCompact(tainted, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(entry.alg)})
	if err != nil {
		return nil, reject(ErrMalformed, "JWS does not parse")
	}
	var payload []byte
	for _, key := range keys {
		if payload, err = jws.Verify(key); err == nil {
			break
		}
	}
	if payload == nil {
		return nil, reject(ErrSignature, "JWS does not verify")
	}
	c, err := parseClaims(payload, numericDate)
	if err != nil {
		return nil, err
	}
	if c.Issuer != entry.issuer {
		return nil, reject(ErrUnknownIssuer, "verified iss differs")
	}
	if err := c.check(now, v.leeway, v.audience); err != nil {
		return nil, err
	}
	if err := c.localize(entry.prefix); err != nil {
		return nil, err
	}
	return c, nil
}

// unixOrZero is t in Unix seconds, or 0 (omitted) for the zero time.
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
