package pgstore

import (
	"crypto/rand"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/storetest"
)

// TestScale shows that List and DeleteSubject for one subject cost
// O(that subject's sessions), not O(all sessions): the (subject, created_at)
// index at work. It makes two fresh databases on one server: one holding
// about 1,000 sessions, the other 1,000,000 more (loaded by COPY). On each it
// makes 100 subjects of 10 sessions, then times List and DeleteSubject on
// both, alternating between the two databases call by call so that a busy
// machine slows both alike, and checks that the medians are about equal.
// Only with TETHER_SCALE=1:
//
//	TETHER_SCALE=1 go test -run TestScale -v -timeout 30m ./store/pgstore/
//
// TETHER_SCALE_SESSIONS overrides the 1,000,000.
func TestScale(t *testing.T) {
	total := storetest.ScaleSessions(t)
	open := func() *Store {
		dbURL, _ := freshDB(t)
		// A generous QueryTimeout (also the connections' statement_timeout):
		// the load's COPYs are long on a busy machine.
		return openStore(t, dbURL, Options{SweepInterval: -1, QueryTimeout: 2 * time.Minute})
	}
	small, large := open(), open()

	start := time.Now()
	copySessions(t, large, "bulk", total)
	load := time.Since(start)
	var size string
	if err := large.pool.QueryRow(ctx, `SELECT pg_size_pretty(pg_total_relation_size('tether_sessions'))`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %d sessions in %v with COPY and ANALYZE; tether_sessions with its indexes: %s", total, load.Round(time.Millisecond), size)

	ops := storetest.MeasureSubjectOps(t, []tether.Store{small, large})
	for i, n := range []int{1000, total + 1000} {
		t.Logf("%d sessions in the database: %s", n, ops[i])
	}
	storetest.CheckSubjectScaling(t, ops[0], ops[1], total)
}

// copySessions COPYs n sessions, 10 per subject, into tether_sessions, then
// ANALYZEs it as autovacuum would after a load. A sample is read back
// through Get and List.
func copySessions(t *testing.T, s *Store, tag string, n int) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	md := map[string]string{"ip": "192.0.2.1", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"}
	cols := []string{"id", "secret_hash", "subject", "created_at", "last_seen_at", "expires_at",
		"idle_expires_at", "idle_timeout", "metadata", "auth_time", "auth_method"}
	// In chunks: each COPY is one statement under the statement_timeout.
	const chunk = 20_000
	for first := 0; first < n; first += chunk {
		i, end := first, min(first+chunk, n)
		src := pgx.CopyFromFunc(func() ([]any, error) {
			if i >= end {
				return nil, nil
			}
			secret := make([]byte, 32)
			rand.Read(secret)
			row := []any{tether.NewID(), secret, tag + "-" + strconv.Itoa(i/10),
				now, now, now.Add(24 * time.Hour), now.Add(2 * time.Hour), interval(2 * time.Hour),
				md, now, "password"}
			i++
			return row, nil
		})
		copied, err := s.pool.CopyFrom(ctx, pgx.Identifier{"tether_sessions"}, cols, src)
		if err != nil || copied != int64(end-first) {
			t.Fatalf("COPY = %d rows, %v; want %d", copied, err, end-first)
		}
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE tether_sessions`); err != nil {
		t.Fatal(err)
	}
	recs, err := s.List(ctx, tag+"-0")
	if err != nil || len(recs) != min(10, n) {
		t.Fatalf("List of a loaded subject = %d records, %v; want %d", len(recs), err, min(10, n))
	}
	if _, err := s.Get(ctx, recs[0].ID); err != nil {
		t.Fatalf("Get of a loaded session: %v", err)
	}
}
