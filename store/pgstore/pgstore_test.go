package pgstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/storetest"
)

var ctx = context.Background()

// TestConformance runs the shared suite on one fresh database, truncated
// before each case so every case starts from an empty schema.
func TestConformance(t *testing.T) {
	dbURL, _ := freshDB(t)
	openStore(t, dbURL, Options{}) // migrate once, outside the cases
	newStore := func(t *testing.T) tether.Store {
		s := openStore(t, dbURL, Options{})
		err := s.pool.AcquireFunc(ctx, func(c *pgxConn) error {
			_, err := c.Exec(ctx, `TRUNCATE tether_sessions, tether_subjects, tether_consumed, tether_events, tether_state`)
			return err
		})
		if err != nil {
			t.Fatalf("truncate: %v", err)
		}
		return s
	}
	storetest.Run(t, newStore)
	storetest.RunEvents(t, newStore)
}

func TestExpiryEvents(t *testing.T) {
	dbURL, _ := freshDB(t)
	storetest.RunExpiryEvents(t, func(t *testing.T) tether.Store {
		return openStore(t, dbURL, Options{SweepInterval: 50 * time.Millisecond})
	})
	// No sweep: only Create can report the replaced session's expiry.
	storetest.RunExpiryOnReplace(t, func(t *testing.T) tether.Store {
		return openStore(t, dbURL, Options{SweepInterval: -1})
	})
}

