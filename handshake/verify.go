package handshake

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/jwtcore"
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
	jwt      map[string][]*trust // JWT issuers, by issuer
	paseto   map[string][]*trust // PASETO issuers, by purpose header ("v4.local.")
}

// trust is one trusted issuer with its pinned suite and the keys that
// suite loaded once.
type trust struct {
	issuer   string
	prefix   string // subject prefix
	suite    suite
	verifier tokenVerifier
}

// NewVerifier validates cfg's trusted issuers and loads their keys.
// audience is this node's identity (the top-level "issuer" setting): the
// only aud it accepts. Relative key files resolve against baseDir.
func NewVerifier(audience string, cfg Config, baseDir string, opts Options) (*Verifier, error) {
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
	v := &Verifier{
		audience: audience, leeway: leeway, now: opts.now(),
		jwt: make(map[string][]*trust), paseto: make(map[string][]*trust),
	}
	sets := make(map[string]*jwtcore.JWKS) // one per URL, so the rate limit is per issuer
	seen := make(map[[2]string]bool)
	for _, s := range cfg.TrustedIssuers {
		st, err := s.checkSource()
		if err != nil {
			return nil, err
		}
		if seen[[2]string{s.Issuer, s.Alg}] {
			return nil, fmt.Errorf("handshake: trusted issuer %s listed twice for %s", s.Issuer, s.Alg)
		}
		seen[[2]string{s.Issuer, s.Alg}] = true
		var set *jwtcore.JWKS
		if s.JWKSURL != "" {
			if set = sets[s.JWKSURL]; set == nil {
				set = jwtcore.NewJWKS(s.JWKSURL, opts.httpClient(), v.now)
				sets[s.JWKSURL] = set
			}
		}
		keyFile := resolve(baseDir, cmp.Or(s.KeyFile, s.PublicKeyFile)) // checkSource allows at most one
		tv, err := st.verifier(keyFile, set)
		if err != nil {
			return nil, err
		}
		t := &trust{issuer: s.Issuer, prefix: s.subjectPrefix(st), suite: st, verifier: tv}
		if st.format() == FormatJWT {
			v.jwt[s.Issuer] = append(v.jwt[s.Issuer], t)
		} else {
			v.paseto[st.alg()+"."] = append(v.paseto[st.alg()+"."], t)
		}
	}
	return v, nil
}

// Verify checks raw completely (size, strict framing, pinned algorithm and
// key, type, claims, time window) and returns its claims. It does not
// consume the token: use Exchange for that. Every rejection matches
// ErrInvalid; see Reason.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	c, err := v.verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return c, nil
}

func (v *Verifier) verify(ctx context.Context, raw string) (*Claims, error) {
	if len(raw) == 0 || len(raw) > MaxTokenSize {
		return nil, reject(ErrMalformed, "empty or oversize token")
	}
	for i := 0; i < len(raw); i++ {
		if !jwtcore.IsB64Char(raw[i]) && raw[i] != '.' {
			return nil, reject(ErrMalformed, "character outside base64url and '.'")
		}
	}
	now := v.now()
	// A PASETO token states its purpose up front. That only picks which
	// configured issuers of that purpose to try, each with its own pinned
	// suite and keys; anything else is parsed as a JWT.
	for _, st := range suites {
		if st.format() == FormatPASETO && strings.HasPrefix(raw, st.alg()+".") {
			return v.verifyPASETO(ctx, raw, v.paseto[st.alg()+"."], now)
		}
	}
	return v.verifyJWT(ctx, raw, now)
}

// verifyJWT selects the trusted issuer that the unverified iss names and,
// among its pinned suites, the one whose alg the header states; that
// suite's policy then pins the alg again and verifies.
func (v *Verifier) verifyJWT(ctx context.Context, raw string, now time.Time) (*Claims, error) {
	u, err := jwtcore.Parse(raw)
	if err != nil {
		return nil, err
	}
	iss, err := peekIssuer(u.Payload)
	if err != nil {
		return nil, err
	}
	trusts := v.jwt[iss]
	if len(trusts) == 0 {
		return nil, reject(ErrUnknownIssuer, "no JWT issuer configured")
	}
	for _, t := range trusts {
		if t.suite.alg() == u.Header.Alg {
			return t.verifier.verify(ctx, &token{raw: raw, jws: u}, v.check(t, now))
		}
	}
	return nil, reject(ErrAlgorithm, "alg is not the issuer's pinned alg")
}

// verifyPASETO tries each issuer configured for the token's purpose; the
// verified iss must name the issuer whose key verified it.
func (v *Verifier) verifyPASETO(ctx context.Context, raw string, trusts []*trust, now time.Time) (*Claims, error) {
	if len(trusts) == 0 {
		return nil, reject(ErrUnknownIssuer, "no issuer configured for this PASETO purpose")
	}
	wrongIssuer := false
	tok := &token{raw: raw}
	for _, t := range trusts {
		c, err := t.verifier.verify(ctx, tok, v.check(t, now))
		switch {
		case errors.Is(err, ErrSignature):
			continue
		case errors.Is(err, errOtherIssuer):
			wrongIssuer = true
			continue
		}
		return c, err
	}
	if wrongIssuer {
		return nil, reject(ErrUnknownIssuer, "verified iss is not the key's issuer")
	}
	return nil, reject(ErrSignature, "PASETO does not verify")
}

// errOtherIssuer is the shared check's refusal of a token whose iss is not
// the issuer whose keys verify it.
var errOtherIssuer = jwtcore.Reject(ErrUnknownIssuer, "iss is not the key's issuer")

// check is the shared claims check, run once for every token whatever its
// suite: strict claims, iss equal to the trusted issuer, aud, the time
// window with leeway, lifetime, auth_time, sid and a usable subject.
func (v *Verifier) check(t *trust, now time.Time) claimsCheck {
	return func(payload []byte, te timeEncoding) (*Claims, error) {
		c, err := parseClaims(payload, te)
		if err != nil {
			return nil, err
		}
		if c.Issuer != t.issuer {
			return nil, errOtherIssuer
		}
		if err := c.check(now, v.leeway, v.audience); err != nil {
			return nil, err
		}
		if err := c.localize(t.prefix); err != nil {
			return nil, err
		}
		return c, nil
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
			return nil, fmt.Errorf("handshake: %w", ErrReplayed)
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
