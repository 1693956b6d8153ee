package handshake

import (
	"crypto/ecdsa"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/internal/jwtcore"
)

// es256 is JWT ES256 with P-256 (scenario C, for partners without
// Ed25519): the node's ring key signs; receivers pin the public key or
// fetch the issuer's JWKS.
type es256 struct{}

func (es256) format() string  { return FormatJWT }
func (es256) alg() string     { return AlgES256 }
func (es256) sharedKey() bool { return false }
func (es256) jwks() bool      { return true }

func (es256) signer(_ string, ring *KeyRing) (tokenSigner, error) {
	return ringJWTSigner{ring: ring, alg: AlgES256}, nil
}

func (es256) verifier(keyFile string, set *jwtcore.JWKS) (tokenVerifier, error) {
	if set != nil {
		return newJWTVerifier(jose.ES256, jwtcore.JWKSKeys[*ecdsa.PublicKey]{Set: set, Alg: AlgES256}), nil
	}
	key, err := loadPublicKey[*ecdsa.PublicKey](keyFile, publicKeyUse{alg: AlgES256, fitsAs: AlgES256})
	if err != nil {
		return nil, err
	}
	return newJWTVerifier(jose.ES256, jwtcore.StaticKeys[*ecdsa.PublicKey]{key}), nil
}
