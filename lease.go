package tether

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Lease claims the lease called name for the current window of length d (the
// windows are aligned to the Unix epoch), so that of any number of nodes
// sharing the store, one does a piece of background work per window — such as
// delivering a webhook endpoint's events in order. ok reports whether this
// caller got it; until is when the window ends, after which the holder must
// claim the next one. Nodes whose clocks disagree may briefly both hold a
// lease, so the work must tolerate that (webhooks: the same webhook-id twice).
//
// It rides on the store's replay guard: each window is one key consumed once.
func (m *Manager) Lease(ctx context.Context, name string, d time.Duration) (until time.Time, ok bool, err error) {
	if d <= 0 {
		return time.Time{}, false, BadInput("lease length must be positive")
	}
	return m.claim(ctx, name, d, m.now().Truncate(d))
}

// Renew claims the window of length d that follows the one ending at until,
// which the caller holds, so that a holder goes on without a gap at the turn
// of the window; ok is false if another node claimed it first.
func (m *Manager) Renew(ctx context.Context, name string, d time.Duration, until time.Time) (next time.Time, ok bool, err error) {
	if d <= 0 || !until.Equal(until.Truncate(d)) {
		return time.Time{}, false, BadInput("renew a window of positive length at its end")
	}
	return m.claim(ctx, name, d, until)
}

// claim consumes the window of length d that begins at start.
func (m *Manager) claim(ctx context.Context, name string, d time.Duration, start time.Time) (until time.Time, ok bool, err error) {
	until = start.Add(d)
	err = m.store.Consume(ctx, fmt.Sprintf("lease:%s:%d", name, start.UnixNano()), until)
	switch {
	case errors.Is(err, ErrReplayed):
		return until, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("tether: lease: %w", err)
	}
	return until, true, nil
}

// State returns the service's own durable state under key (nil if none), such
// as how far a webhook endpoint has been delivered.
func (m *Manager) State(ctx context.Context, key string) ([]byte, error) {
	v, err := m.store.GetState(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("tether: get state: %w", err)
	}
	return v, nil
}

// SetState replaces the state under key.
func (m *Manager) SetState(ctx context.Context, key string, value []byte) error {
	if err := m.store.PutState(ctx, key, value); err != nil {
		return fmt.Errorf("tether: put state: %w", err)
	}
	return nil
}
