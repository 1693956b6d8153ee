package storetest

import (
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

// Open opens one more store on a backend that the stores it opened before
// share (one Redis and prefix, one database), as a second server would, and
// arranges for its cleanup.
type Open func(tb testing.TB) tether.Store

// TwoNodes opens two stores with open, each with a Manager, as two servers
// would. Node 2's cache would serve an entry for an hour, so only an
// invalidation from node 1 (through the store's change channel) can make it
// refuse a revoked token. The Managers and stores are closed when tb ends.
func TwoNodes(tb testing.TB, open Open) (m1, m2 *tether.Manager) {
	tb.Helper()
	quiet := slog.New(slog.DiscardHandler)
	for i, stale := range []time.Duration{0, time.Hour} {
		s := open(tb)
		m, err := tether.NewManager(tether.Config{Store: s, MaxStaleness: stale, Logger: quiet})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { m.Close() }) // LIFO: before the opener's cleanups
		if i == 0 {
			m1 = m
		} else {
			m2 = m
		}
	}
	return m1, m2
}

// Cached validates token on m until m serves it from its cache, which also
// proves m's change channel is up (the cache fills only then).
func Cached(tb testing.TB, m *tether.Manager, token string) *tether.Session {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		hits := m.Stats().CacheHits
		s, err := m.Validate(ctx, token)
		if err != nil {
			tb.Fatalf("Validate on node 2: %v", err)
		}
		if m.Stats().CacheHits > hits {
			return s
		}
		if time.Now().After(deadline) {
			tb.Fatal("node 2 never served the token from its cache")
		}
		time.Sleep(time.Millisecond) // waiting for the watch to come up
	}
}

// refused waits until m refuses token with ErrInvalidToken, pausing poll
// between tries (or yielding the processor when poll is 0).
func refused(tb testing.TB, m *tether.Manager, token string, poll time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := m.Validate(ctx, token)
		if errors.Is(err, tether.ErrInvalidToken) {
			return
		}
		if err != nil || time.Now().After(deadline) {
			tb.Fatalf("node 2 still accepts the token 10s after node 1 revoked it (err %v)", err)
		}
		if poll > 0 {
			time.Sleep(poll)
		} else {
			runtime.Gosched()
		}
	}
}

// RunNodes checks that what one node does reaches another through the
// store's change channel: a revoke, a revoke of all of a subject's sessions
// (with and without one kept) and a role change, each made on node 1, must
// reach node 2 (see TwoNodes), which holds the session in its cache.
func RunNodes(t *testing.T, open Open) {
	t.Run("Revoke", func(t *testing.T) {
		m1, m2 := TwoNodes(t, open)
		token, sess, err := m1.Create(ctx, tether.CreateParams{Subject: subject(t)})
		if err != nil {
			t.Fatal(err)
		}
		Cached(t, m2, token)
		if err := m1.Revoke(ctx, sess.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := m1.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) {
			t.Fatalf("node 1 after its own revoke: Validate = %v, want ErrInvalidToken", err)
		}
		refused(t, m2, token, time.Millisecond)
	})

	t.Run("RevokeSubject", func(t *testing.T) {
		m1, m2 := TwoNodes(t, open)
		sub := subject(t)
		keep, kept, err := m1.Create(ctx, tether.CreateParams{Subject: sub})
		if err != nil {
			t.Fatal(err)
		}
		Cached(t, m2, keep)
		var tokens []string
		for range 3 {
			token, _, err := m1.Create(ctx, tether.CreateParams{Subject: sub})
			if err != nil {
				t.Fatal(err)
			}
			Cached(t, m2, token)
			tokens = append(tokens, token)
		}
		if n, err := m1.RevokeSubject(ctx, sub, kept.ID); err != nil || n != 3 {
			t.Fatalf("RevokeSubject keeping one = %d, %v; want 3", n, err)
		}
		for _, token := range tokens {
			refused(t, m2, token, time.Millisecond)
		}
		if _, err := m2.Validate(ctx, keep); err != nil {
			t.Fatalf("the kept session on node 2: %v", err)
		}
		if n, err := m1.RevokeSubject(ctx, sub, ""); err != nil || n != 1 {
			t.Fatalf("RevokeSubject of all = %d, %v; want 1", n, err)
		}
		refused(t, m2, keep, time.Millisecond)
	})

	t.Run("RoleChange", func(t *testing.T) {
		m1, m2 := TwoNodes(t, open)
		sub := subject(t)
		if err := m1.SetRoles(ctx, sub, []string{"admin"}); err != nil {
			t.Fatal(err)
		}
		token, _, err := m1.Create(ctx, tether.CreateParams{Subject: sub})
		if err != nil {
			t.Fatal(err)
		}
		if s := Cached(t, m2, token); !s.HasRole("admin") {
			t.Fatalf("node 2 roles = %v, want admin", s.Roles)
		}
		if err := m1.SetRoles(ctx, sub, []string{"viewer"}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			s, err := m2.Validate(ctx, token)
			if err != nil {
				t.Fatalf("Validate on node 2: %v", err)
			}
			if slices.Equal(s.Roles, []string{"viewer"}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node 2 roles = %v 15s after the change, want viewer", s.Roles)
			}
			time.Sleep(2 * time.Millisecond) // a poll interval
		}
	})
}

