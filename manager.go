package tether

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tetherhq/tether/dpop"
)

// Config configures a Manager. Zero fields take the documented defaults.
type Config struct {
	// Store keeps the sessions. Required.
	Store Store

	// Lifetime is a session's absolute lifetime; sliding never extends it.
	// Default 24h.
	Lifetime time.Duration
	// IdleTimeout ends a session that has not been used for this long. Each
	// use slides it, up to Lifetime. Default 2h.
	IdleTimeout time.Duration
	// TouchInterval throttles last-seen writes: a session is touched at most
	// once per interval, so validation stays a read. Default 1m, and never more
	// than a tenth of IdleTimeout.
	TouchInterval time.Duration

	// MaxStaleness bounds how long a cached record or role set may be served
	// without reading the store. Default 1s; negative disables the cache, so
	// that every validation reads the store.
	MaxStaleness time.Duration
	// CacheSize caps the number of cached sessions. Default 100,000.
	CacheSize int

	// MaxSessionsPerSubject caps a subject's live sessions: creating one more
	// revokes the oldest (OWASP ASVS 7.1.2). Zero means no cap; each create
	// then costs no extra store read.
	MaxSessionsPerSubject int

	// DPoP checks the proofs of sessions bound to a client key (RFC 9449).
	// By default each proof's jti is held in memory and consumed in Store, so
	// a replay is refused on every node at the cost of a store write per
	// request; with DPoP.RequireNonce, nonces bind each proof to one node,
	// and with DPoP.SingleNode (an embedded store) there is no other node:
	// memory suffices for both. DPoP.Now defaults to Now.
	DPoP dpop.Config

	// DBSCCookieLifetime is how long the token of a session bound to a
	// browser key by DBSC (BindDevice) is accepted after its last refresh
	// signed by that key (RefreshDevice). Use never extends it. Default 10m;
	// at least a minute, at most IdleTimeout.
	DBSCCookieLifetime time.Duration

	// OnPrivilegeGain says what happens to a subject's live sessions when
	// SetRoles gives it a role it did not have: PrivilegeGainKeep (the
	// default) lets them carry the new role from their next request;
	// PrivilegeGainRevoke ends them, so the new privilege is used only after
	// a fresh sign-in (OWASP ASVS 3.3, re-authentication on privilege change).
	OnPrivilegeGain string

	// EventRetention is how long the event log keeps events; older ones are
	// trimmed in the background, hourly. Default 30 days; negative keeps
	// everything.
	EventRetention time.Duration

	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives operational events; never tokens. Default slog.Default().
	Logger *slog.Logger

	// Cookies says which session cookie Authenticate reads: the host-only
	// one by default, or also the one shared under a parent domain.
	Cookies Cookies
}

// Limits on caller input; beyond them Create and SetRoles fail with ErrBadInput.
const (
	MaxSubjectLen      = 256
	MaxRoles           = 64
	MaxRoleLen         = 128
	MaxMetadataEntries = 16
	MaxMetadataKeyLen  = 64
	MaxMetadataValLen  = 1024
	MinLifetime        = time.Second // shorter would hand out tokens that are dead on arrival
	MaxLifetime        = 90 * 24 * time.Hour
)