func TestRoundTrip(t *testing.T) {
	dbURL, _ := freshDB(t)
	s := openStore(t, dbURL, Options{})
	berlin := time.FixedZone("CEST", 2*3600)
	r := newRecord("alice", time.Hour)
	r.CreatedAt = time.Date(2025, 6, 1, 12, 0, 0, 123456000, berlin)
	r.IdleTimeout = 90*time.Minute + 1500*time.Microsecond
	r.AuthTime = time.Date(2025, 6, 1, 11, 59, 0, 999999000, time.UTC)
	r.AuthMethod = "webauthn"
	r.Metadata = map[string]string{"ip": "2001:db8::1", "user_agent": `quote " and ünïcode`}
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(r, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, raw := range []string{"redis://localhost:6379/0", "bolt:///tmp/x.db", "::not a url"} {
		if _, err := Open(ctx, raw, Options{}); !errors.Is(err, tether.ErrBadInput) {
			t.Errorf("Open(%q) = %v, want ErrBadInput", raw, err)
		}
	}
	const pw = "s3cret-Pa55word"
	// A closed port: the connect fails fast, and the error must not carry the password.
	for _, raw := range []string{
		"postgres://tether:" + pw + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		"postgresql://tether:" + pw + "@127.0.0.1:1/db?sslmode=bogus",
	} {
		_, err := Open(ctx, raw, Options{})
		if err == nil {
			t.Fatalf("Open(unreachable) succeeded")
		}
		if strings.Contains(err.Error(), pw) || strings.Contains(fmt.Sprintf("%+v", err), pw) {
			t.Fatalf("error leaks the password: %v", err)
		}
	}
	_, err := Open(ctx, "postgres://tether:"+pw+"@127.0.0.1:1/db?sslmode=disable", Options{ConnectTimeout: time.Second})
	wantUnavailable(t, "Open(unreachable)", err)
}

func TestMigrationsIdempotent(t *testing.T) {
	t.Run("sequential", func(t *testing.T) {
		dbURL, _ := freshDB(t)
		openStore(t, dbURL, Options{})
		s := openStore(t, dbURL, Options{})
		wantVersions(t, s)
	})
	t.Run("concurrent", func(t *testing.T) {
		dbURL, _ := freshDB(t)
		const n = 4
		var wg sync.WaitGroup
		stores := make([]*Store, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { stores[i], errs[i] = Open(ctx, dbURL, Options{}) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("concurrent Open %d: %v", i, err)
			}
			t.Cleanup(func() { stores[i].Close() })
		}
		wantVersions(t, stores[0])
	})
}

func wantVersions(t *testing.T, s *Store) {
	t.Helper()
	var got []int
	err := s.pool.AcquireFunc(ctx, func(c *pgxConn) error {
		rows, err := c.Query(ctx, `SELECT version FROM tether_schema_migrations ORDER BY version`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				return err
			}
			got = append(got, v)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for v := 1; v < len(migrations); v++ {
		want = append(want, v)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("applied migrations (-want +got):\n%s", d)
	}
}

// TestConcurrentCreates: 1,000 concurrent Creates all succeed and all read back.
func TestConcurrentCreates(t *testing.T) {
	dbURL, _ := freshDB(t)
	s := openStore(t, dbURL, Options{QueryTimeout: 30 * time.Second})
	const n = 1000
	recs := make([]*tether.Record, n)
	var wg sync.WaitGroup
	for i := range n {
		recs[i] = newRecord(fmt.Sprintf("user-%d", i%10), time.Hour)
		wg.Go(func() {
			if err := s.Create(ctx, recs[i]); err != nil {
				t.Errorf("Create %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, r := range recs {
		got, err := s.Get(ctx, r.ID)
		if err != nil || got.SecretHash != r.SecretHash {
			t.Fatalf("Get(%s) = %v, %v", r.ID, got, err)
		}
	}
	total := 0
	for i := range 10 {
		list, err := s.List(ctx, fmt.Sprintf("user-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		total += len(list)
	}
	if total != n {
		t.Fatalf("List found %d sessions, want %d", total, n)
	}
}

func TestSweeper(t *testing.T) {
	dbURL, _ := freshDB(t)
	var clock struct {
		sync.Mutex
		t time.Time
	}
	clock.t = time.Now().Add(-time.Hour) // behind the database: holds the sweeper back
	now := func() time.Time { clock.Lock(); defer clock.Unlock(); return clock.t }
	s := openStore(t, dbURL, Options{Now: now, SweepInterval: -1})

	live := newRecord("alice", time.Hour)
	dead := newRecord("alice", time.Hour)
	dead.ExpiresAt = time.Now().Add(-time.Minute)
	idle := newRecord("alice", time.Hour)
	idle.IdleExpiresAt = time.Now().Add(-time.Minute)
	for _, r := range []*tether.Record{live, dead, idle} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Consume(ctx, "old-jti", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Consume(ctx, "fresh-jti", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep with a clock an hour behind = %d, %v; want 0, nil", n, err)
	}
	clock.Lock()
	clock.t = time.Now().Add(24 * time.Hour) // far ahead: the database's clock still rules
	clock.Unlock()
	if n, err := s.sweep(ctx); err != nil || n != 3 {
		t.Fatalf("sweep = %d, %v; want 3 (two sessions, one key), nil", n, err)
	}
	p, err := s.Events(ctx, tether.EventQuery{Type: tether.EventSessionExpired, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]any{}
	for _, e := range p.Events {
		if _, dup := reasons[e.SessionID]; dup {
			t.Errorf("a second session.expired for %s", e.SessionID)
		}
		reasons[e.SessionID] = e.Detail["reason"]
	}
	if d := cmp.Diff(map[string]any{dead.ID: tether.ExpiryLifetime, idle.ID: tether.ExpiryIdleTimeout}, reasons); d != "" {
		t.Fatalf("session.expired events of the sweep (-want +got):\n%s", d)
	}
	if _, err := s.Get(ctx, live.ID); err != nil {
		t.Fatalf("sweeper removed a live session: %v", err)
	}
	if err := s.Consume(ctx, "fresh-jti", time.Now().Add(time.Minute)); !errors.Is(err, tether.ErrReplayed) {
		t.Fatalf("sweeper removed a live replay key: Consume = %v", err)
	}

	// The background loop does the same on its own.
	s2 := openStore(t, dbURL, Options{SweepInterval: 10 * time.Millisecond})
	gone := newRecord("bob", time.Hour)
	gone.ExpiresAt = time.Now().Add(-time.Minute)
	if err := s2.Create(ctx, gone); err != nil {
		t.Fatal(err)
	}
	eventually(t, "background sweep", func() bool {
		var n int
		err := s2.pool.AcquireFunc(ctx, func(c *pgxConn) error {
			return c.QueryRow(ctx, `SELECT count(*) FROM tether_sessions WHERE id = $1`, gone.ID).Scan(&n)
		})
		return err == nil && n == 0
	})
}

// TestLongSubjectFlushes: a payload too long for NOTIFY must not fail the
// revocation; listeners flush everything instead.
func TestLongSubjectFlushes(t *testing.T) {
	dbURL, _ := freshDB(t)
	s := openStore(t, dbURL, Options{})
	ch := watch(t, s)
	waitChange(t, ch, tether.ChannelRestored)
	if _, err := s.DeleteSubject(ctx, strings.Repeat("x", 9000), ""); err != nil {
		t.Fatalf("DeleteSubject(long subject): %v", err)
	}
	waitChange(t, ch, tether.ChannelLost)
	waitChange(t, ch, tether.ChannelRestored)
}

func TestLongConsumeKey(t *testing.T) {
	dbURL, _ := freshDB(t)
	s := openStore(t, dbURL, Options{})
	key := strings.Repeat("k", 10000)
	if err := s.Consume(ctx, key, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Consume(ctx, key, time.Now().Add(time.Minute)); !errors.Is(err, tether.ErrReplayed) {
		t.Fatalf("second Consume = %v, want ErrReplayed", err)
	}
}

// TestCloseNoLeaks: Close stops the sweeper and running Watches, and leaves
// no goroutine behind.
func TestCloseNoLeaks(t *testing.T) {
	dbURL, dbName := freshDB(t)
	base := runtime.NumGoroutine()
	s, err := Open(ctx, dbURL, Options{SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	changes := make(chan tether.Change, 16)
	done := make(chan error, 1)
	go func() { done <- s.Watch(context.Background(), func(c tether.Change) { changes <- c }) }()
	waitChange(t, changes, tether.ChannelRestored)
	if _, err := s.Get(ctx, tether.NewID()); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("Get = %v", err)
	}
	s.Close()
	if err := <-done; !errors.Is(err, tether.ErrUnavailable) {
		t.Fatalf("Watch after Close = %v, want ErrUnavailable", err)
	}
	_, err = s.Get(ctx, tether.NewID())
	wantUnavailable(t, "Get after Close", err)
	wantUnavailable(t, "Watch after Close", s.Watch(ctx, func(tether.Change) {}))
	eventually(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= base })
	var n int
	admin := adminConn(t)
	eventually(t, "connections closed", func() bool {
		err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tether' AND datname = $1`, dbName).Scan(&n)
		return err == nil && n == 0
	})
}
