package handshake

import (
	"errors"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/internal/jwtcore"
)

// hs256 is JWT HS256 with a shared key of at least 32 bytes (scenario B,
// internal services). A key file may hold several keys: the first signs,
// all verify.
type hs256 struct{}

func (hs256) format() string  { return FormatJWT }
func (hs256) alg() string     { return AlgHS256 }
func (hs256) sharedKey() bool { return true }
func (hs256) jwks() bool      { return false }

func (hs256) parseKey(line string) ([]byte, error) {
	if strings.Contains(line, ".") { // a PASERK; plain base64url has no dots
		return nil, errors.New("a PASERK does not fit HS256")
	}
	return decodeSharedKey(line)
}

func (s hs256) signer(keyFile string, _ *KeyRing) (tokenSigner, error) {
	keys, err := loadSharedKeys(keyFile, s.parseKey)
	if err != nil {
		return nil, err
	}
	signer, err := newJWTSigner(jose.HS256, keys[0], "")
	if err != nil {
		return nil, err
	}
	return sharedJWTSigner{signer}, nil
}

func (s hs256) verifier(keyFile string, _ *jwtcore.JWKS) (tokenVerifier, error) {
	keys, err := loadSharedKeys(keyFile, s.parseKey)
	if err != nil {
		return nil, err
	}
	return newJWTVerifier(jose.HS256, jwtcore.StaticKeys[[]byte](keys)), nil
}
