// Package dpoptest makes DPoP proofs (RFC 9449) for tests of services that
// check them: a client key, and proofs signed with it by go-jose.
package dpoptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/dpop"
)

// Key is a client's DPoP key pair.
type Key struct {
	Alg     jose.SignatureAlgorithm
	Private crypto.Signer
	JKT     string // RFC 7638 thumbprint of the public key, base64url
	signer  jose.Signer
}

// NewKey makes a key for alg, jose.ES256 or jose.EdDSA.
func NewKey(alg jose.SignatureAlgorithm) (*Key, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("dpoptest: unsupported alg %s", alg)
	}
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv}, opts)
	if err != nil {
		return nil, err
	}
	jwk := jose.JSONWebKey{Key: priv.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &Key{Alg: alg, Private: priv, JKT: base64.RawURLEncoding.EncodeToString(tp), signer: signer}, nil
}

// Proof returns a fresh proof for a request: a random jti, iat now, ath when
// token is not empty, nonce when not empty.
func (k *Key) Proof(method, url, token, nonce string) string {
	c := Claims(method, url, token, nonce, time.Now())
	return k.Sign(c)
}

// Claims are a proof's claims for a request, to adjust before Sign.
func Claims(method, url, token, nonce string, iat time.Time) map[string]any {
	jti := make([]byte, 16)
	rand.Read(jti)
	c := map[string]any{
		"jti": base64.RawURLEncoding.EncodeToString(jti),
		"htm": method, "htu": url, "iat": iat.Unix(),
	}
	if token != "" {
		c["ath"] = dpop.TokenHash(token)
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	return c
}

// Sign signs arbitrary claims as a proof with k's header (typ dpop+jwt, the
// public jwk). It panics on failure, which go-jose reports only for a bad key.
func (k *Key) Sign(claims map[string]any) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		panic(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return s
}
