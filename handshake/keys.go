package handshake

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

const (
	minSharedKey  = 32
	maxKeyFile    = 64 << 10
	paserkLocal   = "k4.local."
	paserkPublic  = "k4.public."
	pasetoKeySize = 32
)

// b64 is the only base64 this package accepts: URL alphabet, no padding,
// canonical trailing bits.
var b64 = base64.RawURLEncoding.Strict()

// decodeB64 decodes canonical unpadded base64url. Strict mode still skips
// CR and LF, so any byte outside the alphabet is refused first.
func decodeB64(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if !isB64Char(s[i]) {
			return nil, errors.New("not unpadded base64url")
		}
	}
	return b64.DecodeString(s)
}

func isB64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// readKeyFile reads a small key file and trims surrounding whitespace.
func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("handshake: key file: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("handshake: key file %s: %w", path, err)
	}
	if len(buf) > maxKeyFile {
		return "", fmt.Errorf("handshake: key file %s too large", path)
	}
	return strings.TrimSpace(string(buf)), nil
}

// loadSharedKey reads the key that signs: the first of the file's keys.
func loadSharedKey(path, alg string) ([]byte, error) {
	keys, err := loadSharedKeys(path, alg)
	if err != nil {
		return nil, err
	}
	return keys[0], nil
}

// loadSharedKeys reads a shared key file for alg (HS256 or v4.local): one key
// per line, each at least 32 bytes as unpadded base64url, or for v4.local a
// PASERK k4.local key; a v4.local key is exactly 32 bytes. The first key
// signs and every key verifies, so a shared key rotates without a gap: add
// the new key to the receivers' file, then put it first at the issuer, then
// drop the old one.
func loadSharedKeys(path, alg string) ([][]byte, error) {
	if err := checkPerm(path, 0o600); err != nil {
		return nil, err
	}
	text, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for line := range strings.Lines(text) {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		key, err := parseSharedKey(line, alg)
		if err != nil {
			return nil, fmt.Errorf("handshake: key file %s: %v", path, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("handshake: key file %s holds no key", path)
	}
	return keys, nil
}

func parseSharedKey(text, alg string) ([]byte, error) {
	if strings.Contains(text, ".") { // a PASERK; plain base64url has no dots
		if alg != AlgV4Local || !strings.HasPrefix(text, paserkLocal) {
			return nil, fmt.Errorf("PASERK type does not fit %s", alg)
		}
		text = strings.TrimPrefix(text, paserkLocal)
	}
	key, err := decodeB64(text)
	if err != nil {
		return nil, err
	}
	if len(key) < minSharedKey {
		return nil, fmt.Errorf("shared key is %d bytes, want at least %d", len(key), minSharedKey)
	}
	if alg == AlgV4Local && len(key) != pasetoKeySize {
		return nil, fmt.Errorf("v4.local key is %d bytes, want %d", len(key), pasetoKeySize)
	}
	return key, nil
}

// loadPublicKey reads a public key for alg from PEM (SubjectPublicKeyInfo),
// a JWK, or (v4.public) a PASERK k4.public key, and checks that its type
// fits alg: Ed25519 for EdDSA and v4.public, P-256 for ES256.
func loadPublicKey(path, alg string) (crypto.PublicKey, error) {
	text, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	key, err := parsePublicKey(text, alg)
	if err != nil {
		return nil, fmt.Errorf("handshake: public key file %s: %w", path, err)
	}
	return key, nil
}

func parsePublicKey(text, alg string) (crypto.PublicKey, error) {
	var key crypto.PublicKey
	switch {
	case strings.HasPrefix(text, "-----BEGIN"):
		block, rest := pem.Decode([]byte(text))
		if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
			return nil, errors.New("want one PEM PUBLIC KEY block")
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		key = k
	case strings.HasPrefix(text, "{"):
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON([]byte(text)); err != nil {
			return nil, err
		}
		if !jwk.Valid() || !jwk.IsPublic() {
			return nil, errors.New("JWK is not a valid public key")
		}
		if jwk.Algorithm != "" && jwk.Algorithm != alg {
			return nil, fmt.Errorf("JWK alg %q does not match configured %s", jwk.Algorithm, alg)
		}
		key = jwk.Key
	case strings.HasPrefix(text, paserkPublic):
		if alg != AlgV4Public {
			return nil, fmt.Errorf("PASERK k4.public does not fit %s", alg)
		}
		raw, err := decodeB64(strings.TrimPrefix(text, paserkPublic))
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, errors.New("malformed PASERK k4.public")
		}
		key = ed25519.PublicKey(raw)
	default:
		return nil, errors.New("want PEM, JWK or PASERK k4.public")
	}
	if err := checkKeyType(key, alg); err != nil {
		return nil, err
	}
	return key, nil
}

// checkKeyType binds a public key to its algorithm.
func checkKeyType(key crypto.PublicKey, alg string) error {
	switch k := key.(type) {
	case ed25519.PublicKey:
		if (alg == AlgEdDSA || alg == AlgV4Public) && len(k) == ed25519.PublicKeySize {
			return nil
		}
	case *ecdsa.PublicKey:
		if alg == AlgES256 && k.Curve == elliptic.P256() {
			return nil
		}
	}
	return fmt.Errorf("key type %T does not fit %s", key, alg)
}
