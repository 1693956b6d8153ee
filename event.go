package tether

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"
)

// Event types (DESIGN §10). Every change of state is one, written by the store
// in the same transaction as the change.
const (
	EventSessionCreated     = "session.created"
	EventSessionRotated     = "session.rotated"
	EventSessionRevoked     = "session.revoked"
	EventSessionExpired     = "session.expired"
	EventSubjectRevoked     = "subject.revoked"
	EventRolesChanged       = "roles.changed"
	EventHandshakeExchanged = "handshake.exchanged"
	EventHandshakeRefused   = "handshake.refused"
	EventAdminAuthFailed    = "admin.auth_failed"
	EventOIDCLogin          = "oidc.login"
	EventOIDCLogout         = "oidc.logout"
	EventSSFReceived        = "ssf.received"
)

// EventTypes lists every event type, for validating filters and subscriptions.
var EventTypes = []string{
	EventSessionCreated, EventSessionRotated, EventSessionRevoked, EventSessionExpired,
	EventSubjectRevoked, EventRolesChanged, EventHandshakeExchanged, EventHandshakeRefused, EventAdminAuthFailed,
	EventOIDCLogin, EventOIDCLogout, EventSSFReceived,
}

// Actor kinds: who made a change.
const (
	ActorSelf    = "self"    // the session's own holder
	ActorAdmin   = "admin"   // the admin key
	ActorSystem  = "system"  // the service itself: expiry, the per-subject cap
	ActorCascade = "cascade" // an event from another service
	ActorOIDC    = "oidc"    // the OpenID provider
)

// Actor says who made a change and, where there is one, from which address.
type Actor struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
	IP   string `json:"ip,omitempty"`
}

// Event is one entry of the audit log. It never holds a token or a secret.
type Event struct {
	ID        string         `json:"id"`
	Time      time.Time      `json:"time"`
	Type      string         `json:"type"`
	Subject   string         `json:"subject"`
	SessionID string         `json:"session_id,omitempty"`
	Actor     Actor          `json:"actor"`
	Detail    map[string]any `json:"detail"`

	// Cursor is where the event stands in the store's log, set when it is
	// read back: pass it as EventQuery.After to read what follows it.
	Cursor string `json:"-"`
}

// EventQuery selects events. Empty fields match everything. After is the
// cursor a previous call returned; Limit defaults to 100 and is capped at 1000.
type EventQuery struct {
	Subject   string
	SessionID string
	Type      string
	After     string
	Limit     int
}

// Match reports whether e passes q's filters (not its cursor or limit).
func (q EventQuery) Match(e *Event) bool {
	return (q.Subject == "" || q.Subject == e.Subject) &&
		(q.SessionID == "" || q.SessionID == e.SessionID) &&
		(q.Type == "" || q.Type == e.Type)
}

// Limits on an event query.
const (
	DefaultEventLimit = 100
	MaxEventLimit     = 1000
)

// Normalize fills in the default limit and checks q.
func (q EventQuery) Normalize() (EventQuery, error) {
	if q.Limit == 0 {
		q.Limit = DefaultEventLimit
	}
	if q.Limit < 0 || q.Limit > MaxEventLimit {
		return q, BadInput("limit must be between 1 and %d", MaxEventLimit)
	}
	if q.Type != "" && !validEventType(q.Type) {
		return q, BadInput("unknown event type")
	}
	if len(q.Subject) > MaxSubjectLen || len(q.SessionID) > 64 || len(q.After) > 128 {
		return q, BadInput("filter too long")
	}
	return q, nil
}

func validEventType(t string) bool {
	for _, v := range EventTypes {
		if v == t {
			return true
		}
	}
	return false
}

// EventPage is one page of events, oldest first. Next is the cursor to pass as
// EventQuery.After for the following page; it advances even past events the
// filters skipped, so following it never rescans them.
type EventPage struct {
	Events []Event
	Next   string
}

// MarshalEvent encodes an event as the stores keep it.
func MarshalEvent(e *Event) []byte {
	b, err := json.Marshal(e)
	if err != nil { // Detail holds only strings, numbers and bools
		panic(fmt.Sprintf("tether: event not encodable: %v", err))
	}
	return b
}

