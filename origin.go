package tether

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RevokeOrigin ends the sessions of subject (as this node names it) that
// were derived through a handshake from o (DESIGN §11): those whose Origin
// has o's Issuer and Subject and, when o.SessionID is set, that session ID;
// with no SessionID, every session of that subject from that issuer. Other
// sessions of subject (local logins, other issuers) stay. It returns how
// many it ended.
//
// Cost: one read of the subject's sessions through the store's per-subject
// index, then one delete per match, so O(sessions of the subject) on every
// store; no index of its own. The deletes are atomic one by one, not as a
// set: a session created from o while RevokeOrigin runs may outlive it.
func (m *Manager) RevokeOrigin(ctx context.Context, subject string, o Origin) (int, error) {
	return m.RevokeOriginExcept(ctx, subject, o, "")
}

// RevokeOriginExcept is RevokeOrigin sparing the sessions derived from the
// origin session keepSID (which may be empty): what a revocation of every
// session but one at the origin asks for. It needs o without a SessionID.
func (m *Manager) RevokeOriginExcept(ctx context.Context, subject string, o Origin, keepSID string) (int, error) {
	if err := CheckSubject(subject); err != nil {
		return 0, err
	}
	if o.Issuer == "" || o.Subject == "" {
		return 0, BadInput("an origin names its issuer and subject")
	}
	if keepSID != "" && o.SessionID != "" {
		return 0, BadInput("only a revocation of every origin session spares one")
	}
	recs, err := m.store.List(ctx, subject)
	if err != nil {
		return 0, fmt.Errorf("tether: revoke by origin: %w", err)
	}
	detail := map[string]any{"origin_iss": o.Issuer, "origin_sub": o.Subject}
	if o.SessionID != "" {
		detail["origin_sid"] = o.SessionID
	}
	n := 0
	if keepSID != "" {
		detail["kept_origin_sid"] = keepSID
	}
	for _, r := range recs {
		if !o.matches(r.Origin) || (keepSID != "" && r.Origin.SessionID == keepSID) {
			continue
		}
		switch err := m.revoke(ctx, r.ID, detail); {
		case errors.Is(err, ErrNotFound): // ended meanwhile
		case err != nil:
			return n, err
		default:
			n++
		}
	}
	return n, nil
}

// matches reports whether a session of origin got falls under o.
func (o Origin) matches(got Origin) bool {
	return got.Issuer == o.Issuer && got.Subject == o.Subject &&
		(o.SessionID == "" || got.SessionID == o.SessionID)
}

// RevokeOriginSession ends every session made from the identity provider's
// session sid at issuer, whatever its subject: what an OpenID Connect
// back-channel logout token naming a sid without a sub asks for (OIDC
// Back-Channel Logout 1.0 §2.4). It finds their subjects through the index
// Create keeps for sessions created with an Origin that has a SessionID
// (sign-in at a provider; not handshake exchanges, whose SETs always name
// the subject). It returns how many sessions it ended.
//
// Cost: one List of the index entry, then RevokeOrigin per subject found
// (one in practice: a provider session belongs to one subject).
func (m *Manager) RevokeOriginSession(ctx context.Context, issuer, sid string) (int, error) {
	if issuer == "" || sid == "" || len(issuer) > 1024 || len(sid) > 1024 {
		return 0, BadInput("an origin session names its issuer and sid, each at most 1024 bytes")
	}
	entries, err := m.store.List(ctx, originIndexSubject(issuer, sid))
	if err != nil {
		return 0, fmt.Errorf("tether: revoke by origin session: %w", err)
	}
	type target struct{ subject, originSub string }
	seen := map[target]bool{}
	n := 0
	for _, e := range entries {
		t := target{e.Metadata[originIndexSubjectKey], e.Origin.Subject}
		// The hash names one (issuer, sid); the check costs nothing.
		if seen[t] || e.Origin.Issuer != issuer || e.Origin.SessionID != sid {
			continue
		}
		seen[t] = true
		k, err := m.RevokeOrigin(ctx, t.subject, Origin{Issuer: issuer, Subject: t.originSub, SessionID: sid})
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// The reserved subjects of the records origin.go keeps for itself.
const (
	originIndexPrefix = ReservedSubjectPrefix + "origin-sid:"
	tombstonePrefix   = ReservedSubjectPrefix + "origin-revoked:"
)

// isBookkeeping reports whether subject holds records origin.go keeps for
// itself rather than anyone's sessions.
func isBookkeeping(subject string) bool {
	return slices.ContainsFunc(BookkeepingPrefixes(), func(p string) bool { return strings.HasPrefix(subject, p) })
}

// BookkeepingPrefixes returns the prefixes of the reserved subjects whose
// records the service keeps for itself, whose expiry ExpiryEvents does not
// report: for a store that must apply that rule inside its own query.
func BookkeepingPrefixes() []string { return []string{originIndexPrefix, tombstonePrefix} }

// originIndexSubjectKey is the index entry's metadata key that holds the
// indexed session's subject.
const originIndexSubjectKey = "subject"

// originIndexSubject is the reserved subject whose records index the
// sessions made from the provider session (issuer, sid). Hashed: both are
// the provider's, of any length and bytes, and a subject is at most
// MaxSubjectLen of printable UTF-8.
func originIndexSubject(issuer, sid string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + sid))
	return originIndexPrefix + hex.EncodeToString(sum[:])
}