// Manager creates, validates, rotates and revokes sessions. It is safe for
// concurrent use. Close it to stop its background work.
type Manager struct {
	cfg   Config
	store Store
	now   func() time.Time
	log   *slog.Logger
	cache *cache // nil when disabled
	dpop  *dpop.Verifier

	stats counters

	// tombstoned holds the issuers whose handshakes Exchange checks against
	// origin tombstones (GuardOrigin): issuer -> struct{}.
	tombstoned sync.Map

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// NewManager checks cfg, fills in defaults and, when the store is a Watcher,
// starts following its changes.
func NewManager(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("tether: Config.Store is required")
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 24 * time.Hour
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Hour
	}
	if cfg.TouchInterval == 0 {
		cfg.TouchInterval = time.Minute
	}
	cfg.TouchInterval = min(cfg.TouchInterval, cfg.IdleTimeout/10)
	if cfg.MaxStaleness == 0 {
		cfg.MaxStaleness = time.Second
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 100_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DBSCCookieLifetime == 0 {
		cfg.DBSCCookieLifetime = min(10*time.Minute, cfg.IdleTimeout)
	}
	switch cfg.OnPrivilegeGain {
	case "":
		cfg.OnPrivilegeGain = PrivilegeGainKeep
	case PrivilegeGainKeep, PrivilegeGainRevoke:
	default:
		return nil, fmt.Errorf("tether: OnPrivilegeGain %q: want %q or %q", cfg.OnPrivilegeGain, PrivilegeGainKeep, PrivilegeGainRevoke)
	}
	if cfg.EventRetention == 0 {
		cfg.EventRetention = 30 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.Lifetime < 0 || cfg.Lifetime > MaxLifetime:
		return nil, fmt.Errorf("tether: Lifetime %v out of range (0, %v]", cfg.Lifetime, MaxLifetime)
	case cfg.IdleTimeout < 0:
		return nil, fmt.Errorf("tether: IdleTimeout %v is negative", cfg.IdleTimeout)
	case cfg.DBSCCookieLifetime < time.Minute || cfg.DBSCCookieLifetime > cfg.IdleTimeout:
		return nil, fmt.Errorf("tether: DBSCCookieLifetime %v out of range [1m, IdleTimeout]", cfg.DBSCCookieLifetime)
	case cfg.CacheSize < 0 || cfg.MaxSessionsPerSubject < 0:
		return nil, errors.New("tether: CacheSize and MaxSessionsPerSubject must not be negative")
	}

	dv, err := newDPoP(cfg)
	if err != nil {
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, store: cfg.Store, now: cfg.Now, log: cfg.Logger, stop: stop, dpop: dv}
	if cfg.EventRetention > 0 {
		m.wg.Add(1)
		go m.trimEvents(bg)
	}
	if cfg.MaxStaleness > 0 {
		w, shared := cfg.Store.(Watcher)
		// A store that announces changes is cached only while its channel is
		// up; one that does not is cached on the staleness bound alone.
		m.cache = newCache(cfg.MaxStaleness, cfg.CacheSize, !shared)
		if shared {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				err := w.Watch(bg, m.cache.apply)
				m.cache.setChannel(false) // nobody tells us of changes any more
				if err != nil && bg.Err() == nil {
					m.log.Error("tether: change channel stopped; cache disabled", "err", err)
				}
			}()
		}
	}
	return m, nil
}

// Close stops the Manager's background work. It does not close the store.
func (m *Manager) Close() error {
	m.stop()
	m.wg.Wait()
	return nil
}

// CreateParams describes a new session.
type CreateParams struct {
	Subject     string            // required: who the session belongs to
	Roles       []string          // when not nil, replaces the subject's roles (they belong to the subject, not the session)
	Lifetime    time.Duration     // absolute lifetime; default Config.Lifetime
	IdleTimeout time.Duration     // default Config.IdleTimeout
	Metadata    map[string]string // client facts: ip, user_agent, device…
	AuthTime    time.Time         // when the subject authenticated, if known
	AuthMethod  string            // how, if known ("password", "handshake"…)
	JKT         string            // binds the session to this DPoP key's RFC 7638 thumbprint; "": a bearer session
	// Origin names the identity provider's session this one was made from
	// (OIDC sign-in: iss, sub, sid), so that the provider's logout can end
	// it (RevokeOrigin). With a SessionID, Create also indexes the session
	// by (Issuer, SessionID), one more store write, so that a logout naming
	// only that sid finds it (RevokeOriginSession). A handshake exchange
	// sets it from the token, unindexed.
	Origin Origin

	dbsc     string // the DBSC key's thumbprint, set only by BindDevice
	replaces string // the session BindDevice ends, for the event
}

// Create starts a session and returns its token, which is shown only this once.
func (m *Manager) Create(ctx context.Context, p CreateParams) (string, *Session, error) {
	if err := CheckSubject(p.Subject); err != nil {
		return "", nil, err
	}
	return m.create(ctx, p, nil)
}

