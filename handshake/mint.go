package handshake

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"aidanwoods.dev/go-paseto"
)

// Minter mints handshake tokens for the audiences configured for this node.
// It is safe for concurrent use.
type Minter struct {
	issuer    string
	ttl       time.Duration
	now       func() time.Time
	audiences map[string]*mintSpec
}

// mintSpec is one audience's pinned format, alg and key: a shared key or
// the node's key ring (whose active key is read at each mint, so rotation
// takes effect at once).
type mintSpec struct {
	format string
	alg    string
	shared []byte
	ring   *KeyRing
}

// NewMinter validates cfg's audiences and loads their keys. issuer is the
// node's identity (the top-level "issuer" setting); ring holds the node's
// own key pairs and may be nil when no audience uses EdDSA, ES256 or
// v4.public; relative key files resolve against baseDir; now may be nil.
func NewMinter(issuer string, cfg Config, ring *KeyRing, baseDir string, now func() time.Time) (*Minter, error) {
	if issuer == "" {
		return nil, errors.New("handshake: minter needs an issuer")
	}
	ttl, err := cfg.ttl()
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	m := &Minter{issuer: issuer, ttl: ttl, now: now, audiences: make(map[string]*mintSpec)}
	for aud, spec := range cfg.Audiences {
		if aud == "" {
			return nil, errors.New("handshake: empty audience name")
		}
		if err := checkAlg(spec.Format, spec.Alg); err != nil {
			return nil, fmt.Errorf("audience %s: %w", aud, err)
		}
		ms := &mintSpec{format: spec.Format, alg: spec.Alg}
		switch {
		case isShared(spec.Alg):
			if spec.KeyFile == "" {
				return nil, fmt.Errorf("handshake: audience %s (%s): key_file required", aud, spec.Alg)
			}
			if ms.shared, err = loadSharedKey(resolve(baseDir, spec.KeyFile), spec.Alg); err != nil {
				return nil, err
			}
		case spec.KeyFile != "":
			return nil, fmt.Errorf("handshake: audience %s (%s): signs with the node's key ring, not key_file", aud, spec.Alg)
		case ring == nil:
			return nil, fmt.Errorf("handshake: audience %s (%s): needs the node's key ring", aud, spec.Alg)
		default:
			ms.ring = ring
		}
		m.audiences[aud] = ms
	}
	return m, nil
}

// MintOption is a per-token choice.
type MintOption func(*Claims)

// WithAuthTime puts the time the subject authenticated into the token
// (auth_time), so that the receiver's session keeps the original login time.
func WithAuthTime(t time.Time) MintOption {
	return func(c *Claims) { c.AuthTime = t.UTC().Truncate(time.Second) }
}

// WithSessionID puts the minting session's ID into the token (sid), so that
// the receiver can end the session it makes when this one is revoked.
func WithSessionID(id string) MintOption {
	return func(c *Claims) { c.SessionID = id }
}

// Mint returns a new single-use token for audience about subject, its
// format ("jwt" or "paseto") and its expiry. An audience that is not
// configured gives ErrUnknownAudience.
func (m *Minter) Mint(audience, subject string, opts ...MintOption) (token, format string, expiresAt time.Time, err error) {
	spec, ok := m.audiences[audience]
	if !ok {
		return "", "", time.Time{}, ErrUnknownAudience
	}
	if subject == "" || len(subject) > maxClaimString {
		return "", "", time.Time{}, errors.New("handshake: subject empty or too long")
	}
	iat := m.now().UTC().Truncate(time.Second) // both formats carry whole seconds
	c := &Claims{
		Issuer: m.issuer, Subject: subject, Audience: audience,
		ID: rand.Text(), IssuedAt: iat, ExpiresAt: iat.Add(m.ttl),
	}
	for _, o := range opts {
		o(c)
	}
	// A login stamped by a node whose clock runs a little ahead must not
	// make minting fail: the token says "at the latest, now".
	if c.AuthTime.After(iat) {
		c.AuthTime = iat
	}
	if token, err = spec.sign(c); err != nil {
		return "", "", time.Time{}, fmt.Errorf("handshake: mint: %w", err)
	}
	return token, spec.format, c.ExpiresAt, nil
}

func (s *mintSpec) sign(c *Claims) (string, error) {
	switch s.alg {
	case AlgHS256:
		return signJWT(s.alg, s.shared, "", c)
	case AlgV4Local:
		key, err := paseto.V4SymmetricKeyFromBytes(s.shared)
		if err != nil {
			return "", err
		}
		t := pasetoToken(c)
		return t.V4Encrypt(key, implicit), nil
	}
	ringAlg := s.alg
	if s.alg == AlgV4Public {
		ringAlg = AlgEdDSA // the node's Ed25519 key serves both
	}
	kid, priv, err := s.ring.signer(ringAlg)
	if err != nil {
		return "", err
	}
	if s.alg != AlgV4Public {
		return signJWT(s.alg, priv, kid, c)
	}
	edPriv, ok := priv.(ed25519.PrivateKey)
	if !ok {
		return "", errors.New("ring Ed25519 key has the wrong type")
	}
	key, err := paseto.NewV4AsymmetricSecretKeyFromEd25519(edPriv)
	if err != nil {
		return "", err
	}
	t := pasetoToken(c)
	return t.V4Sign(key, implicit), nil
}
