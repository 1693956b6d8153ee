package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
)

// twoNodes opens two stores on one Redis and prefix, as two servers would,
// each with a Manager. Node 2's cache would serve an entry for an hour, so
// only an invalidation from node 1 can make it refuse a revoked token.
func twoNodes(t testing.TB) (m1, m2 *tether.Manager) {
	addr := servicetest.SharedRedis(t)
	url := "redis://" + addr + "?prefix=" + servicetest.RedisPrefix(t, addr)
	for i, stale := range []time.Duration{0, time.Hour} {
		s, err := Open(context.Background(), url, Options{Timeout: 10 * time.Second}) // generous: CI runs many packages at once
		if err != nil {
			t.Fatal(err)
		}
		m, err := tether.NewManager(tether.Config{Store: s, MaxStaleness: stale, Logger: quietLogger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close(); s.Close() }) // LIFO: before RedisPrefix deletes the keys
		if i == 0 {
			m1 = m
		} else {
			m2 = m
		}
	}
	return m1, m2
}

// cached waits until m serves token from its cache (its watch is up).
func cached(t testing.TB, m *tether.Manager, token string) *tether.Session {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		hits := m.Stats().CacheHits
		s, err := m.Validate(context.Background(), token)
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if m.Stats().CacheHits > hits {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal("Manager never served from its cache")
		}
		time.Sleep(time.Millisecond) // waiting for the watch to come up
	}
}

// refusedOn waits until m refuses token with ErrInvalidToken.
func refusedOn(t testing.TB, m *tether.Manager, token string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := m.Validate(context.Background(), token)
		if errors.Is(err, tether.ErrInvalidToken) {
			return
		}
		if err != nil {
			t.Fatalf("Validate = %v; want ErrInvalidToken", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("node 2 still accepts the token 5s after node 1 revoked it")
		}
		runtime.Gosched()
	}
}

func TestTwoNodes(t *testing.T) {
	ctx := context.Background()
	m1, m2 := twoNodes(t)
	sub := "alice-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := m1.SetRoles(ctx, sub, []string{"admin"}); err != nil {
		t.Fatal(err)
	}

	t.Run("Revoke", func(t *testing.T) {
		token, sess, err := m1.Create(ctx, tether.CreateParams{Subject: sub})
		if err != nil {
			t.Fatal(err)
		}
		cached(t, m2, token)
		if err := m1.Revoke(ctx, sess.ID); err != nil {
			t.Fatal(err)
		}
		refusedOn(t, m2, token)
	})

	t.Run("RoleChange", func(t *testing.T) {
		token, _, err := m1.Create(ctx, tether.CreateParams{Subject: sub})
		if err != nil {
			t.Fatal(err)
		}
		if s := cached(t, m2, token); !s.HasRole("admin") {
			t.Fatalf("roles %v; want admin", s.Roles)
		}
		if err := m1.SetRoles(ctx, sub, []string{"viewer"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "node 2 seeing the new roles", func() error {
			s, err := m2.Validate(ctx, token)
			if err != nil {
				return err
			}
			if !slices.Equal(s.Roles, []string{"viewer"}) {
				return fmt.Errorf("roles %v", s.Roles)
			}
			return nil
		})
	})

	t.Run("RevokeSubject", func(t *testing.T) {
		keep, kept, err := m1.Create(ctx, tether.CreateParams{Subject: sub})
		if err != nil {
			t.Fatal(err)
		}
		token, _, err := m1.Create(ctx, tether.CreateParams{Subject: sub})
		if err != nil {
			t.Fatal(err)
		}
		cached(t, m2, token)
		cached(t, m2, keep)
		if _, err := m1.RevokeSubject(ctx, sub, kept.ID); err != nil {
			t.Fatal(err)
		}
		refusedOn(t, m2, token)
		if _, err := m2.Validate(ctx, keep); err != nil {
			t.Fatalf("the kept session on node 2: %v", err)
		}
	})
}