// CreateReserved is Create for a subject of the reserved namespace (see
// ReservedSubjectPrefix), for Tether's own components such as the admin
// console. The subject's roles are left as they are.
func (m *Manager) CreateReserved(ctx context.Context, p CreateParams) (string, *Session, error) {
	if !IsReservedSubject(p.Subject) {
		return "", nil, BadInput("a reserved subject begins with %q", ReservedSubjectPrefix)
	}
	if err := checkSubject(p.Subject); err != nil {
		return "", nil, err
	}
	p.Roles = nil
	return m.create(ctx, p, nil)
}

// create starts a session; with h, it is the session a handshake exchange
// starts, and its handshake.exchanged event goes in with session.created.
func (m *Manager) create(ctx context.Context, p CreateParams, h *Handshake) (string, *Session, error) {
	if err := checkMetadata(p.Metadata); err != nil {
		return "", nil, err
	}
	for _, d := range []time.Duration{p.Lifetime, p.IdleTimeout} {
		if d != 0 && (d < MinLifetime || d > MaxLifetime) {
			return "", nil, BadInput("lifetimes must be between %v and %v", MinLifetime, MaxLifetime)
		}
	}
	if o := p.Origin; len(o.Issuer) > 1024 || len(o.Subject) > 1024 || len(o.SessionID) > 1024 {
		return "", nil, BadInput("origin longer than 1024 bytes")
	}
	if len(p.AuthMethod) > MaxRoleLen {
		return "", nil, BadInput("auth method longer than %d bytes", MaxRoleLen)
	}
	if err := checkRoles(p.Roles); err != nil {
		return "", nil, err
	}
	if p.JKT != "" && !dpop.ValidThumbprint(p.JKT) {
		return "", nil, fmt.Errorf("%w: a DPoP key thumbprint is 43 characters of base64url (RFC 7638, SHA-256)", ErrBadInput)
	}
	lifetime := cmp.Or(p.Lifetime, m.cfg.Lifetime)
	idle := cmp.Or(p.IdleTimeout, m.cfg.IdleTimeout)
	now := m.now().UTC().Truncate(time.Microsecond) // the finest precision every store keeps
	token, pt := newToken("")
	rec := &Record{
		ID: pt.id, SecretHash: pt.hash, Subject: p.Subject,
		CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(lifetime), IdleExpiresAt: minTime(now.Add(idle), now.Add(lifetime)),
		IdleTimeout: idle, Metadata: p.Metadata, AuthTime: p.AuthTime, AuthMethod: p.AuthMethod, JKT: p.JKT,
		DBSC: p.dbsc,
	}
	rec.Origin = p.Origin
	if h != nil {
		rec.Origin = Origin{Issuer: h.Issuer, Subject: cmp.Or(h.IssuerSubject, h.Subject), SessionID: h.SessionID}
	}
	rec = rec.Clone()
	detail := map[string]any{"auth_method": p.AuthMethod}
	if p.dbsc != "" {
		detail["bound"], detail["replaces"] = "dbsc", p.replaces
	}
	evs := []Event{m.newEvent(ctx, EventSessionCreated, p.Subject, rec.ID, detail)}
	if h != nil {
		evs = append(evs, m.newEvent(ctx, EventHandshakeExchanged, p.Subject, rec.ID, map[string]any{"issuer": h.Issuer, "jti": h.ID}))
	}
	if o := rec.Origin; h == nil && o.Issuer != "" && o.SessionID != "" {
		if err := m.indexOrigin(ctx, rec); err != nil {
			return "", nil, err
		}
	}
	if err := m.store.Create(ctx, rec, evs...); err != nil {
		return "", nil, fmt.Errorf("tether: create session: %w", err)
	}
	m.stats.created.Add(1)
	// Roles are written only once the session exists, so a failed create
	// changes nothing; a failure here leaves a session nobody holds the token of.
	roles := p.Roles
	if roles != nil {
		// The new session was just authenticated with these roles: a gain
		// revokes the subject's other sessions, never this one.
		if err := m.setRoles(ctx, p.Subject, roles, rec.ID); err != nil {
			return "", nil, err
		}
	} else if r, err := m.store.Roles(ctx, p.Subject); err != nil {
		return "", nil, fmt.Errorf("tether: create session: %w", err)
	} else {
		roles = r
	}
	if err := m.enforceSessionCap(ctx, p.Subject, rec.ID, p.replaces); err != nil {
		// The session stands; an over-full subject is trimmed on its next create.
		m.log.Warn("tether: could not enforce the per-subject session cap", "err", err)
	}
	return token, rec.session(roles), nil
}

