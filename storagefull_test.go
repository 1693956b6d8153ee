package tether_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

// fullStore is a store whose disk is full: every write fails as the embedded
// store's do then, and reads work.
type fullStore struct{ tether.Store }

var errFull = fmt.Errorf("%w: %w: test: no space left on device", tether.ErrUnavailable, tether.ErrStorageFull)

func (fullStore) Touch(context.Context, string, time.Time, time.Time) error { return errFull }

// A validation whose last-seen update hits a full store is served, unslid:
// the store read the session, and reads go on while the disk is full.
func TestValidateOnAFullStore(t *testing.T) {
	for _, staleness := range []time.Duration{-1, time.Hour} { // store reads, cache hits
		t.Run(fmt.Sprint("staleness=", staleness), func(t *testing.T) {
			clock := newClock()
			mem := memstore.NewWithOptions(memstore.Options{Now: clock.Now})
			m, err := tether.NewManager(tether.Config{Store: fullStore{mem}, Now: clock.Now, MaxStaleness: staleness})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			token, created, err := m.Create(ctx, tether.CreateParams{Subject: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				clock.Advance(2 * time.Minute) // a touch is due every time
				s, err := m.Validate(ctx, token)
				if err != nil {
					t.Fatalf("Validate on a full store: %v, want the session", err)
				}
				if !s.LastSeenAt.Equal(created.LastSeenAt) {
					t.Errorf("LastSeenAt = %v, want %v: a touch that failed must not show", s.LastSeenAt, created.LastSeenAt)
				}
			}
		})
	}
}
