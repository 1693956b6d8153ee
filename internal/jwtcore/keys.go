package jwtcore

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// Key sizes below which a key is refused.
const (
	MinSharedKey = 32   // bytes, HS256
	MinRSABits   = 2048 // RS256, PS256
)

// KeyFits binds a key to an algorithm: a []byte of at least MinSharedKey
// for HS256, Ed25519 for EdDSA, P-256 for ES256, P-384 for ES384, RSA of at
// least MinRSABits for RS256 and PS256. Any other pair is refused, so a
// public key can never serve as an HMAC secret.
func KeyFits(alg string, key any) error {
	ok := false
	switch k := key.(type) {
	case []byte:
		ok = alg == string(jose.HS256) && len(k) >= MinSharedKey
	case ed25519.PublicKey:
		ok = alg == string(jose.EdDSA) && len(k) == ed25519.PublicKeySize
	case *ecdsa.PublicKey:
		ok = alg == string(jose.ES256) && k.Curve == elliptic.P256() ||
			alg == string(jose.ES384) && k.Curve == elliptic.P384()
	case *rsa.PublicKey:
		ok = (alg == string(jose.RS256) || alg == string(jose.PS256)) && k.N.BitLen() >= MinRSABits
	}
	if !ok {
		return fmt.Errorf("key type %T does not fit %s", key, alg)
	}
	return nil
}