// PropagationOptions tunes BenchmarkPropagation to a backend.
type PropagationOptions struct {
	// Poll is the pause between node 2's validations while it still accepts
	// the token; 0 yields the processor instead. A pause leaves the CPU to
	// the watch goroutine and to a database server on a small machine.
	Poll time.Duration
	// Unit is the unit of the reported times: time.Microsecond (p50-µs,
	// p99-µs, max-µs; also the default) or time.Millisecond (p50-ms, p99-ms,
	// max-ms).
	Unit time.Duration
	// Split also reports the Revoke call alone (revoke-call-p50, -p99) and
	// what follows its return (after-commit-p50, -p99: delivery of the change
	// and node 2's cache drop), in Unit.
	Split bool
}

// BenchmarkPropagation measures, over at least 1,000 trials whatever b.N,
// the time from the start of a Revoke on node 1 until node 2 (see TwoNodes),
// which holds the token in its cache, refuses it. It reports p50 and p99 (and
// max and the trial count) with b.ReportMetric, named after opts.Unit.
func BenchmarkPropagation(b *testing.B, open Open, opts PropagationOptions) {
	m1, m2 := TwoNodes(b, open)
	trials := max(b.N, 1000)
	lat := make([]time.Duration, 0, trials)
	call := make([]time.Duration, 0, trials)  // the Revoke call alone
	after := make([]time.Duration, 0, trials) // from Revoke's return to node 2's refusal
	b.ResetTimer()
	for range trials {
		b.StopTimer()
		token, sess, err := m1.Create(ctx, tether.CreateParams{Subject: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		Cached(b, m2, token)
		b.StartTimer()
		start := time.Now()
		if err := m1.Revoke(ctx, sess.ID); err != nil {
			b.Fatal(err)
		}
		call = append(call, time.Since(start))
		refused(b, m2, token, opts.Poll)
		lat = append(lat, time.Since(start))
		after = append(after, lat[len(lat)-1]-call[len(call)-1])
	}
	b.StopTimer()
	unit, suffix := opts.Unit, "µs"
	if unit == time.Millisecond {
		suffix = "ms"
	} else {
		unit = time.Microsecond
	}
	in := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(unit/time.Microsecond) }
	report := func(prefix string, d []time.Duration) {
		slices.Sort(d)
		b.ReportMetric(in(d[(len(d)-1)*50/100]), prefix+"p50-"+suffix)
		b.ReportMetric(in(d[(len(d)-1)*99/100]), prefix+"p99-"+suffix)
	}
	report("", lat)
	if opts.Split {
		report("revoke-call-", call)
		report("after-commit-", after)
	}
	b.ReportMetric(in(lat[len(lat)-1]), "max-"+suffix)
	b.ReportMetric(float64(len(lat)), "trials")
}

// BenchmarkGet reads the session r from s, which it first creates there:
// serially, then from GOMAXPROCS goroutines.
func BenchmarkGet(b *testing.B, s tether.Store, r *tether.Record) {
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
