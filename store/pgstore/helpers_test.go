package pgstore

import (
	"context"
	"crypto/rand"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
)

// pgxConn shortens the pool callbacks in tests.
type pgxConn = pgxpool.Conn

// adminConn connects to the server the tests create their databases on,
// skipping the test (failing it on CI) when none is reachable.
func adminConn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, servicetest.PostgresURL())
	if err != nil {
		servicetest.SkipOrFail(t, "PostgreSQL unreachable (set TETHER_TEST_POSTGRES_URL): %v", err)
	}
	t.Cleanup(func() { closeConn(c) })
	return c
}

// freshDB creates an empty database, dropped when t ends, and returns its URL
// and name.
func freshDB(t testing.TB) (string, string) {
	t.Helper()
	dbURL := servicetest.FreshPostgres(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return dbURL, strings.TrimPrefix(u.Path, "/")
}

func openStore(t testing.TB, rawURL string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), rawURL, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// watch runs s.Watch until the test ends and returns its changes.
func watch(t testing.TB, s *Store) <-chan tether.Change {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan tether.Change, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, func(c tether.Change) { ch <- c })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

// waitChange waits for a change of kind, skipping others.
func waitChange(t testing.TB, ch <-chan tether.Change, kind tether.ChangeKind) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case c := <-ch:
			if c.Kind == kind {
				return
			}
		case <-deadline:
			t.Fatalf("no change of kind %d within 15s", kind)
		}
	}
}

// eventually polls cond until it holds or the deadline passes; no fixed sleeps.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(2 * time.Millisecond) // a poll interval, not a wait for an outcome
	}
}

func newRecord(subject string, lifetime time.Duration) *tether.Record {
	n := time.Now().UTC().Truncate(time.Microsecond)
	r := &tether.Record{
		ID: tether.NewID(), Subject: subject,
		CreatedAt: n, LastSeenAt: n, ExpiresAt: n.Add(lifetime), IdleExpiresAt: n.Add(lifetime),
		IdleTimeout: lifetime,
	}
	rand.Read(r.SecretHash[:])
	return r
}

func wantUnavailable(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, tether.ErrUnavailable) {
		t.Fatalf("%s = %v, want an error wrapping ErrUnavailable", what, err)
	}
}