// enforceSessionCap revokes the subject's oldest sessions beyond the cap,
// never the one just created; the one it replaces (newID's DBSC binding ends
// that one itself) is neither counted nor revoked here.
func (m *Manager) enforceSessionCap(ctx context.Context, subject, newID, replaces string) error {
	if m.cfg.MaxSessionsPerSubject <= 0 {
		return nil
	}
	recs, err := m.store.List(ctx, subject)
	if err != nil {
		return fmt.Errorf("tether: create session: %w", err)
	}
	excess := len(recs) - m.cfg.MaxSessionsPerSubject
	if replaces != "" && slices.ContainsFunc(recs, func(r *Record) bool { return r.ID == replaces }) {
		excess--
	}
	for _, r := range recs {
		if excess <= 0 {
			break
		}
		if r.ID == newID || r.ID == replaces {
			continue
		}
		// The cap, not the caller, ends the oldest session.
		sys := WithActor(ctx, Actor{Kind: ActorSystem})
		if err := m.revoke(sys, r.ID, map[string]any{"reason": "max_per_subject"}); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		excess--
	}
	return nil
}

// Validate returns the live session a token stands for. It fails with
// ErrInvalidToken for anything but a live session (a malformed token without
// a store read) and with ErrUnavailable when the store cannot say.
//
// Sessions of the reserved namespace are not valid here: only
// ValidateReserved accepts them.
func (m *Manager) Validate(ctx context.Context, rawToken string) (*Session, error) {
	s, err := m.validate(ctx, rawToken)
	if err == nil && IsReservedSubject(s.Subject) {
		s, err = nil, fmt.Errorf("%w: a reserved session", ErrInvalidToken)
	}
	m.stats.stripe(rawToken).count(err)
	return s, err
}

// ValidateReserved is Validate for a session of subject, which must be in
// the reserved namespace; a token of any other session is ErrInvalidToken.
func (m *Manager) ValidateReserved(ctx context.Context, subject, rawToken string) (*Session, error) {
	if !IsReservedSubject(subject) {
		return nil, BadInput("a reserved subject begins with %q", ReservedSubjectPrefix)
	}
	pt, err := parseToken(rawToken)
	if err != nil {
		return nil, err
	}
	// Read from the store, past the cache and the counters: these sessions
	// are few and rarely used, a revocation of one holds on every node at
	// once, and the node's numbers stay about its users' sessions.
	rec, roles, err := m.read(ctx, pt)
	if err != nil {
		return nil, err
	}
	if rec.Subject != subject {
		return nil, fmt.Errorf("%w: not a session of %s", ErrInvalidToken, subject)
	}
	now := m.now()
	return m.accept(ctx, pt, newEntry(rec, now), roles, now)
}

func (m *Manager) validate(ctx context.Context, rawToken string) (*Session, error) {
	pt, err := parseToken(rawToken)
	if err != nil {
		return nil, err
	}
	now := m.now()
	var seq uint64
	if m.cache != nil {
		e, roles, ok, s := m.cache.get(pt.id, now)
		if ok && pt.matches(e.hash) {
			m.stats.stripe(rawToken).cacheHits.Add(1)
			return m.accept(ctx, pt, e, roles, now)
		}
		// A wrong secret for a cached ID reads the store as an unknown ID
		// does, so a fast refusal never tells that an ID is live.
		m.stats.stripe(rawToken).cacheMisses.Add(1)
		seq = s
	}
	rec, roles, err := m.read(ctx, pt)
	if err != nil {
		return nil, err
	}
	e := newEntry(rec, now)
	if m.cache != nil && pt.matches(e.hash) {
		m.cache.fill(seq, e, roles)
	}
	return m.accept(ctx, pt, e, roles, now)
}

