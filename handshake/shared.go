package handshake

import "crypto"

// Signer returns the newest active key of alg (AlgEdDSA or AlgES256) and its
// kid, for the node's other signed messages that verifiers find in the same
// JWKS: Security Event Tokens (package ssf, DESIGN §11).
func (r *KeyRing) Signer(alg string) (kid string, key crypto.Signer, err error) {
	k, err := r.signer(alg)
	if err != nil {
		return "", nil, err
	}
	return k.kid, k.priv, nil
}