// indexOrigin writes the index entry for rec, a session about to be
// created, before rec itself: a session then never exists that a logout
// naming its sid alone cannot find (an entry whose session was not created
// finds nothing). The entry is a record of the reserved namespace that
// lives as long as rec can and whose token nobody holds; it describes no
// change of a session, so it carries no event.
func (m *Manager) indexOrigin(ctx context.Context, rec *Record) error {
	_, pt := newToken("")
	lifetime := rec.ExpiresAt.Sub(rec.CreatedAt)
	entry := &Record{
		ID: pt.id, SecretHash: pt.hash, Subject: originIndexSubject(rec.Origin.Issuer, rec.Origin.SessionID),
		CreatedAt: rec.CreatedAt, LastSeenAt: rec.CreatedAt,
		ExpiresAt: rec.ExpiresAt, IdleExpiresAt: rec.ExpiresAt, IdleTimeout: lifetime,
		Metadata: map[string]string{originIndexSubjectKey: rec.Subject}, Origin: rec.Origin,
	}
	if err := m.store.Create(ctx, entry); err != nil {
		return fmt.Errorf("tether: index the session's origin: %w", err)
	}
	return nil
}

// HandshakeWindow bounds how long after it was minted a handshake token can
// still be exchanged: its longest lifetime (handshake.MaxTTL, 5 min) plus
// the largest clock leeway a verifier allows (handshake.MaxLeeway, 5 min).
const HandshakeWindow = 10 * time.Minute

// Keys of a tombstone's metadata.
const (
	tombstoneAtKey   = "revoked_at" // Unix seconds, by the origin's clock
	tombstoneKeptKey = "kept_sid"
)

// GuardOrigin makes Exchange refuse handshakes from issuer whose origin a
// tombstone says was revoked since they were minted (TombstoneOrigin), at
// the cost of one store read per exchange of issuer's handshakes; other
// issuers' exchanges pay nothing. A receiver of issuer's revocations
// (ssf.NewReceiver) calls it: every node that exchanges issuer's
// handshakes should, so configure the same transmitters on all of them.
func (m *Manager) GuardOrigin(issuer string) { m.tombstoned.Store(issuer, struct{}{}) }

