package handshake

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"aidanwoods.dev/go-paseto"

	"github.com/tetherhq/tether"
)

// ReplayGuard records that a (issuer, jti) pair was used. Consume returns
// tether.ErrReplayed (possibly wrapped) if key was already consumed and has
// not yet expired; otherwise it records key until the
// given time. It must be atomic across every node sharing the store. Any
// other error means the guard could not decide, and the exchange fails
// closed.
type ReplayGuard interface {
	Consume(ctx context.Context, key string, until time.Time) error
}

// Verifier verifies handshake tokens addressed to one audience (this
// node's issuer identity) from the configured trusted issuers. It is safe
// for concurrent use.
type Verifier struct {
	audience string
	leeway   time.Duration
	now      func() time.Time
	jwt      map[string][]*jwtIssuer    // by issuer
	paseto   map[string][]*pasetoIssuer // by alg, i.e. purpose
}

// VerifierOption sets a dependency of NewVerifier.
type VerifierOption func(*verifierDeps)

type verifierDeps struct {
	now    func() time.Time
	client *http.Client
}

// WithNow injects the clock (default time.Now).
func WithNow(now func() time.Time) VerifierOption {
	return func(d *verifierDeps) { d.now = now }
}

// WithHTTPClient sets the client that fetches jwks_url key sets (default:
// a client with a 5 s timeout).
func WithHTTPClient(c *http.Client) VerifierOption {
	return func(d *verifierDeps) { d.client = c }
}

// NewVerifier validates cfg's trusted issuers and loads their keys.
// audience is this node's identity (the top-level "issuer" setting): the
// only aud it accepts. Relative key files resolve against baseDir.
func NewVerifier(audience string, cfg Config, baseDir string, opts ...VerifierOption) (*Verifier, error) {
	if audience == "" {
		return nil, errors.New("handshake: verifier needs an audience")
	}
	if _, err := cfg.ttl(); err != nil {
		return nil, err
	}
	leeway, err := cfg.leeway()
	if err != nil {
		return nil, err
	}
	deps := verifierDeps{now: time.Now, client: &http.Client{Timeout: jwksTimeout}}
	for _, o := range opts {
		o(&deps)
	}
	v := &Verifier{
		audience: audience, leeway: leeway, now: deps.now,
		jwt: make(map[string][]*jwtIssuer), paseto: make(map[string][]*pasetoIssuer),
	}
	seen := make(map[[2]string]bool)
	for _, s := range cfg.TrustedIssuers {
		if err := s.checkSource(); err != nil {
			return nil, err
		}
		if seen[[2]string{s.Issuer, s.Alg}] {
			return nil, fmt.Errorf("handshake: trusted issuer %s listed twice for %s", s.Issuer, s.Alg)
		}
		seen[[2]string{s.Issuer, s.Alg}] = true
		if err := v.add(s, baseDir, deps); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// add loads one trusted issuer's key, typed for its pinned alg.
func (v *Verifier) add(s IssuerSpec, baseDir string, deps verifierDeps) error {
	switch s.Alg {
	case AlgHS256:
		keys, err := loadSharedKeys(resolve(baseDir, s.KeyFile), s.Alg)
		if err != nil {
			return err
		}
		e := &jwtIssuer{issuer: s.Issuer, prefix: s.subjectPrefix(), alg: s.Alg}
		for _, k := range keys {
			e.static = append(e.static, k)
		}
		v.jwt[s.Issuer] = append(v.jwt[s.Issuer], e)
	case AlgEdDSA, AlgES256:
		e := &jwtIssuer{issuer: s.Issuer, prefix: s.subjectPrefix(), alg: s.Alg}
		if s.JWKSURL != "" {
			e.jwks = newJWKSCache(s.JWKSURL, s.Alg, deps.client, deps.now)
		} else {
			key, err := loadPublicKey(resolve(baseDir, s.PublicKeyFile), s.Alg)
			if err != nil {
				return err
			}
			e.static = []any{key}
		}
		v.jwt[s.Issuer] = append(v.jwt[s.Issuer], e)
	case AlgV4Public:
		pub, err := loadPublicKey(resolve(baseDir, s.PublicKeyFile), s.Alg)
		if err != nil {
			return err
		}
		key, err := paseto.NewV4AsymmetricPublicKeyFromEd25519(pub.(ed25519.PublicKey))
		if err != nil {
			return err
		}
		v.paseto[s.Alg] = append(v.paseto[s.Alg], &pasetoIssuer{issuer: s.Issuer, prefix: s.subjectPrefix(), public: key})
	case AlgV4Local:
		raws, err := loadSharedKeys(resolve(baseDir, s.KeyFile), s.Alg)
		if err != nil {
			return err
		}
		for _, raw := range raws { // each is tried in turn, like issuers of one purpose
			key, err := paseto.V4SymmetricKeyFromBytes(raw)
			if err != nil {
				return err
			}
			v.paseto[s.Alg] = append(v.paseto[s.Alg], &pasetoIssuer{issuer: s.Issuer, prefix: s.subjectPrefix(), local: key})
		}
	}
	return nil
}

// Verify checks raw completely (size, strict framing, pinned algorithm and
// key, type, claims, time window) and returns its claims. It does not
// consume the token: use Exchange for that. Every rejection matches
// ErrInvalid; see Reason.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if len(raw) == 0 || len(raw) > MaxTokenSize {
		return nil, reject(ErrMalformed, "empty or oversize token")
	}
	for i := 0; i < len(raw); i++ {
		if !isB64Char(raw[i]) && raw[i] != '.' {
			return nil, reject(ErrMalformed, "character outside base64url and '.'")
		}
	}
	now := v.now()
	switch {
	case strings.HasPrefix(raw, pasetoHeader(AlgV4Public)):
		return v.verifyPASETO(raw, AlgV4Public, now)
	case strings.HasPrefix(raw, pasetoHeader(AlgV4Local)):
		return v.verifyPASETO(raw, AlgV4Local, now)
	default:
		return v.verifyJWT(ctx, raw, now)
	}
}

// Exchange verifies raw and consumes it in guard, so that it is accepted
// once across every node sharing the guard's store. The consumed key comes
// from (iss, jti), not from the token's bytes, so a re-encoded copy of a
// used token is a replay too. It is remembered until exp + leeway, after
// which Verify refuses the token anyway.
func (v *Verifier) Exchange(ctx context.Context, raw string, guard ReplayGuard) (*Claims, error) {
	if guard == nil {
		return nil, errors.New("handshake: Exchange needs a ReplayGuard")
	}
	c, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	// Remembered past the last moment Verify could accept the token, with
	// MaxLeeway more in case the store's clock runs ahead of this node's.
	if err := guard.Consume(ctx, replayKey(c.Issuer, c.ID), c.ExpiresAt.Add(v.leeway+MaxLeeway)); err != nil {
		if errors.Is(err, tether.ErrReplayed) {
			return nil, ErrReplayed
		}
		return nil, fmt.Errorf("handshake: replay guard: %w", err)
	}
	return c, nil
}

// replayKey names a token in the replay guard: hex SHA-256 of iss, NUL, jti.
func replayKey(issuer, jti string) string {
	h := sha256.Sum256([]byte(issuer + "\x00" + jti))
	return hex.EncodeToString(h[:])
}