// TestNoGoroutineLeak opens a store, watches it through a Manager, uses it and
// closes everything: the goroutine count must come back down.
func TestNoGoroutineLeak(t *testing.T) {
	servicetest.SharedRedis(t) // skip early without Redis
	before := runtime.NumGoroutine()
	func() {
		m1, m2 := twoNodes(t)
		token, _, err := m1.Create(context.Background(), tether.CreateParams{Subject: "leak"})
		if err != nil {
			t.Fatal(err)
		}
		cached(t, m2, token)
		// Close now rather than at the end of the test.
		m1.Close()
		m2.Close()
		m1.Store().Close()
		m2.Store().Close()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after closing:\n%s", before, runtime.NumGoroutine(),
				buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // goroutines wind down asynchronously
	}
}

// BenchmarkRevocationPropagation measures the time from the start of a revoke
// on node 1 until node 2, which holds the session in its cache, refuses the
// token: the pub/sub hop plus cache invalidation. At least 1,000 trials run,
// whatever b.N; p50 and p99 are reported.
func BenchmarkRevocationPropagation(b *testing.B) {
	ctx := context.Background()
	m1, m2 := twoNodes(b)
	n := max(b.N, 1000)
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	for range n {
		b.StopTimer()
		token, sess, err := m1.Create(ctx, tether.CreateParams{Subject: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		cached(b, m2, token)
		b.StartTimer()
		start := time.Now()
		if err := m1.Revoke(ctx, sess.ID); err != nil {
			b.Fatal(err)
		}
		refusedOn(b, m2, token)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	b.ReportMetric(float64(len(lat)), "trials")
}

func benchStore(b *testing.B) *Store {
	addr := servicetest.SharedRedis(b)
	return openTest(b, "redis://"+addr, addr)
}

func benchRecord(sub string) *tether.Record {
	n := time.Now()
	r := &tether.Record{ID: tether.NewID(), Subject: sub, CreatedAt: n, LastSeenAt: n,
		ExpiresAt: n.Add(24 * time.Hour), IdleExpiresAt: n.Add(2 * time.Hour), IdleTimeout: 2 * time.Hour,
		Metadata: map[string]string{"ip": "192.0.2.1", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"},
		AuthTime: n, AuthMethod: "password"}
	copy(r.SecretHash[:], r.ID)
	return r
}

// BenchmarkGet reads one session (record, then subject generation).
func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	r := benchRecord("bench")
	if err := s.Create(ctx, r); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Get(ctx, r.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Get(ctx, r.ID); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkCreate creates sessions, 100 per subject, and reports the Redis
// memory each one takes: its record key (MEMORY USAGE) and, all keys
// included, the growth of used_memory per session.
func BenchmarkCreate(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	used := func() int64 {
		info, err := s.c.Do(ctx, s.c.B().Info().Section("memory").Build()).ToString()
		if err != nil {
			b.Fatal(err)
		}
		for line := range strings.SplitSeq(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		b.Fatal("no used_memory in INFO")
		return 0
	}
	start := used()
	var last *tether.Record
	i := 0
	for b.Loop() {
		last = benchRecord("bench-" + strconv.Itoa(i/100))
		if err := s.Create(ctx, last); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	grown := used() - start
	rec, err := s.c.Do(ctx, s.c.B().MemoryUsage().Key(s.recKey(last.ID)).Samples(0).Build()).AsInt64()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(rec), "B/record-key")
	if i >= 1000 { // too noisy below that
		b.ReportMetric(float64(grown)/float64(i), "B/session-all-keys")
	}
}

// TestMemoryPerSession holds the record to its budget of 512 bytes of Redis
// memory, with typical metadata.
func TestMemoryPerSession(t *testing.T) {
	addr := servicetest.SharedRedis(t)
	s := openTest(t, "redis://"+addr, addr)
	ctx := context.Background()
	r := benchRecord("memory")
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	n, err := s.c.Do(ctx, s.c.B().MemoryUsage().Key(s.recKey(r.ID)).Samples(0).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEMORY USAGE of a session record: %d bytes (value %d bytes)", n, len(encode(r, 0)))
	if n > 512 {
		t.Fatalf("a session record takes %d bytes of Redis memory; budget 512", n)
	}
}

// quietLogger drops the Managers' operational logs in benchmarks.
var quietLogger = slog.New(slog.DiscardHandler)
