package pgstore

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

// twoNodes opens two Stores on one database, each with a Manager whose cache
// would serve for an hour: only a NOTIFY can make node 2 drop an entry.
func twoNodes(t testing.TB) (m1, m2 *tether.Manager) {
	dbURL, _ := freshDB(t)
	for _, m := range []**tether.Manager{&m1, &m2} {
		s := openStore(t, dbURL, Options{})
		var err error
		*m, err = tether.NewManager(tether.Config{Store: s, MaxStaleness: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { (*m).Close() })
	}
	return m1, m2
}

// cachedOn validates token on m until m serves it from its cache, which also
// proves m's change channel is up (the cache fills only then).
func cachedOn(t testing.TB, m *tether.Manager, token string) {
	t.Helper()
	eventually(t, "token cached on node 2", func() bool {
		hits := m.Stats().CacheHits
		_, err := m.Validate(ctx, token)
		if err != nil {
			t.Fatalf("Validate on node 2: %v", err)
		}
		return m.Stats().CacheHits > hits
	})
}

func TestRevocationPropagates(t *testing.T) {
	m1, m2 := twoNodes(t)
	token, sess, err := m1.Create(ctx, tether.CreateParams{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cachedOn(t, m2, token)
	if err := m1.Revoke(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m1.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) {
		t.Fatalf("node 1 after its own revoke: Validate = %v, want ErrInvalidToken", err)
	}
	eventually(t, "node 2 refuses the revoked token", func() bool {
		_, err := m2.Validate(ctx, token)
		return errors.Is(err, tether.ErrInvalidToken)
	})
}

func TestRevokeSubjectPropagates(t *testing.T) {
	m1, m2 := twoNodes(t)
	var tokens []string
	for range 3 {
		token, _, err := m1.Create(ctx, tether.CreateParams{Subject: "carol"})
		if err != nil {
			t.Fatal(err)
		}
		cachedOn(t, m2, token)
		tokens = append(tokens, token)
	}
	if n, err := m1.RevokeSubject(ctx, "carol", ""); err != nil || n != 3 {
		t.Fatalf("RevokeSubject = %d, %v; want 3", n, err)
	}
	for _, token := range tokens {
		eventually(t, "node 2 refuses every token of the subject", func() bool {
			_, err := m2.Validate(ctx, token)
			return errors.Is(err, tether.ErrInvalidToken)
		})
	}
}

func TestRoleChangePropagates(t *testing.T) {
	m1, m2 := twoNodes(t)
	if err := m1.SetRoles(ctx, "dave", []string{"admin"}); err != nil {
		t.Fatal(err)
	}
	token, _, err := m1.Create(ctx, tether.CreateParams{Subject: "dave"})
	if err != nil {
		t.Fatal(err)
	}
	cachedOn(t, m2, token)
	if s, _ := m2.Validate(ctx, token); !s.HasRole("admin") {
		t.Fatalf("node 2 roles = %v, want admin", s.Roles)
	}
	if err := m1.SetRoles(ctx, "dave", []string{"viewer"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node 2 sees the new roles", func() bool {
		s, err := m2.Validate(ctx, token)
		if err != nil {
			t.Fatalf("Validate on node 2: %v", err)
		}
		return slices.Equal(s.Roles, []string{"viewer"})
	})
}

// BenchmarkRevocationPropagation measures, over at least 1,000 trials, the
// time from the start of a Revoke on node 1 until node 2 (which had the token
// cached, with an hour of allowed staleness) refuses it: p50-ms and p99-ms.
// It also splits that time into the Revoke call (revoke-call-*: the DELETE and
// its COMMIT, whose WAL flush dominates on slow disks) and what follows it
// (after-commit-*: NOTIFY delivery and node 2's cache drop).
//
//	go test -run '^$' -bench RevocationPropagation -benchtime 1000x ./store/pgstore/
func BenchmarkRevocationPropagation(b *testing.B) {
	m1, m2 := twoNodes(b)
	trials := max(b.N, 1000)
	lat := make([]time.Duration, 0, trials)
	commit := make([]time.Duration, 0, trials)   // the Revoke call alone: mostly the COMMIT's WAL flush
	delivery := make([]time.Duration, 0, trials) // from Revoke's return to node 2's refusal: NOTIFY itself
	b.ResetTimer()
	for range trials {
		b.StopTimer()
		token, sess, err := m1.Create(ctx, tether.CreateParams{Subject: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		cachedOn(b, m2, token)
		b.StartTimer()
		start := time.Now()
		if err := m1.Revoke(ctx, sess.ID); err != nil {
			b.Fatal(err)
		}
		commit = append(commit, time.Since(start))
		deadline := start.Add(10 * time.Second)
		for {
			_, err := m2.Validate(ctx, token)
			if errors.Is(err, tether.ErrInvalidToken) {
				break
			}
			if err != nil || time.Now().After(deadline) {
				b.Fatalf("node 2 still accepts the token after 10s (err %v)", err)
			}
			// Cache hits take µs; a short pause leaves the CPU to the
			// watch goroutine and to PostgreSQL on a small machine.
			time.Sleep(20 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
		delivery = append(delivery, lat[len(lat)-1]-commit[len(commit)-1])
	}
	b.StopTimer()
	slices.Sort(lat)
	slices.Sort(commit)
	slices.Sort(delivery)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(lat, 0.50), "p50-ms")
	b.ReportMetric(pct(lat, 0.99), "p99-ms")
	b.ReportMetric(pct(commit, 0.50), "revoke-call-p50-ms")
	b.ReportMetric(pct(commit, 0.99), "revoke-call-p99-ms")
	b.ReportMetric(pct(delivery, 0.50), "after-commit-p50-ms")
	b.ReportMetric(pct(delivery, 0.99), "after-commit-p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(lat)), "trials")
}

func BenchmarkGet(b *testing.B) {
	dbURL, _ := freshDB(b)
	s := openStore(b, dbURL, Options{})
	r := newRecord("bench", time.Hour)
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

func BenchmarkCreate(b *testing.B) {
	dbURL, _ := freshDB(b)
	s := openStore(b, dbURL, Options{})
	var n atomic.Int64
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := s.Create(ctx, newRecord(fmt.Sprint("bench-", n.Add(1)%100), time.Hour)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Create(ctx, newRecord(fmt.Sprint("bench-", n.Add(1)%100), time.Hour)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
