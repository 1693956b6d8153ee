package handshake

import (
	"context"
	"crypto/ed25519"

	"aidanwoods.dev/go-paseto"

	"github.com/tetherhq/tether/internal/jwtcore"
)

// v4Public is PASETO v4.public (Ed25519) with the implicit assertion
// ImplicitAssertion: the node's Ed25519 ring key signs; receivers pin the
// public key.
type v4Public struct{}

func (v4Public) format() string  { return FormatPASETO }
func (v4Public) alg() string     { return AlgV4Public }
func (v4Public) sharedKey() bool { return false }
func (v4Public) jwks() bool      { return false }

// v4PublicKeyUse: an Ed25519 key from PEM, a JWK or PASERK k4.public.
var v4PublicKeyUse = publicKeyUse{alg: AlgV4Public, fitsAs: AlgEdDSA, paserk: true}

// header is the exact token prefix of this purpose.
func (s v4Public) header() string { return s.alg() + "." }

func (v4Public) signer(_ string, ring *KeyRing) (tokenSigner, error) {
	return v4PublicSigner{ring}, nil
}

// v4PublicSigner signs with the ring's active Ed25519 key, whose PASETO
// form the ring built once.
type v4PublicSigner struct{ ring *KeyRing }

func (s v4PublicSigner) sign(c *Claims) (string, error) {
	k, err := s.ring.signer(AlgEdDSA) // one Ed25519 key serves EdDSA and v4.public
	if err != nil {
		return "", err
	}
	t := pasetoToken(c)
	return t.V4Sign(k.v4, implicit), nil
}

func (v4Public) verifier(keyFile string, _ *jwtcore.JWKS) (tokenVerifier, error) {
	pub, err := loadPublicKey[ed25519.PublicKey](keyFile, v4PublicKeyUse)
	if err != nil {
		return nil, err
	}
	key, err := paseto.NewV4AsymmetricPublicKeyFromEd25519(pub)
	if err != nil {
		return nil, err
	}
	return v4PublicVerifier{key}, nil
}

type v4PublicVerifier struct{ key paseto.V4AsymmetricPublicKey }

func (v v4PublicVerifier) verify(_ context.Context, tok *token, check claimsCheck) (*Claims, error) {
	body, err := splitPASETO(tok.raw, v4Public{}.header())
	if err != nil {
		return nil, err
	}
	parser := paseto.MakeParser(nil) // claims are checked by check, strictly
	if _, err := parser.ParseV4Public(v.key, tok.raw, implicit); err != nil {
		return nil, reject(ErrSignature, "PASETO does not verify")
	}
	// The signed message itself, so that duplicate or case-variant names are
	// seen; go-paseto re-encodes claims through a map.
	return check(body[:len(body)-ed25519.SignatureSize], rfc3339)
}