// read fetches the record pt names and, if pt's secret matches it, its
// subject's roles. An unknown ID and a wrong secret cost the same: one store
// read and one constant-time compare, so their timing does not tell a live
// ID from a dead one. A store failure stops the cache serving until the
// store answers again.
func (m *Manager) read(ctx context.Context, pt parsedToken) (*Record, []string, error) {
	rec, err := m.store.Get(ctx, pt.id)
	if errors.Is(err, ErrNotFound) {
		m.storeOK()
		pt.matches(secretHash{}) // the compare a known ID costs
		return nil, nil, fmt.Errorf("%w: no live session", ErrInvalidToken)
	}
	if err != nil {
		m.storeFailed(ctx)
		return nil, nil, fmt.Errorf("tether: read session: %w", err)
	}
	if !pt.matches(rec.SecretHash) {
		m.storeOK()
		return nil, nil, fmt.Errorf("%w: secret does not match", ErrInvalidToken)
	}
	roles, err := m.store.Roles(ctx, rec.Subject)
	if err != nil {
		m.storeFailed(ctx)
		return nil, nil, fmt.Errorf("tether: read roles: %w", err)
	}
	m.storeOK()
	return rec, roles, nil
}

// accept checks the secret and expiry, slides the idle expiry when a touch is
// due, and returns the session. If e is the cache's entry, the touched copy
// replaces it.
func (m *Manager) accept(ctx context.Context, pt parsedToken, e *entry, roles []string, now time.Time) (*Session, error) {
	if !pt.matches(e.hash) {
		return nil, fmt.Errorf("%w: secret does not match", ErrInvalidToken)
	}
	if !e.live(now) {
		return nil, fmt.Errorf("%w: expired", ErrInvalidToken)
	}
	if e.dbsc != "" {
		// Use never slides a DBSC-bound session: only a refresh signed by its
		// key moves lastSeen, so a copied token dies with its cookie.
		if now.UnixNano()-e.lastSeen >= int64(m.cfg.DBSCCookieLifetime) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidToken, ErrRefreshRequired)
		}
		return e.session(roles), nil
	}
	// A session with a short idle timeout is touched more often, or it would
	// die while in use.
	if interval := min(m.cfg.TouchInterval, e.idleTimeout/10); now.UnixNano()-e.lastSeen >= int64(interval) {
		touched := *e
		touched.lastSeen = now.UnixNano()
		touched.idleExpires = min(now.Add(e.idleTimeout).UnixNano(), e.expires)
		err := m.store.Touch(ctx, e.id, fromNano(touched.lastSeen), fromNano(touched.idleExpires))
		switch {
		case errors.Is(err, ErrNotFound):
			m.invalidateSession(e.id)
			return nil, fmt.Errorf("%w: no live session", ErrInvalidToken)
		case errors.Is(err, ErrStorageFull):
			// The store read the session and is only out of room: serve it
			// without sliding its idle expiry, which the next touch retries.
			return e.session(roles), nil
		case err != nil:
			m.storeFailed(ctx)
			return nil, fmt.Errorf("tether: touch session: %w", err)
		}
		if m.cache != nil {
			m.cache.replace(e, &touched)
		}
		e = &touched
	}
	return e.session(roles), nil
}

