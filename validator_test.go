package tether

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestValidationCache: the exported cache keeps the Manager's promises for a
// validator that reads from elsewhere.
func TestValidationCache(t *testing.T) {
	ctx := context.Background()
	token, pt := newToken("")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	live := &Session{ID: pt.id, Subject: "alice", Roles: []string{"a"}, Metadata: map[string]string{},
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour), IdleExpiresAt: now.Add(time.Hour)}

	type call struct {
		advance time.Duration
		change  *Change
		answer  error // what read returns: nil is the live session
		other   bool  // read answers for another session
		wantErr error
		reads   int // reads so far, after this call
	}
	up := &Change{Kind: ChannelRestored}
	tests := []struct {
		name      string
		staleness time.Duration
		calls     []call
	}{
		{"cached while the channel is up", 0, []call{
			{change: up, reads: 1}, {reads: 1}, {reads: 1}}},
		{"nothing cached before the channel is up", 0, []call{
			{reads: 1}, {reads: 2}, {change: up, reads: 3}, {reads: 3}}},
		{"channel lost: nothing served", 0, []call{
			{change: up, reads: 1}, {change: &Change{Kind: ChannelLost}, reads: 2}, {reads: 3}}},
		{"session change drops it", 0, []call{
			{change: up, reads: 1}, {change: &Change{Kind: SessionChanged, SessionID: pt.id}, answer: ErrInvalidToken, wantErr: ErrInvalidToken, reads: 2}}},
		{"subject change drops it", 0, []call{
			{change: up, reads: 1}, {change: &Change{Kind: SubjectChanged, Subject: "alice"}, reads: 2}, {reads: 2}}},
		{"never past the staleness bound", time.Second, []call{
			{change: up, reads: 1}, {advance: 999 * time.Millisecond, reads: 1}, {advance: time.Millisecond, answer: ErrUnavailable, wantErr: ErrUnavailable, reads: 2}}},
		{"a failed read stops serving until one succeeds", 0, []call{
			{change: up, reads: 1}, {change: &Change{Kind: SessionChanged, SessionID: pt.id}, answer: ErrUnavailable, wantErr: ErrUnavailable, reads: 2},
			{reads: 3}, {reads: 3}}},
		{"expired while cached", 2 * time.Hour, []call{
			{change: up, reads: 1}, {advance: time.Hour, answer: ErrInvalidToken, wantErr: ErrInvalidToken, reads: 2}}},
		{"an answer for another session is refused", 0, []call{
			{change: up, other: true, wantErr: ErrUnavailable, reads: 1}, {reads: 2}}},
		{"cache disabled", -1, []call{
			{change: up, reads: 1}, {reads: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := now
			v := NewValidationCache(CacheConfig{MaxStaleness: tt.staleness, Now: func() time.Time { return clock }})
			reads := 0
			for i, c := range tt.calls {
				clock = clock.Add(c.advance)
				if c.change != nil {
					v.Apply(*c.change)
				}
				s, err := v.Validate(ctx, token, func(context.Context, string) (*Session, error) {
					reads++
					switch {
					case c.answer != nil:
						return nil, fmt.Errorf("read: %w", c.answer)
					case c.other:
						o := *live
						o.ID = NewID()
						return &o, nil
					}
					return live, nil
				})
				if !errors.Is(err, c.wantErr) || (err == nil) != (c.wantErr == nil) {
					t.Fatalf("call %d: got %v, want %v", i, err, c.wantErr)
				}
				if err == nil && (s.ID != live.ID || s.Subject != "alice") {
					t.Fatalf("call %d: got %+v", i, s)
				}
				if err != nil && s != nil {
					t.Fatalf("call %d: a session beside an error", i)
				}
				if reads != c.reads {
					t.Fatalf("call %d: %d reads so far, want %d", i, reads, c.reads)
				}
			}
		})
	}

	t.Run("a malformed token is refused without a read", func(t *testing.T) {
		v := NewValidationCache(CacheConfig{})
		_, err := v.Validate(ctx, "garbage", func(context.Context, string) (*Session, error) {
			t.Fatal("read called")
			return nil, nil
		})
		if !errors.Is(err, ErrInvalidToken) {
			t.Errorf("got %v, want ErrInvalidToken", err)
		}
	})
	t.Run("the wrong secret for a cached session is refused", func(t *testing.T) {
		v := NewValidationCache(CacheConfig{})
		v.Apply(Change{Kind: ChannelRestored})
		read := func(_ context.Context, raw string) (*Session, error) {
			if raw != token {
				return nil, ErrInvalidToken
			}
			return live, nil
		}
		if _, err := v.Validate(ctx, token, read); err != nil {
			t.Fatal(err)
		}
		forged, _ := newToken(pt.id) // same ID, another secret
		if _, err := v.Validate(ctx, forged, read); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("got %v, want ErrInvalidToken", err)
		}
	})
}
