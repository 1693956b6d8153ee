package handshake

import (
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"aidanwoods.dev/go-paseto"
	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/internal/jwtcore"
)

// DefaultOverlap is how long a rotated-out key still verifies (and stays in
// the JWKS) so that tokens and cached key sets in flight keep working.
const DefaultOverlap = 24 * time.Hour

// ringKinds are the key pairs every node holds: Ed25519 (EdDSA JWT and
// PASETO v4.public) and P-256 (ES256 JWT), by the JOSE alg each signs.
var ringKinds = []ringKind{
	{AlgEdDSA, func() (crypto.Signer, error) { _, k, err := ed25519.GenerateKey(rand.Reader); return k, err }},
	{AlgES256, func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
}

type ringKind struct {
	alg      string
	generate func() (crypto.Signer, error)
}

// Key states in KeyInfo.
const (
	KeyActive   = "active"   // signs new tokens
	KeyRetiring = "retiring" // verifies until RetiresAt, then is pruned
)

// KeyInfo describes one key of the ring; it never holds key material.
type KeyInfo struct {
	KID       string    `json:"kid"`
	Alg       string    `json:"alg"`
	Created   time.Time `json:"created_at"`
	State     string    `json:"state"`
	RetiresAt time.Time `json:"retires_at,omitzero"`
}

// KeyRing holds the node's own signing key pairs in a directory (0700,
// one file per key, 0600). It is safe for concurrent use.
type KeyRing struct {
	dir     string
	now     func() time.Time
	overlap time.Duration

	mu   sync.RWMutex
	keys []*ringKey // sorted by creation time
}

type ringKey struct {
	kid     string
	alg     string
	created time.Time
	retired time.Time // zero while active
	priv    crypto.Signer

	// Built once when the key loads, so that minting builds no key.
	jws jose.Signer                  // handshake JWTs: typ and kid fixed
	v4  paseto.V4AsymmetricSecretKey // PASETO v4.public, for an Ed25519 key
}

// newRingKey types a key for its uses.
func newRingKey(kid, alg string, created, retired time.Time, priv crypto.Signer) (*ringKey, error) {
	k := &ringKey{kid: kid, alg: alg, created: created, retired: retired, priv: priv}
	var err error
	if k.jws, err = newJWTSigner(jose.SignatureAlgorithm(alg), priv, kid); err != nil {
		return nil, fmt.Errorf("handshake: key %s: %w", kid, err)
	}
	if ed, ok := priv.(ed25519.PrivateKey); ok {
		if k.v4, err = paseto.NewV4AsymmetricSecretKeyFromEd25519(ed); err != nil {
			return nil, fmt.Errorf("handshake: key %s: %w", kid, err)
		}
	}
	return k, nil
}

// keyFile is the on-disk form of a ring key.
type keyFile struct {
	KID     string    `json:"kid"`
	Alg     string    `json:"alg"`
	Created time.Time `json:"created"`
	Retired time.Time `json:"retired,omitzero"`
	PKCS8   []byte    `json:"pkcs8"`
}

// LoadKeyRing loads the key ring in dir, creating the directory and an
// Ed25519 and a P-256 key pair on first use. It uses opts.Now and
// opts.KeyOverlap (default DefaultOverlap).
func LoadKeyRing(dir string, opts Options) (*KeyRing, error) {
	r := &KeyRing{dir: dir, now: opts.now(), overlap: cmp.Or(opts.KeyOverlap, DefaultOverlap)}
	if r.overlap < 0 {
		return nil, errors.New("handshake: key overlap must be positive")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("handshake: key ring: %w", err)
	}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload re-reads the directory, picking up a rotation made by another
// process, prunes keys past their overlap and creates missing key pairs.
func (r *KeyRing) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := checkPerm(r.dir, 0o700); err != nil {
		return err
	}
	names, err := filepath.Glob(filepath.Join(r.dir, "*.json"))
	if err != nil {
		return err
	}
	keys := make([]*ringKey, 0, len(names))
	for _, name := range names {
		k, err := readRingKey(name)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	r.keys = keys
	return r.settle()
}

// Rotate creates new key pairs, which sign from now on; the previous ones
// retire and keep verifying until the overlap window ends.
func (r *KeyRing) Rotate() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	retiring := r.active()
	for _, kind := range ringKinds {
		if err := r.generate(kind.alg, kind.generate); err != nil {
			return err
		}
	}
	for _, k := range retiring {
		k.retired = now
		if err := r.write(k); err != nil {
			return err
		}
	}
	return r.settle()
}

// List describes the keys still valid for verification, oldest first.
func (r *KeyRing) List() []KeyInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []KeyInfo
	for _, k := range r.live() {
		info := KeyInfo{KID: k.kid, Alg: k.alg, Created: k.created, State: KeyActive}
		if !k.retired.IsZero() {
			info.State, info.RetiresAt = KeyRetiring, k.retired.Add(r.overlap)
		}
		out = append(out, info)
	}
	return out
}

