package tether

import (
	"context"
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
	if err := CheckSubject(subject); err != nil {
		return 0, err
	}
	if o.Issuer == "" || o.Subject == "" {
		return 0, BadInput("an origin names its issuer and subject")
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
	for _, r := range recs {
		if !o.matches(r.Origin) {
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
