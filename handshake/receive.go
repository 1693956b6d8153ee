package handshake

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tetherhq/tether"
)

var _ tether.HandshakeVerifier = (*Verifier)(nil)

// ConsumeHandshake is Exchange in the terms of tether.HandshakeVerifier, so
// that tether.Manager.Exchange can start the session: a refusal matches both
// ErrInvalid (Reason still names why) and tether.ErrInvalidToken.
func (v *Verifier) ConsumeHandshake(ctx context.Context, raw string, guard tether.ReplayGuard) (*tether.Handshake, error) {
	c, err := v.Exchange(ctx, raw, guard)
	if errors.Is(err, ErrInvalid) {
		return nil, fmt.Errorf("%w: %w", tether.ErrInvalidToken, err)
	}
	if err != nil {
		return nil, err
	}
	return &tether.Handshake{
		Issuer: c.Issuer, Subject: c.LocalSubject, ID: c.ID, IssuedAt: c.IssuedAt, AuthTime: c.AuthTime,
		IssuerSubject: c.Subject, SessionID: c.SessionID,
	}, nil
}

// LocalSubjects names sub of issuer as this node does: once per trusted
// entry of issuer with a distinct subject prefix; none for an issuer it does
// not trust. A receiver of that issuer's revocations (DESIGN §11) finds the
// sessions to end under these subjects.
func (v *Verifier) LocalSubjects(issuer, sub string) []string {
	var out []string
	add := func(prefix string) {
		if s := prefix + sub; !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, e := range v.jwt[issuer] {
		add(e.prefix)
	}
	for _, list := range v.paseto {
		for _, e := range list {
			if e.issuer == issuer {
				add(e.prefix)
			}
		}
	}
	return out
}
