package handshake

import (
	"context"
	"errors"
	"testing"

	"github.com/tetherhq/tether"
)

// TestConsumeHandshake: the Manager's view of Exchange names the local
// subject; a refusal matches both ErrInvalid and tether.ErrInvalidToken and
// keeps its Reason; a guard failure is neither.
func TestConsumeHandshake(t *testing.T) {
	e := newEnv(t)
	guard := newMemGuard(e.clock.Now)
	tok := e.mint(t, AlgEdDSA)
	h, err := e.verifier.ConsumeHandshake(context.Background(), tok, guard)
	if err != nil {
		t.Fatal(err)
	}
	if h.Issuer != issuerA || h.Subject != issuerA+"|alice" || h.ID == "" || !h.IssuedAt.Equal(e.clock.Now()) {
		t.Errorf("got %+v, want A's alice under A's prefix", h)
	}
	_, err = e.verifier.ConsumeHandshake(context.Background(), tok, guard)
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, tether.ErrInvalidToken) || Reason(err) != "replayed" {
		t.Errorf("replay: got %v (reason %q), want ErrInvalid, ErrInvalidToken, replayed", err, Reason(err))
	}
	_, err = e.verifier.ConsumeHandshake(context.Background(), e.mint(t, AlgHS256), failingGuard{})
	if err == nil || errors.Is(err, ErrInvalid) || errors.Is(err, tether.ErrInvalidToken) {
		t.Errorf("guard down: got %v, want an operational error", err)
	}
}