// UnmarshalEvent decodes an event a store kept.
func UnmarshalEvent(b []byte) (Event, error) {
	var e Event
	err := json.Unmarshal(b, &e)
	return e, err
}

type actorKey struct{}

// WithActor returns a context that attributes the Manager's changes made with
// it to a. Handlers set it from the request; without it a change is the
// system's.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor WithActor put in ctx, or the system.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok {
		return a
	}
	return Actor{Kind: ActorSystem}
}

// newEvent makes an event of type typ, attributed to the context's actor.
func (m *Manager) newEvent(ctx context.Context, typ, subject, sessionID string, detail map[string]any) Event {
	return makeEvent(m.now(), typ, subject, sessionID, ActorFrom(ctx), detail)
}

// makeEvent is the one place events are assembled, so that every event,
// whether the Manager or a store writes it, has the same ID and time format.
func makeEvent(now time.Time, typ, subject, sessionID string, actor Actor, detail map[string]any) Event {
	if detail == nil {
		detail = map[string]any{}
	}
	return Event{
		ID:   "evt_" + rand.Text(), // 26 base32 characters, 130 bits: unique without coordination
		Time: now.UTC().Truncate(time.Microsecond), Type: typ,
		Subject: subject, SessionID: sessionID, Actor: actor, Detail: detail,
	}
}

// Reasons a session expired, the "reason" of a session.expired event.
const (
	ExpiryIdleTimeout = "idle_timeout" // unused for longer than its idle timeout
	ExpiryLifetime    = "lifetime"     // past its absolute expiry
)

// ExpiryEvents are the events a store writes, in the same transaction, when
// it removes r because r expired (not because it was revoked); now is when
// it does so: one session.expired, or none when r is the service's own
// bookkeeping (an origin index entry or tombstone, origin.go), which is no
// one's session. Stores record expiry lazily, as their sweep or an access
// finds the record, so the event's time is when it was recorded and
// detail.expired_at when the session stopped being live.
func ExpiryEvents(r *Record, now time.Time) []Event {
	if isBookkeeping(r.Subject) {
		return nil
	}
	reason, at := ExpiryLifetime, r.ExpiresAt
	if r.IdleExpiresAt.Before(r.ExpiresAt) {
		reason, at = ExpiryIdleTimeout, r.IdleExpiresAt
	}
	return []Event{makeEvent(now, EventSessionExpired, r.Subject, r.ID, Actor{Kind: ActorSystem}, map[string]any{
		"reason": reason, "expired_at": at.UTC().Format(time.RFC3339Nano),
	})}
}

// Record appends an event that accompanies no change of state, such as a
// refused handshake or a failed admin login.
func (m *Manager) Record(ctx context.Context, typ, subject string, detail map[string]any) error {
	if !validEventType(typ) {
		return BadInput("unknown event type")
	}
	if err := m.store.AppendEvents(ctx, m.newEvent(ctx, typ, subject, "", detail)); err != nil {
		return fmt.Errorf("tether: record event: %w", err)
	}
	return nil
}

// Events returns a page of the audit log, oldest first.
func (m *Manager) Events(ctx context.Context, q EventQuery) (EventPage, error) {
	q, err := q.Normalize()
	if err != nil {
		return EventPage{}, err
	}
	p, err := m.store.Events(ctx, q)
	if err != nil {
		return EventPage{}, fmt.Errorf("tether: read events: %w", err)
	}
	return p, nil
}

// trimInterval is how often the Manager trims the event log.
const trimInterval = time.Hour

// trimEvents enforces EventRetention until ctx ends. Every node trims; the
// deletes are idempotent, so nodes need not agree on who does it.
func (m *Manager) trimEvents(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(trimInterval)
	defer t.Stop()
	for {
		if err := m.store.TrimEvents(ctx, m.now().Add(-m.cfg.EventRetention)); err != nil && ctx.Err() == nil {
			m.log.Warn("tether: trimming the event log failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
