package handshake

import (
	"crypto/ed25519"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/internal/jwtcore"
)

// edDSA is JWT EdDSA with Ed25519 (scenario C): the node's ring key signs;
// receivers pin the public key or fetch the issuer's JWKS.
type edDSA struct{}

func (edDSA) format() string  { return FormatJWT }
func (edDSA) alg() string     { return AlgEdDSA }
func (edDSA) sharedKey() bool { return false }
func (edDSA) jwks() bool      { return true }

func (edDSA) signer(_ string, ring *KeyRing) (tokenSigner, error) {
	return ringJWTSigner{ring: ring, alg: AlgEdDSA}, nil
}

func (edDSA) verifier(keyFile string, set *jwtcore.JWKS) (tokenVerifier, error) {
	if set != nil {
		return newJWTVerifier(jose.EdDSA, jwtcore.JWKSKeys[ed25519.PublicKey]{Set: set, Alg: AlgEdDSA}), nil
	}
	key, err := loadPublicKey[ed25519.PublicKey](keyFile, publicKeyUse{alg: AlgEdDSA, fitsAs: AlgEdDSA})
	if err != nil {
		return nil, err
	}
	return newJWTVerifier(jose.EdDSA, jwtcore.StaticKeys[ed25519.PublicKey]{key}), nil
}