// JWKS returns the public keys still valid for verification as a JSON Web
// Key Set, each with kid, alg and "use":"sig".
func (r *KeyRing) JWKS() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range r.live() {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
	}
	out, err := json.Marshal(set)
	if err != nil {
		panic("handshake: marshal JWKS: " + err.Error()) // only typed keys built here
	}
	return out
}

// signer returns the newest active key for alg.
func (r *KeyRing) signer(alg string) (*ringKey, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range slices.Backward(r.keys) {
		if k.alg == alg && k.retired.IsZero() {
			return k, nil
		}
	}
	return nil, fmt.Errorf("handshake: key ring has no active %s key", alg)
}

// settle prunes expired keys and makes sure each algorithm has an active
// key. Callers hold mu.
func (r *KeyRing) settle() error {
	live := r.live()
	for _, k := range r.keys {
		if !slices.Contains(live, k) {
			if err := os.Remove(r.path(k.kid)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("handshake: prune key: %w", err)
			}
		}
	}
	r.keys = live
	for _, kind := range ringKinds {
		if !slices.ContainsFunc(r.keys, func(k *ringKey) bool { return k.alg == kind.alg && k.retired.IsZero() }) {
			if err := r.generate(kind.alg, kind.generate); err != nil {
				return err
			}
		}
	}
	slices.SortFunc(r.keys, func(a, b *ringKey) int {
		return cmp.Or(a.created.Compare(b.created), strings.Compare(a.alg, b.alg), strings.Compare(a.kid, b.kid))
	})
	return nil
}

// live returns the keys that still verify at the current time.
func (r *KeyRing) live() []*ringKey {
	now := r.now()
	var out []*ringKey
	for _, k := range r.keys {
		if k.retired.IsZero() || now.Before(k.retired.Add(r.overlap)) {
			out = append(out, k)
		}
	}
	return out
}

func (r *KeyRing) active() []*ringKey {
	var out []*ringKey
	for _, k := range r.keys {
		if k.retired.IsZero() {
			out = append(out, k)
		}
	}
	return out
}

func (r *KeyRing) generate(alg string, generate func() (crypto.Signer, error)) error {
	priv, err := generate()
	if err != nil {
		return fmt.Errorf("handshake: generate %s key: %w", alg, err)
	}
	kid, err := thumbprint(priv.Public())
	if err != nil {
		return err
	}
	k, err := newRingKey(kid, alg, r.now().UTC(), time.Time{}, priv)
	if err != nil {
		return err
	}
	if err := r.write(k); err != nil {
		return err
	}
	r.keys = append(r.keys, k)
	return nil
}

func (r *KeyRing) path(kid string) string { return filepath.Join(r.dir, kid+".json") }

// write stores a key atomically with mode 0600.
func (r *KeyRing) write(k *ringKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return fmt.Errorf("handshake: encode key: %w", err)
	}
	data, err := json.Marshal(keyFile{KID: k.kid, Alg: k.alg, Created: k.created, Retired: k.retired, PKCS8: der})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(r.dir, ".key-*") // CreateTemp uses mode 0600
	if err != nil {
		return fmt.Errorf("handshake: write key: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	if err := errors.Join(werr, serr, tmp.Close()); err != nil {
		return fmt.Errorf("handshake: write key: %w", err)
	}
	if err := os.Rename(tmp.Name(), r.path(k.kid)); err != nil {
		return fmt.Errorf("handshake: write key: %w", err)
	}
	return nil
}

// readRingKey reads one key file, refusing files others can read and keys
// whose kid or alg do not match the key itself.
func readRingKey(name string) (*ringKey, error) {
	if err := checkPerm(name, 0o600); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("handshake: read key: %w", err)
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("handshake: key file %s: malformed", name)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(f.PKCS8)
	if err != nil {
		return nil, fmt.Errorf("handshake: key file %s: malformed key", name)
	}
	priv, ok := parsed.(crypto.Signer)
	known := slices.ContainsFunc(ringKinds, func(k ringKind) bool { return k.alg == f.Alg })
	if !ok || !known || jwtcore.KeyFits(f.Alg, priv.Public()) != nil {
		return nil, fmt.Errorf("handshake: key file %s: key does not fit alg %q", name, f.Alg)
	}
	kid, err := thumbprint(priv.Public())
	if err != nil || kid != f.KID || filepath.Base(name) != kid+".json" {
		return nil, fmt.Errorf("handshake: key file %s: kid does not match key", name)
	}
	return newRingKey(kid, f.Alg, f.Created, f.Retired, priv)
}

// checkPerm refuses a key file or directory that group or others can access.
func checkPerm(name string, want os.FileMode) error {
	fi, err := os.Stat(name)
	if err != nil {
		return fmt.Errorf("handshake: key ring: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("handshake: %s has mode %#o, want %#o", name, fi.Mode().Perm(), want)
	}
	return nil
}

// thumbprint is the RFC 7638 JWK SHA-256 thumbprint, base64url: the kid.
func thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("handshake: thumbprint: %w", err)
	}
	return b64.EncodeToString(tp), nil
}
