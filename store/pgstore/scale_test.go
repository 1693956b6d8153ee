package pgstore

import (
	"crypto/rand"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tetherhq/tether"
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
	if os.Getenv("TETHER_SCALE") != "1" {
		t.Skip("set TETHER_SCALE=1 to load a million sessions")
	}
	total := 1_000_000
	if v := os.Getenv("TETHER_SCALE_SESSIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TETHER_SCALE_SESSIONS=%q", v)
		}
		total = n
	}
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

	ops := measureSubjectOps(t, []*Store{small, large})
	for i, n := range []int{1000, total + 1000} {
		t.Logf("%d sessions in the database: %s", n, ops[i])
	}
	for _, c := range []struct {
		op         string
		small, big time.Duration
	}{{"List", ops[0].list[0], ops[1].list[0]}, {"DeleteSubject", ops[0].del[0], ops[1].del[0]}} {
		ratio := float64(c.big) / float64(c.small)
		t.Logf("%s of a 10-session subject, p50: %v among 1,000 sessions, %v among %d: ×%.2f", c.op, c.small, c.big, total+1000, ratio)
		// O(all sessions) would be ×1000; this allows for a noisy machine.
		if ratio > 3 {
			t.Errorf("%s for a 10-session subject is %.1f× slower with %d sessions loaded: not O(subject)", c.op, ratio, total)
		}
	}
}

// subjectOps holds p50 and p99 of List and DeleteSubject.
type subjectOps struct{ list, del [2]time.Duration }

func (o subjectOps) String() string {
	return fmt.Sprintf("List of a 10-session subject p50 %v p99 %v; DeleteSubject p50 %v p99 %v",
		o.list[0], o.list[1], o.del[0], o.del[1])
}

// measureSubjectOps makes 100 subjects of 10 sessions on every store, lists
// 50 of them 20 times each and revokes all sessions of the other 50, taking
// turns between the stores call by call.
func measureSubjectOps(t *testing.T, stores []*Store) []subjectOps {
	t.Helper()
	const subjects, per = 100, 10
	sub := func(i int) string { return fmt.Sprintf("target-%d", i) }
	for _, s := range stores {
		for i := range subjects {
			for range per {
				if err := s.Create(ctx, newRecord(sub(i), 24*time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	list := make([][]time.Duration, len(stores))
	del := make([][]time.Duration, len(stores))
	for rep := range 21 {
		for i := range subjects / 2 {
			for _, j := range order(rep*subjects+i, len(stores)) {
				s := stores[j]
				start := time.Now()
				recs, err := s.List(ctx, sub(i))
				d := time.Since(start)
				if err != nil || len(recs) != per {
					t.Fatalf("List = %d records, %v; want %d", len(recs), err, per)
				}
				if rep > 0 { // the first round warms up
					list[j] = append(list[j], d)
				}
			}
		}
	}
	for i := subjects / 2; i < subjects; i++ {
		for _, j := range order(i, len(stores)) {
			s := stores[j]
			start := time.Now()
			n, err := s.DeleteSubject(ctx, sub(i), "")
			d := time.Since(start)
			if err != nil || n != per {
				t.Fatalf("DeleteSubject = %d, %v; want %d", n, err, per)
			}
			del[j] = append(del[j], d)
		}
	}
	out := make([]subjectOps, len(stores))
	for j := range stores {
		out[j] = subjectOps{list: percentiles(list[j]), del: percentiles(del[j])}
	}
	return out
}

// order is 0…n-1, reversed when turn is odd: neither store always goes first.
func order(turn, n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	if turn%2 == 1 {
		slices.Reverse(o)
	}
	return o
}

func percentiles(d []time.Duration) [2]time.Duration {
	slices.Sort(d)
	return [2]time.Duration{
		d[(len(d)-1)*50/100].Round(time.Microsecond),
		d[(len(d)-1)*99/100].Round(time.Microsecond),
	}
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