// Rotate issues a new token for the session that rawToken stands for; the old
// token dies at once. Use it after login and privilege elevation.
func (m *Manager) Rotate(ctx context.Context, rawToken string) (string, *Session, error) {
	pt, err := parseToken(rawToken)
	if err != nil {
		return "", nil, err
	}
	rec, roles, err := m.read(ctx, pt) // a write decides on the store, never the cache
	if err != nil {
		return "", nil, err
	}
	if !pt.matches(rec.SecretHash) || !rec.Live(m.now()) || IsReservedSubject(rec.Subject) {
		return "", nil, fmt.Errorf("%w: not a live session", ErrInvalidToken)
	}
	token, fresh := newToken(rec.ID)
	newHash := fresh.hash
	defer m.invalidateSession(rec.ID)
	ev := m.newEvent(ctx, EventSessionRotated, rec.Subject, rec.ID, nil)
	if err := m.store.Rotate(ctx, rec.ID, rec.SecretHash, newHash, ev); err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", nil, fmt.Errorf("%w: rotated or revoked meanwhile", ErrInvalidToken)
		}
		return "", nil, fmt.Errorf("tether: rotate session: %w", err)
	}
	rec.SecretHash = newHash
	return token, rec.session(roles), nil
}

// Get returns a live session by ID, read from the store.
func (m *Manager) Get(ctx context.Context, id string) (*Session, error) {
	if !ValidID(id) {
		return nil, ErrNotFound
	}
	rec, err := m.store.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tether: get session: %w", err)
	}
	if !rec.Live(m.now()) || IsReservedSubject(rec.Subject) {
		return nil, ErrNotFound
	}
	roles, err := m.store.Roles(ctx, rec.Subject)
	if err != nil {
		return nil, fmt.Errorf("tether: get roles: %w", err)
	}
	return rec.session(roles), nil
}

// Revoke ends one session. When it returns, no node's store read accepts the
// session, and this node's cache has dropped it.
func (m *Manager) Revoke(ctx context.Context, id string) error {
	return m.revoke(ctx, id, nil)
}

func (m *Manager) revoke(ctx context.Context, id string, detail map[string]any) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	// Invalidate even on error: the outcome may be unknown. The store fills in
	// the event's subject from the record.
	defer m.invalidateSession(id)
	ev := m.newEvent(ctx, EventSessionRevoked, "", id, detail)
	if err := m.store.Delete(ctx, id, ev); err != nil {
		return fmt.Errorf("tether: revoke session: %w", err)
	}
	m.stats.revoked.Add(1)
	return nil
}

// RevokeOwned ends session id if it belongs to subject. Another subject's
// session is ErrNotFound, so that session IDs of others cannot be probed.
func (m *Manager) RevokeOwned(ctx context.Context, subject, id string) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	rec, err := m.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("tether: revoke session: %w", err)
	}
	if rec.Subject != subject {
		return ErrNotFound
	}
	return m.Revoke(ctx, id)
}

// keptSessionKey is the detail of a subject.revoked event that names the
// session it spared, which the SSF transmitter passes on (ssf.ClaimKeptSession).
const keptSessionKey = "kept_session_id"

// RevokeSubject ends every session of subject but keepID (which may be empty),
// atomically in the store, and returns how many it ended.
func (m *Manager) RevokeSubject(ctx context.Context, subject, keepID string) (int, error) {
	if err := CheckSubject(subject); err != nil {
		return 0, err
	}
	defer m.invalidateSubject(subject)
	var detail map[string]any
	if keepID != "" {
		detail = map[string]any{keptSessionKey: keepID}
	}
	ev := m.newEvent(ctx, EventSubjectRevoked, subject, "", detail)
	n, err := m.store.DeleteSubject(ctx, subject, keepID, ev)
	if err != nil {
		return 0, fmt.Errorf("tether: revoke sessions: %w", err)
	}
	m.stats.revoked.Add(uint64(n))
	return n, nil
}

// List returns the subject's live sessions, oldest first.
func (m *Manager) List(ctx context.Context, subject string) ([]*Session, error) {
	if err := CheckSubject(subject); err != nil {
		return nil, err
	}
	recs, err := m.store.List(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("tether: list sessions: %w", err)
	}
	roles, err := m.store.Roles(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("tether: list sessions: %w", err)
	}
	now := m.now()
	out := make([]*Session, 0, len(recs))
	for _, r := range recs {
		if r.Live(now) {
			out = append(out, r.session(roles))
		}
	}
	return out, nil
}

