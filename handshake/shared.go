package handshake

import (
	"context"
	"crypto"
	"errors"
	"net/http"
	"time"
)

// This file lends the node's key ring and the verifier's JWKS rules to the
// node's other signed messages: Security Event Tokens (package ssf, DESIGN
// §11) are signed with the keys of the same JWKS and verified with the same
// fetching and refresh rules.

// Signer returns the newest active key of alg (AlgEdDSA or AlgES256) and its
// kid.
func (r *KeyRing) Signer(alg string) (kid string, key crypto.Signer, err error) {
	return r.signer(alg)
}

// RemoteKeySet is a party's signing keys from its JWKS URL, with the rules
// of a jwks_url issuer: only keys of the pinned alg, refetched (rate-limited)
// for an unknown kid and after ten minutes, the old keys kept when a
// refresh fails.
type RemoteKeySet struct{ c *jwksCache }

// NewRemoteKeySet checks url (https, or plain http to a loopback address)
// and alg (AlgEdDSA or AlgES256). client may be nil (a 5 s timeout), now
// too (time.Now).
func NewRemoteKeySet(url, alg string, client *http.Client, now func() time.Time) (*RemoteKeySet, error) {
	if alg != AlgEdDSA && alg != AlgES256 {
		return nil, errors.New("handshake: a JWKS key set is EdDSA or ES256")
	}
	spec := IssuerSpec{Issuer: url, Format: FormatJWT, Alg: alg, JWKSURL: url}
	if err := spec.checkSource(); err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{Timeout: jwksTimeout}
	}
	if now == nil {
		now = time.Now
	}
	return &RemoteKeySet{c: newJWKSCache(url, alg, client, now)}, nil
}

// Key returns the key with kid; an unknown kid matches ErrInvalid.
func (s *RemoteKeySet) Key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	return s.c.key(ctx, kid)
}
