package tether_test

import (
	"context"
	"testing"

	"github.com/tetherhq/tether"
)

// TestManagerInvalidate: a forwarded session or subject change drops the
// Manager's cached entry, so the next validation reads the store; a channel
// state from elsewhere changes nothing.
func TestManagerInvalidate(t *testing.T) {
	tests := []struct {
		name     string
		change   func(s *tether.Session) tether.Change
		wantRead bool
	}{
		{"session", func(s *tether.Session) tether.Change {
			return tether.Change{Kind: tether.SessionChanged, SessionID: s.ID}
		}, true},
		{"subject", func(s *tether.Session) tether.Change {
			return tether.Change{Kind: tether.SubjectChanged, Subject: s.Subject}
		}, true},
		{"another session", func(*tether.Session) tether.Change {
			return tether.Change{Kind: tether.SessionChanged, SessionID: tether.NewID()}
		}, false},
		{"channel lost elsewhere", func(*tether.Session) tether.Change { return tether.Change{Kind: tether.ChannelLost} }, false},
		{"channel restored elsewhere", func(*tether.Session) tether.Change { return tether.Change{Kind: tether.ChannelRestored} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tether.Config{}, false)
			token, s := e.create(t, "alice")
			for range 2 { // the second is a cache hit
				if _, err := e.m.Validate(context.Background(), token); err != nil {
					t.Fatal(err)
				}
			}
			before := e.m.Stats().CacheMisses
			e.m.Invalidate(tt.change(s))
			if _, err := e.m.Validate(context.Background(), token); err != nil {
				t.Fatal(err)
			}
			if read := e.m.Stats().CacheMisses > before; read != tt.wantRead {
				t.Errorf("store read after Invalidate: got %v, want %v", read, tt.wantRead)
			}
		})
	}
}
