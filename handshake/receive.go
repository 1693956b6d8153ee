package handshake

import (
	"context"
	"errors"
	"fmt"

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
	}, nil
}
