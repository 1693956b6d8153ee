package tether

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"
)

// ReplayGuard records that a handshake token was used. Consume returns an
// error matching ErrReplayed if key was consumed before and has not expired;
// otherwise it records key until the given time. Any other error means the
// guard could not decide, and the exchange fails closed. A Manager is one,
// backed by its store, so every node sharing the store accepts a token once.
type ReplayGuard interface {
	Consume(ctx context.Context, key string, until time.Time) error
}

// Handshake is what a verified, consumed handshake token vouches for.
type Handshake struct {
	Issuer   string    // iss: the service that vouched for the subject
	Subject  string    // the subject as this node names it (after the issuer's subject prefix)
	ID       string    // jti
	IssuedAt time.Time // iat
	AuthTime time.Time // when the subject logged in at the issuer; zero when not given

	// IssuerSubject is sub as the issuer names it (Subject may carry a
	// prefix); SessionID is the minting session's ID (sid), empty when the
	// token has none. With Issuer they are the new session's Origin.
	IssuerSubject string
	SessionID     string
}

// HandshakeVerifier checks handshake tokens. *handshake.Verifier is one.
type HandshakeVerifier interface {
	// ConsumeHandshake verifies raw completely and consumes it once in
	// guard. Every refusal of the token matches ErrInvalidToken; any other
	// error is an operational failure (the guard's store is down, say).
	ConsumeHandshake(ctx context.Context, raw string, guard ReplayGuard) (*Handshake, error)
}

// ExchangeParams are the facts an exchange adds to the session it starts.
type ExchangeParams struct {
	// Metadata describes the client (ip, user_agent…); the issuer that
	// vouched is added as "handshake_issuer".
	Metadata map[string]string
	// Replaces is the token of a session the client already holds (a
	// browser's cookie), or empty. Once the exchange succeeds it is revoked:
	// a new login replaces the old one rather than living beside it, so a
	// session planted in the browser beforehand is worth nothing (fixation).
	Replaces string
	// JKT binds the new session to a DPoP key (RFC 9449): the thumbprint of
	// the proof the exchange request came with. Empty: a bearer session.
	JKT string
}

// AuthMethodHandshake is the AuthMethod of sessions that Exchange starts.
const AuthMethodHandshake = "handshake"

// Exchange trades a handshake token for a local opaque session, once: it
// verifies raw with v, consumes its (issuer, jti) in the Manager's store, and
// starts a session for the subject it names, keeping the login time at the
// issuer (or else the token's issue time) and the issuer. It is what a Go
// service needs to receive handshakes without a Tether server.
//
// Every refusal (invalid, expired, replayed, a subject this node cannot
// hold, an origin revoked since it was minted: GuardOrigin) matches
// ErrInvalidToken and deserves one undifferentiated 401; any other error
// means the store could not decide (503).
func (m *Manager) Exchange(ctx context.Context, v HandshakeVerifier, raw string, p ExchangeParams) (string, *Session, error) {
	if v == nil {
		return "", nil, fmt.Errorf("%w: this node trusts no handshake issuer", ErrInvalidToken)
	}
	h, err := v.ConsumeHandshake(ctx, raw, m)
	if err == nil {
		if e := CheckSubject(h.Subject); e != nil {
			err = fmt.Errorf("%w: %w", ErrInvalidToken, e)
		}
	}
	if err != nil {
		if errors.Is(err, ErrInvalidToken) {
			m.recordRefusal(ctx, err)
		}
		return "", nil, err
	}
	authTime := h.AuthTime
	if authTime.IsZero() {
		authTime = h.IssuedAt
	}
	md := maps.Clone(p.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	md["handshake_issuer"] = h.Issuer
	token, sess, err := m.create(ctx, CreateParams{
		Subject: h.Subject, AuthTime: authTime, AuthMethod: AuthMethodHandshake, Metadata: md, JKT: p.JKT,
	}, h)
	if err != nil {
		return "", nil, err
	}
	if err := m.refuseRevokedOrigin(ctx, h, sess.ID); err != nil {
		return "", nil, err
	}
	if p.Replaces != "" {
		m.endReplaced(ctx, p.Replaces, sess.ID)
	}
	return token, sess, nil
}

// refuseRevokedOrigin ends the session id just made from h when a
// tombstone says h's origin was revoked after h was minted (TombstoneOrigin).
// It looks after the session exists, not before: a revocation whose sweep
// of the derived sessions missed this one wrote its tombstone before that
// sweep, so this read sees it. Cost: one store read per exchange of a
// guarded issuer's handshake (GuardOrigin), none for others.
func (m *Manager) refuseRevokedOrigin(ctx context.Context, h *Handshake, id string) error {
	revoked, err := m.originRevoked(ctx, h)
	if err == nil && !revoked {
		return nil
	}
	// The token was never handed out; end the session all the same.
	if rerr := m.revoke(ctx, id, map[string]any{"reason": "origin_revoked"}); rerr != nil && !errors.Is(rerr, ErrNotFound) {
		m.log.Error("tether: a session from a revoked origin could not be ended", "session_id", id, "err", rerr)
	}
	if err != nil {
		return fmt.Errorf("tether: exchange: check the origin: %w", err)
	}
	err = fmt.Errorf("%w: its origin session was revoked", ErrInvalidToken)
	m.recordRefusal(ctx, err)
	return err
}

// recordRefusal records a refused handshake: only whether it was a replay,
// never the token or what the verifier said about it, which may quote it.
func (m *Manager) recordRefusal(ctx context.Context, err error) {
	reason := "invalid"
	if errors.Is(err, ErrReplayed) {
		reason = "replayed"
	}
	if err := m.Record(ctx, EventHandshakeRefused, "", map[string]any{"reason": reason}); err != nil {
		m.log.Warn("tether: could not record a refused handshake", "err", err)
	}
}

// endReplaced revokes the live session that token stands for, unless it is
// keep. Only a valid token names a session, so nobody can end another's
// session by naming its ID.
func (m *Manager) endReplaced(ctx context.Context, token, keep string) {
	old, err := m.Validate(ctx, token)
	if err != nil || old.ID == keep {
		return
	}
	if err := m.Revoke(ctx, old.ID); err != nil && !errors.Is(err, ErrNotFound) {
		m.log.Warn("tether: could not end the session a new login replaces", "err", err)
	}
}

// Consume implements ReplayGuard in the Manager's store.
func (m *Manager) Consume(ctx context.Context, key string, until time.Time) error {
	if key == "" {
		return BadInput("empty replay key")
	}
	if err := m.store.Consume(ctx, key, until); err != nil {
		if errors.Is(err, ErrReplayed) {
			return err
		}
		return fmt.Errorf("replay guard: %w", err)
	}
	return nil
}

// Ping reports whether the Manager's store is reachable, for readiness checks.
func (m *Manager) Ping(ctx context.Context) error {
	if err := m.store.Ping(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}