// TombstoneOrigin remembers, for HandshakeWindow after at, that the origin
// service revoked o: its session o.SessionID, or with no SessionID every
// session of o.Subject but keepSID (which may be empty), at the time at by
// its own clock. A handshake from that origin minted before then (a
// handshake names its origin session and carries the origin's iat) may
// still be on its way; Exchange refuses it, on every node sharing the
// store that guards the issuer (GuardOrigin). Call it before RevokeOrigin
// or RevokeOriginExcept, which end the sessions already made: together
// they leave no derived session behind, whatever the order of a concurrent
// exchange.
//
// The tombstone is a record of the reserved namespace, found by (issuer,
// subject), which expires on its own; it describes no change of a session,
// so it carries no event. Nothing is written once at is more than
// HandshakeWindow ago: every handshake it could refuse has expired.
func (m *Manager) TombstoneOrigin(ctx context.Context, o Origin, keepSID string, at time.Time) error {
	switch {
	case o.Issuer == "" || o.Subject == "":
		return BadInput("an origin names its issuer and subject")
	case len(o.Issuer) > 1024 || len(o.Subject) > 1024 || len(o.SessionID) > 1024 || len(keepSID) > 1024:
		return BadInput("origin longer than 1024 bytes")
	case keepSID != "" && o.SessionID != "":
		return BadInput("only a revocation of every origin session spares one")
	}
	now := m.now().UTC().Truncate(time.Microsecond)
	until := at.Add(HandshakeWindow).UTC().Truncate(time.Microsecond)
	if !until.After(now) {
		return nil
	}
	// One tombstone per revocation, however often its SET is delivered: the
	// ID is the revocation's, so a replayed copy finds it there (ErrExists)
	// rather than adding another record for every exchange to read.
	id := sha256.Sum256([]byte(o.Issuer + "\x00" + o.Subject + "\x00" + o.SessionID + "\x00" + keepSID + "\x00" + strconv.FormatInt(at.Unix(), 10)))
	_, pt := newToken(b32.EncodeToString(id[:idBytes]))
	rec := &Record{
		ID: pt.id, SecretHash: pt.hash, Subject: tombstoneSubject(o.Issuer, o.Subject),
		CreatedAt: now, LastSeenAt: now, ExpiresAt: until, IdleExpiresAt: until, IdleTimeout: until.Sub(now),
		Metadata: map[string]string{tombstoneAtKey: strconv.FormatInt(at.Unix(), 10)}, Origin: o,
	}
	if keepSID != "" {
		rec.Metadata[tombstoneKeptKey] = keepSID
	}
	if err := m.store.Create(ctx, rec); err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("tether: tombstone of a revoked origin: %w", err)
	}
	return nil
}

// tombstoneSubject is the reserved subject of the tombstones of the origin
// subject sub at issuer; hashed, as originIndexSubject.
func tombstoneSubject(issuer, sub string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + sub))
	return tombstonePrefix + hex.EncodeToString(sum[:])
}

// originRevoked reports whether a tombstone (TombstoneOrigin) refuses h:
// its origin session was revoked, or every session of its origin subject
// was after h was minted, unless its session was the one kept. Both times
// are the origin's, in whole seconds (a handshake's iat): a handshake
// minted in the very second of a subject-wide revocation passes, since it
// may come from a login just after it (a sign-in that revoked the others,
// say), which leaves a window under a second.
func (m *Manager) originRevoked(ctx context.Context, h *Handshake) (bool, error) {
	if _, guarded := m.tombstoned.Load(h.Issuer); !guarded {
		return false, nil
	}
	sub := cmp.Or(h.IssuerSubject, h.Subject)
	recs, err := m.store.List(ctx, tombstoneSubject(h.Issuer, sub))
	if err != nil {
		return false, err
	}
	for _, r := range recs {
		o := r.Origin
		switch {
		case o.Issuer != h.Issuer || o.Subject != sub: // another origin under the same hash: none in practice
		case o.SessionID != "":
			if o.SessionID == h.SessionID {
				return true, nil
			}
		case h.SessionID != "" && h.SessionID == r.Metadata[tombstoneKeptKey]:
		default:
			at, err := strconv.ParseInt(r.Metadata[tombstoneAtKey], 10, 64)
			if err != nil || h.IssuedAt.Unix() < at {
				return true, nil // an unreadable tombstone refuses: fail closed
			}
		}
	}
	return false, nil
}
