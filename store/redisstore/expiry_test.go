package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/storetest"
)

// TestCreateIDTooLong: an ID longer than an expiry index entry can hold is
// refused as bad input, and nothing is written.
func TestCreateIDTooLong(t *testing.T) {
	addr := servicetest.SharedRedis(t)
	s := openTest(t, "redis://"+addr, addr)
	r := benchRecord("long-id")
	r.ID = strings.Repeat("a", maxIDLen+1)
	if err := s.Create(context.Background(), r); !errors.Is(err, tether.ErrBadInput) {
		t.Fatalf("Create(ID of %d bytes) = %v; want ErrBadInput", len(r.ID), err)
	}
	if _, err := s.Get(context.Background(), r.ID); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("Get after the refused Create = %v; want ErrNotFound", err)
	}
}

// TestExpiredRecord reads expiry index members as recordLua's expiryMember
// writes them, and refuses truncated ones.
func TestExpiredRecord(t *testing.T) {
	exp := time.UnixMicro(1_765_000_000_123_456)
	member := "\x03abc" + string([]byte{0, 6, 69, 66, 22, 9, 50, 64}) + "alice"
	tests := []struct {
		name, member string
		want         *tether.Record // nil: an error
	}{
		{"whole", member, &tether.Record{ID: "abc", Subject: "alice", ExpiresAt: exp, IdleExpiresAt: time.UnixMicro(42)}},
		{"no subject", member[:12], &tether.Record{ID: "abc", ExpiresAt: exp, IdleExpiresAt: time.UnixMicro(42)}},
		{"empty", "", nil},
		{"short expiry", member[:11], nil},
		{"longer ID than the member", "\xffabc", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expiredRecord(tt.member, 42)
			switch {
			case tt.want == nil && err == nil:
				t.Fatalf("expiredRecord(%q) = %+v; want an error", tt.member, got)
			case tt.want != nil && (err != nil || got.ID != tt.want.ID || got.Subject != tt.want.Subject ||
				!got.ExpiresAt.Equal(tt.want.ExpiresAt) || !got.IdleExpiresAt.Equal(tt.want.IdleExpiresAt)):
				t.Fatalf("expiredRecord(%q) = %+v, %v; want %+v", tt.member, got, err, tt.want)
			}
		})
	}
}

// TestSweepRecordsBacklog: one sweep records every due expiry, not only one
// batch's, whatever the backlog (within sweepBudget).
func TestSweepRecordsBacklog(t *testing.T) {
	tests := []struct {
		name string
		due  int
	}{
		{"one batch", expiryBatch},
		{"several batches", 2*expiryBatch + 200},
	}
	addr := servicetest.SharedRedis(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			url := "redis://" + addr + "?prefix=" + servicetest.RedisPrefix(t, addr)
			var ahead atomic.Int64 // the store's clock minus the real one
			now := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
			s, err := open(ctx, url, Options{Timeout: 10 * time.Second, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			sub := "backlog-" + tether.NewID()
			for range tt.due {
				if err := s.Create(ctx, storetest.ScaleRecord(sub)); err != nil {
					t.Fatal(err)
				}
			}
			ahead.Store(int64(3 * time.Hour)) // every idle expiry is past
			if err := s.sweepExpired(ctx); err != nil {
				t.Fatal(err)
			}
			if left, err := s.c.Do(ctx, s.c.B().Zcard().Key(s.expiryKey(0)).Build()).AsInt64(); err != nil || left != 0 {
				t.Errorf("after one sweep the expiry index holds %d entries (%v); want 0", left, err)
			}
			expired := 0
			q := tether.EventQuery{Subject: sub, Type: tether.EventSessionExpired, Limit: tether.MaxEventLimit}
			for {
				p, err := s.Events(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Events) == 0 {
					break
				}
				expired += len(p.Events)
				q.After = p.Next
			}
			if expired != tt.due {
				t.Errorf("one sweep wrote %d session.expired; want %d", expired, tt.due)
			}
		})
	}
}

// BenchmarkSweep loads b.N sessions, then times the sweeps that record them
// all expired (by a store whose clock is three hours ahead), each removed
// with its session.expired event, expiryBatch per script.
func BenchmarkSweep(b *testing.B) {
	addr := servicetest.SharedRedis(b)
	url := "redis://" + addr + "?prefix=" + servicetest.RedisPrefix(b, addr)
	ctx := context.Background()
	openNoSweep := func(now func() time.Time) *Store {
		s, err := open(ctx, url, Options{Timeout: time.Minute, Now: now})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	load := openNoSweep(nil)
	sweeper := openNoSweep(func() time.Time { return time.Now().Add(3 * time.Hour) })
	for i := range b.N {
		if err := load.Create(ctx, benchRecord("bench-sweep-"+strconv.Itoa(i/100))); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for {
		left, err := sweeper.c.Do(ctx, sweeper.c.B().Zcard().Key(sweeper.expiryKey(0)).Build()).AsInt64()
		if err != nil {
			b.Fatal(err)
		}
		if left == 0 {
			break
		}
		if err := sweeper.sweepExpired(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sessions/s")
}
