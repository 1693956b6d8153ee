package handshake

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"aidanwoods.dev/go-paseto"

	"github.com/tetherhq/tether/internal/jwtcore"
)

// v4Local is PASETO v4.local (a shared 32-byte key, claims hidden from the
// client) with the implicit assertion ImplicitAssertion. A key file may
// hold several keys: the first encrypts, all decrypt.
type v4Local struct{}

func (v4Local) format() string  { return FormatPASETO }
func (v4Local) alg() string     { return AlgV4Local }
func (v4Local) sharedKey() bool { return true }
func (v4Local) jwks() bool      { return false }

// header is the exact token prefix of this purpose.
func (s v4Local) header() string { return s.alg() + "." }

// Sizes of a v4.local body around its ciphertext.
const (
	v4LocalNonce = 32
	v4LocalTag   = 32
)

// parseKey reads a PASERK k4.local key or exactly 32 bytes of base64url.
func (v4Local) parseKey(line string) ([]byte, error) {
	if strings.Contains(line, ".") { // a PASERK; plain base64url has no dots
		var ok bool
		if line, ok = strings.CutPrefix(line, paserkLocal); !ok {
			return nil, errors.New("PASERK type does not fit v4.local")
		}
	}
	key, err := decodeSharedKey(line)
	if err != nil {
		return nil, err
	}
	if len(key) != pasetoKeySize {
		return nil, fmt.Errorf("v4.local key is %d bytes, want %d", len(key), pasetoKeySize)
	}
	return key, nil
}

// loadKeys reads the key file into typed keys, once.
func (s v4Local) loadKeys(keyFile string) ([]paseto.V4SymmetricKey, error) {
	raws, err := loadSharedKeys(keyFile, s.parseKey)
	if err != nil {
		return nil, err
	}
	keys := make([]paseto.V4SymmetricKey, len(raws))
	for i, raw := range raws {
		if keys[i], err = paseto.V4SymmetricKeyFromBytes(raw); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

func (s v4Local) signer(keyFile string, _ *KeyRing) (tokenSigner, error) {
	keys, err := s.loadKeys(keyFile)
	if err != nil {
		return nil, err
	}
	return v4LocalSigner{keys[0]}, nil
}

type v4LocalSigner struct{ key paseto.V4SymmetricKey }

func (s v4LocalSigner) sign(c *Claims) (string, error) {
	t := pasetoToken(c)
	return t.V4Encrypt(s.key, implicit), nil
}

func (s v4Local) verifier(keyFile string, _ *jwtcore.JWKS) (tokenVerifier, error) {
	keys, err := s.loadKeys(keyFile)
	if err != nil {
		return nil, err
	}
	return v4LocalVerifier{keys}, nil
}

type v4LocalVerifier struct{ keys []paseto.V4SymmetricKey }

func (v v4LocalVerifier) verify(_ context.Context, tok *token, check claimsCheck) (*Claims, error) {
	body, err := splitPASETO(tok.raw, v4Local{}.header())
	if err != nil {
		return nil, err
	}
	if len(body) < v4LocalNonce+v4LocalTag {
		return nil, reject(ErrMalformed, "v4.local body too short")
	}
	parser := paseto.MakeParser(nil) // claims are checked by check, strictly
	for _, key := range v.keys {
		tok, err := parser.ParseV4Local(key, tok.raw, implicit)
		if err != nil {
			continue
		}
		payload, err := uniqueClaims(tok, len(body)-v4LocalNonce-v4LocalTag)
		if err != nil {
			return nil, err
		}
		return check(payload, rfc3339)
	}
	return nil, reject(ErrSignature, "PASETO does not verify")
}
