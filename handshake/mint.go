package handshake

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"
)

// Minter mints handshake tokens for the audiences configured for this node.
// It is safe for concurrent use.
type Minter struct {
	issuer    string
	ttl       time.Duration
	now       func() time.Time
	audiences map[string]audience
}

// audience is one audience's pinned suite and the signer it loaded once.
type audience struct {
	suite  suite
	signer tokenSigner
}

// NewMinter validates cfg's audiences and loads their keys. issuer is the
// node's identity (the top-level "issuer" setting); ring holds the node's
// own key pairs and may be nil when no audience uses EdDSA, ES256 or
// v4.public; relative key files resolve against baseDir.
func NewMinter(issuer string, cfg Config, ring *KeyRing, baseDir string, opts Options) (*Minter, error) {
	if issuer == "" {
		return nil, errors.New("handshake: minter needs an issuer")
	}
	ttl, err := cfg.ttl()
	if err != nil {
		return nil, err
	}
	m := &Minter{issuer: issuer, ttl: ttl, now: opts.now(), audiences: make(map[string]audience)}
	for aud, spec := range cfg.Audiences {
		if aud == "" {
			return nil, errors.New("handshake: empty audience name")
		}
		st, err := lookupSuite(spec.Format, spec.Alg)
		if err != nil {
			return nil, fmt.Errorf("audience %s: %w", aud, err)
		}
		switch {
		case st.sharedKey() && spec.KeyFile == "":
			return nil, fmt.Errorf("handshake: audience %s (%s): key_file required", aud, spec.Alg)
		case !st.sharedKey() && spec.KeyFile != "":
			return nil, fmt.Errorf("handshake: audience %s (%s): signs with the node's key ring, not key_file", aud, spec.Alg)
		case !st.sharedKey() && ring == nil:
			return nil, fmt.Errorf("handshake: audience %s (%s): needs the node's key ring", aud, spec.Alg)
		}
		signer, err := st.signer(resolve(baseDir, spec.KeyFile), ring)
		if err != nil {
			return nil, err
		}
		m.audiences[aud] = audience{suite: st, signer: signer}
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
// a revocation at the issuer can reach the session the receiver makes.
func WithSessionID(id string) MintOption {
	return func(c *Claims) { c.SessionID = id }
}

// Mint returns a new single-use token for audience about subject, its
// format ("jwt" or "paseto") and its expiry. An audience that is not
// configured gives ErrUnknownAudience.
func (m *Minter) Mint(audience, subject string, opts ...MintOption) (token, format string, expiresAt time.Time, err error) {
	a, ok := m.audiences[audience]
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
	if len(c.SessionID) > maxClaimString {
		return "", "", time.Time{}, errors.New("handshake: session ID too long")
	}
	// A login stamped by a node whose clock runs a little ahead must not
	// make minting fail: the token says "at the latest, now".
	if c.AuthTime.After(iat) {
		c.AuthTime = iat
	}
	if token, err = a.signer.sign(c); err != nil {
		return "", "", time.Time{}, fmt.Errorf("handshake: mint: %w", err)
	}
	return token, a.suite.format(), c.ExpiresAt, nil
}
