package handshake

import (
	"context"
	"encoding/json"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/internal/jwtcore"
)

// JWTType is the typ header of every handshake JWT (RFC 8725 §3.11): no
// other kind of token shares it. "application/handshake+jwt" and any ASCII
// case of either are the same type (RFC 7515 §4.1.9).
const JWTType = "handshake+jwt"

// jwtClaims is what this package mints; field order is the wire order.
type jwtClaims struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Audience  string `json:"aud"`
	IssuedAt  int64  `json:"iat"`
	Expiry    int64  `json:"exp"`
	ID        string `json:"jti"`
	AuthTime  int64  `json:"auth_time,omitempty"`
	SessionID string `json:"sid,omitempty"`
}

// newJWTSigner makes the go-jose signer of one typed key, once: the typ
// header and, for a ring key, its kid are fixed in it.
func newJWTSigner(alg jose.SignatureAlgorithm, key any, kid string) (jose.Signer, error) {
	opts := (&jose.SignerOptions{}).WithType(JWTType)
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	return jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
}

// signJWT signs claims in compact serialization.
func signJWT(signer jose.Signer, c *Claims) (string, error) {
	payload, err := json.Marshal(jwtClaims{
		Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience,
		IssuedAt: c.IssuedAt.Unix(), Expiry: c.ExpiresAt.Unix(), ID: c.ID,
		AuthTime: unixOrZero(c.AuthTime), SessionID: c.SessionID,
	})
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// jwtVerifier verifies through the shared core with one pinned alg and a
// key source typed for it.
type jwtVerifier[K any] struct {
	policy jwtcore.Policy[K]
}

func newJWTVerifier[K any](alg jose.SignatureAlgorithm, keys jwtcore.KeySource[K]) *jwtVerifier[K] {
	return &jwtVerifier[K]{policy: jwtcore.Policy[K]{Algs: []jose.SignatureAlgorithm{alg}, Type: JWTType, Keys: keys}}
}

func (v *jwtVerifier[K]) verify(ctx context.Context, tok *token, check claimsCheck) (*Claims, error) {
	return jwtcore.VerifyParsed(ctx, tok.jws, &v.policy, func(_ jwtcore.Header, payload []byte) (*Claims, error) {
		return check(payload, numericDate)
	})
}

// ringJWTSigner signs with the ring's active key for alg at each mint, so
// a rotation takes effect at once; the ring built each key's signer once.
type ringJWTSigner struct {
	ring *KeyRing
	alg  string
}

func (s ringJWTSigner) sign(c *Claims) (string, error) {
	k, err := s.ring.signer(s.alg)
	if err != nil {
		return "", err
	}
	return signJWT(k.jws, c)
}

// sharedJWTSigner signs with a shared key whose signer was built at load.
type sharedJWTSigner struct{ signer jose.Signer }

func (s sharedJWTSigner) sign(c *Claims) (string, error) { return signJWT(s.signer, c) }

// unixOrZero is t in Unix seconds, or 0 (omitted) for the zero time.
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
