package tether

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"time"

	"github.com/tetherhq/tether/dbsc"
	"github.com/tetherhq/tether/dpop"
)

// ErrRefreshRequired: the token is of a DBSC-bound session whose cookie has
// outlived Config.DBSCCookieLifetime since the last refresh signed by the
// session's key. It matches ErrInvalidToken (a 401 to the caller); a browser
// that holds the key refreshes on its own.
var ErrRefreshRequired = errors.New("device-bound session needs a refresh signed by its key")

// BindDevice binds the session that rawToken stands for to a browser's DBSC
// key (jkt, its RFC 7638 thumbprint), once the caller has verified the
// browser's registration proof. The bound session is a new one (new ID and
// token, same subject, sign-in facts and absolute expiry) and the unbound
// one ends, so that no copy of the old, long-lived token outlives the
// binding. The new token is accepted for Config.DBSCCookieLifetime; after
// that, only RefreshDevice renews it.
//
// A session already bound (by DPoP or DBSC) is ErrInvalidToken: a binding
// is never moved to another key.
func (m *Manager) BindDevice(ctx context.Context, rawToken, jkt string) (string, *Session, error) {
	if !dpop.ValidThumbprint(jkt) {
		return "", nil, BadInput("a key thumbprint is 43 characters of base64url (RFC 7638, SHA-256)")
	}
	old, err := m.Validate(ctx, rawToken)
	if err != nil {
		return "", nil, err
	}
	if old.DeviceBound() {
		return "", nil, fmt.Errorf("%w: the session is already bound to a key", ErrInvalidToken)
	}
	now := m.now()
	// The bound session ends when the old one would have.
	remaining := old.ExpiresAt.Sub(now).Truncate(time.Second)
	if remaining < MinLifetime {
		return "", nil, fmt.Errorf("%w: the session is about to expire", ErrInvalidToken)
	}
	p := CreateParams{
		Subject: old.Subject, Lifetime: remaining, IdleTimeout: old.IdleExpiresAt.Sub(old.LastSeenAt),
		Metadata: old.Metadata, AuthTime: old.AuthenticatedAt(), AuthMethod: old.AuthMethod,
		dbsc: jkt, replaces: old.ID,
	}
	if old.Origin != nil {
		p.Origin = *old.Origin // so that the origin's revocation or logout still ends it
	}
	token, sess, err := m.create(ctx, p, nil)
	if err != nil {
		return "", nil, err
	}
	if err := m.revoke(ctx, old.ID, map[string]any{"reason": "dbsc_bound", "replaced_by": sess.ID}); err != nil {
		// Never leave both alive: the unbound token is the one a thief would
		// use. And if the old session ended meanwhile (a logout, a
		// revocation between the check above and the create), its copy ends
		// with it: a binding never outlives what it replaced.
		if err2 := m.revoke(ctx, sess.ID, map[string]any{"reason": "dbsc_bind_failed"}); err2 != nil {
			m.log.Error("tether: a DBSC binding could not end either session", "session_id", sess.ID, "err", err2)
		}
		if errors.Is(err, ErrNotFound) {
			return "", nil, fmt.Errorf("%w: the session ended while it was being bound", ErrInvalidToken)
		}
		return "", nil, err
	}
	return token, sess, nil
}

// DeviceChallenge returns a challenge for a refresh of the DBSC-bound session
// id (a Secure-Session-Challenge): a MAC over its issue time keyed with the
// hash of the session's current secret, which only the store and the token's
// holder know, and which every refresh rotates. ErrNotFound for a session
// that is not live or not DBSC-bound.
func (m *Manager) DeviceChallenge(ctx context.Context, id string) (string, error) {
	rec, err := m.deviceRecord(ctx, id)
	if err != nil {
		return "", err
	}
	return dbsc.NewChallenge(rec.SecretHash[:], rec.ID, m.now()), nil
}

// RefreshDevice renews the DBSC-bound session id for a browser that proved
// possession of the key with thumbprint jkt over challenge (the caller
// verified the proof): it checks the challenge (issued by DeviceChallenge for
// this session's current secret, within dbsc.ChallengeLifetime, and never
// used before on any node), slides the session's idle expiry, and rotates
// its token, so that the new token is accepted for another
// Config.DBSCCookieLifetime and the old one, and any copy of it, dies at once.
//
// A stale, forged or used challenge is dbsc.ErrChallenge (answer with a new
// one); another key or a session that is not live is ErrInvalidToken.
func (m *Manager) RefreshDevice(ctx context.Context, id, jkt, challenge string) (string, *Session, error) {
	rec, err := m.deviceRecord(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return "", nil, fmt.Errorf("%w: no live device-bound session", ErrInvalidToken)
	}
	if err != nil {
		return "", nil, err
	}
	if !hmac.Equal([]byte(rec.DBSC), []byte(jkt)) {
		return "", nil, fmt.Errorf("%w: %w", ErrInvalidToken, dbsc.ErrWrongKey)
	}
	now := m.now()
	if err := dbsc.CheckChallenge(rec.SecretHash[:], rec.ID, challenge, now); err != nil {
		return "", nil, err
	}
	if err := m.Consume(ctx, "dbsc:"+challenge, now.Add(dbsc.ChallengeLifetime+time.Minute)); err != nil {
		if errors.Is(err, ErrReplayed) {
			return "", nil, dbsc.ErrChallenge
		}
		return "", nil, err
	}
	roles, err := m.store.Roles(ctx, rec.Subject)
	if err != nil {
		return "", nil, fmt.Errorf("tether: read roles: %w", err)
	}
	// Slide first, then rotate: a request with the new token, on any node,
	// then always finds the new refresh time.
	seen := now.UTC().Truncate(time.Microsecond)
	idle := minTime(seen.Add(rec.IdleTimeout), rec.ExpiresAt)
	defer m.invalidateSession(rec.ID)
	if err := m.store.Touch(ctx, rec.ID, seen, idle); err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", nil, fmt.Errorf("%w: revoked meanwhile", ErrInvalidToken)
		}
		return "", nil, fmt.Errorf("tether: touch session: %w", err)
	}
	token, fresh := newToken(rec.ID)
	ev := m.newEvent(ctx, EventSessionRotated, rec.Subject, rec.ID, map[string]any{"reason": "dbsc_refresh"})
	if err := m.store.Rotate(ctx, rec.ID, rec.SecretHash, fresh.hash, ev); err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", nil, fmt.Errorf("%w: rotated or revoked meanwhile", ErrInvalidToken)
		}
		return "", nil, fmt.Errorf("tether: rotate session: %w", err)
	}
	rec.SecretHash, rec.LastSeenAt, rec.IdleExpiresAt = fresh.hash, seen, idle
	return token, rec.session(roles), nil
}

// DBSCCookieLifetime is how long a DBSC-bound session's token is accepted
// after each refresh: the Max-Age its cookie is set with.
func (m *Manager) DBSCCookieLifetime() time.Duration { return m.cfg.DBSCCookieLifetime }

// Now is the Manager's clock (Config.Now), for handlers whose own checks
// must agree with it.
func (m *Manager) Now() time.Time { return m.now() }

// deviceRecord reads the live, DBSC-bound, non-reserved record id from the
// store: a refresh decides on the store, never the cache.
func (m *Manager) deviceRecord(ctx context.Context, id string) (*Record, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	rec, err := m.store.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tether: get session: %w", err)
	}
	if !rec.Live(m.now()) || rec.DBSC == "" || IsReservedSubject(rec.Subject) {
		return nil, ErrNotFound
	}
	return rec, nil
}