// Roles returns the subject's current roles.
func (m *Manager) Roles(ctx context.Context, subject string) ([]string, error) {
	if err := CheckSubject(subject); err != nil {
		return nil, err
	}
	roles, err := m.store.Roles(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("tether: get roles: %w", err)
	}
	if roles == nil {
		roles = []string{}
	}
	return roles, nil
}

// SetRoles replaces the subject's roles; every live session of the subject
// carries them from its next validation on.
func (m *Manager) SetRoles(ctx context.Context, subject string, roles []string) error {
	if err := CheckSubject(subject); err != nil {
		return err
	}
	if err := checkRoles(roles); err != nil {
		return err
	}
	return m.setRoles(ctx, subject, roles, "")
}

// setRoles is SetRoles; a revocation on privilege gain spares keepID.
func (m *Manager) setRoles(ctx context.Context, subject string, roles []string, keepID string) error {
	defer m.invalidateSubject(subject)
	detail := map[string]any{"roles": append([]string{}, roles...)}
	if m.cfg.OnPrivilegeGain == PrivilegeGainRevoke {
		gained, err := m.gains(ctx, subject, roles)
		if err != nil {
			return err
		}
		if len(gained) > 0 {
			// Revoke first: should setting the roles then fail, the sessions
			// are gone and the roles unchanged, which is safe; the other order
			// could leave old sessions holding the new privilege.
			revoked := map[string]any{"reason": "privilege_gain", "gained": gained}
			if keepID != "" {
				// As RevokeSubject records it: a receiver of the SET spares
				// what it derived from the kept session (ssf.ClaimKeptSession).
				revoked[keptSessionKey] = keepID
			}
			ev := m.newEvent(ctx, EventSubjectRevoked, subject, "", revoked)
			if _, err := m.store.DeleteSubject(ctx, subject, keepID, ev); err != nil {
				return fmt.Errorf("tether: set roles: revoke on privilege gain: %w", err)
			}
			detail["on_privilege_gain"] = PrivilegeGainRevoke
		}
	}
	ev := m.newEvent(ctx, EventRolesChanged, subject, "", detail)
	if err := m.store.SetRoles(ctx, subject, roles, ev); err != nil {
		return fmt.Errorf("tether: set roles: %w", err)
	}
	return nil
}

// What SetRoles does with a subject's sessions when it gains a role; see
// Config.OnPrivilegeGain.
const (
	PrivilegeGainKeep   = "keep"
	PrivilegeGainRevoke = "revoke"
)

// gains returns the roles in roles that subject does not hold now.
func (m *Manager) gains(ctx context.Context, subject string, roles []string) ([]string, error) {
	old, err := m.store.Roles(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("tether: set roles: %w", err)
	}
	var gained []string
	for _, r := range roles {
		if !slices.Contains(old, r) && !slices.Contains(gained, r) {
			gained = append(gained, r)
		}
	}
	return gained, nil
}

// storeFailed stops the cache serving until the store answers again, unless
// the failure was only the caller giving up: a client that hangs up must not
// be able to empty the cache for everyone.
func (m *Manager) storeFailed(ctx context.Context) {
	if m.cache != nil && !errors.Is(ctx.Err(), context.Canceled) {
		m.cache.storeFailed()
	}
}

func (m *Manager) storeOK() {
	if m.cache != nil {
		m.cache.storeOK()
	}
}

func (m *Manager) invalidateSession(id string) {
	if m.cache != nil {
		m.cache.invalidateSession(id)
	}
}

func (m *Manager) invalidateSubject(subject string) {
	if m.cache != nil {
		m.cache.invalidateSubject(subject)
	}
}

// Stats is a snapshot of a Manager's counters.
type Stats struct {
	ValidationsOK, ValidationsInvalid, ValidationsUnavailable uint64
	CacheHits, CacheMisses                                    uint64
	Created, Revoked                                          uint64
	CachedSessions                                            int
}

