package tether

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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

// originIndexSubjectKey is the index entry's metadata key that holds the
// indexed session's subject.
const originIndexSubjectKey = "subject"

// originIndexSubject is the reserved subject whose records index the
// sessions made from the provider session (issuer, sid). Hashed: both are
// the provider's, of any length and bytes, and a subject is at most
// MaxSubjectLen of printable UTF-8.
func originIndexSubject(issuer, sid string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + sid))
	return ReservedSubjectPrefix + "origin-sid:" + hex.EncodeToString(sum[:])
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
