package pgstore

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/storetest"
)

// nodes returns an opener of stores on one fresh database, as servers sharing
// it would have: only a NOTIFY can make a node drop a cached entry.
func nodes(tb testing.TB) storetest.Open {
	dbURL, _ := freshDB(tb)
	return func(tb testing.TB) tether.Store { return openStore(tb, dbURL, Options{}) }
}

// TestTwoNodes checks that revocations and role changes reach another node.
func TestTwoNodes(t *testing.T) {
	storetest.RunNodes(t, nodes(t))
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
	storetest.BenchmarkPropagation(b, nodes(b), storetest.PropagationOptions{
		// Cache hits take µs; a short pause leaves the CPU to the watch
		// goroutine and to PostgreSQL on a small machine.
		Poll:  20 * time.Microsecond,
		Unit:  time.Millisecond,
		Split: true,
	})
}

func BenchmarkGet(b *testing.B) {
	storetest.BenchmarkGet(b, nodes(b)(b), newRecord("bench", time.Hour))
}

func BenchmarkCreate(b *testing.B) {
	s := nodes(b)(b)
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

// BenchmarkEventCost: what an event adds to a revocation and to creates.
func BenchmarkEventCost(b *testing.B) {
	storetest.BenchmarkEventCost(b, nodes(b)(b))
}

// BenchmarkSweep measures the sweeper removing expired sessions, each with its
// session.expired event, sweepBatch per statement.
func BenchmarkSweep(b *testing.B) {
	dbURL, _ := freshDB(b)
	s := openStore(b, dbURL, Options{SweepInterval: -1})
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	cols := []string{"id", "secret_hash", "subject", "created_at", "last_seen_at", "expires_at", "idle_expires_at", "idle_timeout"}
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == b.N {
			return nil, nil
		}
		i++
		return []any{tether.NewID(), make([]byte, 32), fmt.Sprint("bench-", i%1000), past, past, past, past, interval(time.Hour)}, nil
	})
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"tether_sessions"}, cols, src); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if n, err := s.sweep(ctx); err != nil || n != int64(b.N) {
		b.Fatalf("sweep = %d, %v; want %d", n, err, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}
