package handshake

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/internal/jwtcore"
)

const (
	maxKeyFile    = 64 << 10
	paserkLocal   = "k4.local."
	paserkPublic  = "k4.public."
	pasetoKeySize = 32
)

// b64 is the only base64 this package accepts: URL alphabet, no padding,
// canonical trailing bits.
var b64 = jwtcore.B64

var decodeB64 = jwtcore.DecodeB64

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

// loadSharedKeys reads a shared key file (mode 0600 or stricter): one key
// per line, each read by the suite's parse. The first key signs and every
// key verifies, so a shared key rotates without a gap: add the new key to
// the receivers' file, then put it first at the issuer, then drop the old
// one.
func loadSharedKeys(path string, parse func(line string) ([]byte, error)) ([][]byte, error) {
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
		key, err := parse(line)
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

// decodeSharedKey reads at least 32 bytes of unpadded base64url.
func decodeSharedKey(text string) ([]byte, error) {
	key, err := decodeB64(text)
	if err != nil {
		return nil, err
	}
	if len(key) < jwtcore.MinSharedKey {
		return nil, fmt.Errorf("shared key is %d bytes, want at least %d", len(key), jwtcore.MinSharedKey)
	}
	return key, nil
}

// publicKeyUse says what a suite wants from a public key file.
type publicKeyUse struct {
	alg    string // the configured alg, which a JWK's "alg" must equal when given
	fitsAs string // the JOSE algorithm whose key type and size the key must fit
	paserk bool   // PASERK k4.public is accepted
}

// loadPublicKey reads a public key of type K from PEM (SubjectPublicKeyInfo),
// a JWK, or (where use allows) a PASERK k4.public key.
func loadPublicKey[K any](path string, use publicKeyUse) (K, error) {
	var zero K
	text, err := readKeyFile(path)
	if err != nil {
		return zero, err
	}
	key, err := parsePublicKey(text, use)
	if err != nil {
		return zero, fmt.Errorf("handshake: public key file %s: %w", path, err)
	}
	k, ok := key.(K)
	if err := jwtcore.KeyFits(use.fitsAs, key); !ok || err != nil {
		return zero, fmt.Errorf("handshake: public key file %s: key type %T does not fit %s", path, key, use.alg)
	}
	return k, nil
}

func parsePublicKey(text string, use publicKeyUse) (crypto.PublicKey, error) {
	switch {
	case strings.HasPrefix(text, "-----BEGIN"):
		block, rest := pem.Decode([]byte(text))
		if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
			return nil, errors.New("want one PEM PUBLIC KEY block")
		}
		return x509.ParsePKIXPublicKey(block.Bytes)
	case strings.HasPrefix(text, "{"):
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON([]byte(text)); err != nil {
			return nil, err
		}
		if !jwk.Valid() || !jwk.IsPublic() {
			return nil, errors.New("JWK is not a valid public key")
		}
		if jwk.Algorithm != "" && jwk.Algorithm != use.alg {
			return nil, fmt.Errorf("JWK alg %q does not match configured %s", jwk.Algorithm, use.alg)
		}
		return jwk.Key, nil
	case strings.HasPrefix(text, paserkPublic):
		if !use.paserk {
			return nil, fmt.Errorf("PASERK k4.public does not fit %s", use.alg)
		}
		raw, err := decodeB64(strings.TrimPrefix(text, paserkPublic))
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, errors.New("malformed PASERK k4.public")
		}
		return ed25519.PublicKey(raw), nil
	default:
		return nil, errors.New("want PEM, JWK or PASERK k4.public")
	}
}
