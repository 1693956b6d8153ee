package tether

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Validator validates session tokens: a *Manager in-process, or a client
// that asks a Tether server (package remote). Validate returns the live
// session, an error wrapping ErrInvalidToken for anything else, or one
// wrapping ErrUnavailable when it cannot say.
type Validator interface {
	Validate(ctx context.Context, rawToken string) (*Session, error)
}

var _ Validator = (*Manager)(nil)

// ValidationCache is the Manager's cache for a Validator that reads sessions
// from elsewhere (package remote reads them from a server by introspection):
// the same staleness bound, the same guard against a fill racing an
// invalidation, and it serves nothing until its change channel is up, while
// it is down, or after a failed read until a read succeeds.
type ValidationCache struct {
	c   *cache // nil: caching disabled
	now func() time.Time
}

// CacheConfig configures a ValidationCache. Zero fields take the Manager's
// defaults.
type CacheConfig struct {
	// MaxStaleness bounds how long a session may be served without reading
	// it again. Default 1s; negative disables the cache.
	MaxStaleness time.Duration
	// Size caps the number of cached sessions. Default 100,000.
	Size int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// NewValidationCache returns a cache whose change channel is down: feed it
// the channel's changes with Apply, beginning with ChannelRestored.
func NewValidationCache(cfg CacheConfig) *ValidationCache {
	v := &ValidationCache{now: cfg.Now}
	if v.now == nil {
		v.now = time.Now
	}
	if cfg.MaxStaleness == 0 {
		cfg.MaxStaleness = time.Second
	}
	if cfg.Size <= 0 {
		cfg.Size = 100_000
	}
	if cfg.MaxStaleness > 0 {
		v.c = newCache(cfg.MaxStaleness, cfg.Size, false)
	}
	return v
}

// Apply drops what a change makes stale; ChannelLost stops all caching until
// ChannelRestored.
func (v *ValidationCache) Apply(c Change) {
	if v.c != nil {
		v.c.apply(c)
	}
}

// Validate answers from the cache when it holds a fresh entry for rawToken,
// and otherwise calls read, which must return the session rawToken stands
// for with Validator's errors. A malformed token is refused without calling
// read.
func (v *ValidationCache) Validate(ctx context.Context, rawToken string, read func(ctx context.Context, rawToken string) (*Session, error)) (*Session, error) {
	pt, err := parseToken(rawToken)
	if err != nil {
		return nil, err
	}
	now := v.now()
	var seq uint64
	if v.c != nil {
		e, roles, ok, s := v.c.get(pt.id, now)
		if ok && pt.matches(e.hash) && e.live(now) {
			return e.session(roles), nil
		}
		seq = s
	}
	sess, err := read(ctx, rawToken)
	switch {
	case errors.Is(err, ErrInvalidToken):
		v.storeOK()
		return nil, err
	case err != nil:
		if v.c != nil && !errors.Is(ctx.Err(), context.Canceled) {
			v.c.storeFailed()
		}
		return nil, err
	case sess == nil || sess.ID != pt.id:
		return nil, fmt.Errorf("%w: the validator answered for another session", ErrUnavailable)
	}
	v.storeOK()
	if v.c != nil {
		// The reader vouched for this token, so its secret's hash is the
		// session's: the cached entry admits this token and no other.
		rec := &Record{
			ID: sess.ID, SecretHash: pt.hash, Subject: sess.Subject,
			CreatedAt: sess.CreatedAt, LastSeenAt: sess.LastSeenAt,
			ExpiresAt: sess.ExpiresAt, IdleExpiresAt: sess.IdleExpiresAt,
			Metadata: sess.Metadata, AuthTime: sess.AuthTime, AuthMethod: sess.AuthMethod,
			JKT: sess.JKT,
		}
		v.c.fill(seq, newEntry(rec, now), sess.Roles)
	}
	return sess, nil
}

func (v *ValidationCache) storeOK() {
	if v.c != nil {
		v.c.storeOK()
	}
}

// AuthenticateWith is Manager.Authenticate for any Validator: the token from
// the Bearer header or the session cookie, with the CSRF check for the
// cookie. A Manager authenticates as Manager.Authenticate does, DPoP proofs
// included. Any other Validator sees no proof, so a DPoP-bound session, or a
// token presented as DPoP, is refused (ErrInvalidToken): the binding is never
// skipped.
func AuthenticateWith(v Validator, r *http.Request) (*Session, string, error) {
	if m, ok := v.(*Manager); ok {
		return m.Authenticate(r)
	}
	token, dpopScheme, fromCookie := credentials(r, Cookies{}) // host-only cookie: no Manager here to name a domain
	switch {
	case token == "":
		return nil, "", fmt.Errorf("%w: no token", ErrInvalidToken)
	case dpopScheme:
		return nil, "", fmt.Errorf("%w: DPoP proofs are checked by a Manager only", ErrInvalidToken)
	}
	if fromCookie {
		if err := CheckCSRF(r); err != nil {
			return nil, "", err
		}
	}
	s, err := v.Validate(r.Context(), token)
	if err != nil {
		return nil, "", err
	}
	if s.JKT != "" {
		return nil, "", fmt.Errorf("%w: a DPoP-bound session presented without DPoP", ErrInvalidToken)
	}
	return s, token, nil
}

// RequireSession is Manager.Middleware for any Validator: only requests with
// a live session (see AuthenticateWith) reach next, which finds it with
// FromContext; others get what Manager.Middleware answers them.
func RequireSession(v Validator) func(http.Handler) http.Handler {
	if m, ok := v.(*Manager); ok {
		return m.Middleware
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, _, err := AuthenticateWith(v, r)
			if err != nil {
				WriteAuthError(w, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), s)))
		})
	}
}