// counters count validations in stripes picked by session ID, so that
// validations on many cores do not all add to one contended cache line.
type counters struct {
	stripes          [counterStripes]counterStripe
	created, revoked atomic.Uint64
}

const counterStripes = 32 // a power of two

type counterStripe struct {
	ok, invalid, unavailable atomic.Uint64
	cacheHits, cacheMisses   atomic.Uint64
	_                        [128 - 5*8]byte // a cache line pair of its own
}

// stripe picks the stripe for a raw token (or any string) by the characters
// where a token's session ID starts.
func (c *counters) stripe(raw string) *counterStripe {
	var h uint
	if len(raw) >= len(TokenPrefix)+2 {
		h = uint(alphabetIndex[raw[len(TokenPrefix)]])<<5 | uint(alphabetIndex[raw[len(TokenPrefix)+1]])
	}
	return &c.stripes[h%counterStripes]
}

// count counts a validation that did not get as far as a session ID.
func (c *counters) count(err error) { c.stripes[0].count(err) }

func (c *counterStripe) count(err error) {
	switch {
	case err == nil:
		c.ok.Add(1)
	case errors.Is(err, ErrInvalidToken):
		c.invalid.Add(1)
	default:
		c.unavailable.Add(1)
	}
}

// Stats returns the Manager's counters.
func (m *Manager) Stats() Stats {
	s := Stats{Created: m.stats.created.Load(), Revoked: m.stats.revoked.Load()}
	for i := range m.stats.stripes {
		st := &m.stats.stripes[i]
		s.ValidationsOK += st.ok.Load()
		s.ValidationsInvalid += st.invalid.Load()
		s.ValidationsUnavailable += st.unavailable.Load()
		s.CacheHits += st.cacheHits.Load()
		s.CacheMisses += st.cacheMisses.Load()
	}
	if m.cache != nil {
		s.CachedSessions = m.cache.len()
	}
	return s
}

// ReservedSubjectPrefix begins the subjects Tether keeps for its own
// sessions: the admin console signs in as "tether:console". CheckSubject
// refuses them, so no API caller, trusted issuer or library user can create,
// list, revoke or set roles for one; Validate, Get and Rotate do not accept
// their sessions, so a console token is worthless on the public API. Only
// CreateReserved and ValidateReserved (and Revoke, by ID) reach them.
const ReservedSubjectPrefix = "tether:"

// IsReservedSubject reports whether s is in the reserved namespace.
func IsReservedSubject(s string) bool { return strings.HasPrefix(s, ReservedSubjectPrefix) }

// CheckSubject reports whether s is a valid subject: 1 to MaxSubjectLen
// bytes of printable UTF-8, outside the reserved namespace. Errors wrap
// ErrBadInput.
func CheckSubject(s string) error {
	if IsReservedSubject(s) {
		return BadInput("subjects beginning with %q are reserved for Tether's own sessions", ReservedSubjectPrefix)
	}
	return checkSubject(s)
}

func checkSubject(s string) error {
	if s == "" || len(s) > MaxSubjectLen {
		return BadInput("subject must be 1 to %d bytes", MaxSubjectLen)
	}
	if !printable(s) {
		return BadInput("subject must be printable UTF-8")
	}
	return nil
}

func checkRoles(roles []string) error {
	if len(roles) > MaxRoles {
		return BadInput("at most %d roles", MaxRoles)
	}
	for _, r := range roles {
		if r == "" || len(r) > MaxRoleLen || !printable(r) {
			return BadInput("a role must be 1 to %d printable bytes", MaxRoleLen)
		}
	}
	return nil
}

func checkMetadata(md map[string]string) error {
	if len(md) > MaxMetadataEntries {
		return BadInput("at most %d metadata entries", MaxMetadataEntries)
	}
	for k, v := range md {
		if k == "" || len(k) > MaxMetadataKeyLen || len(v) > MaxMetadataValLen || !printable(k) || !utf8.ValidString(v) {
			return BadInput("metadata keys must be 1 to %d printable bytes and values at most %d bytes of UTF-8",
				MaxMetadataKeyLen, MaxMetadataValLen)
		}
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
