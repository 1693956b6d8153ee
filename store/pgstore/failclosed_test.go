package pgstore

import (
	"errors"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
)

// TestFailClosed cuts the store off from the database with a proxy and checks
// that every call fails with ErrUnavailable, the Watcher reports ChannelLost,
// a Manager refuses a token it had cached, and that all of it recovers when
// the database is reachable again, without reopening.
func TestFailClosed(t *testing.T) {
	dbURL, _ := freshDB(t)
	px := servicetest.NewProxy(t, servicetest.HostOf(t, dbURL))
	s := openStore(t, servicetest.WithHost(t, dbURL, px.Addr), Options{
		ConnectTimeout: time.Second, QueryTimeout: 2 * time.Second, HeartbeatInterval: time.Second,
	})
	changes := watch(t, s)
	waitChange(t, changes, tether.ChannelRestored)

	// An hour of staleness: only the lost channel can stop the cache serving.
	m, err := tether.NewManager(tether.Config{Store: s, MaxStaleness: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	token, sess, err := m.Create(ctx, tether.CreateParams{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "token cached", func() bool {
		_, err := m.Validate(ctx, token)
		return err == nil && m.Stats().CachedSessions == 1
	})
	r := newRecord("alice", time.Hour)
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}

	px.Stop()
	waitChange(t, changes, tether.ChannelLost)
	// The Manager's own watcher learns of the loss on its own connection; from
	// then on it must fail closed, never answer from its cache or say "invalid".
	eventually(t, "Manager refuses the cached token", func() bool {
		_, err := m.Validate(ctx, token)
		if err != nil && !errors.Is(err, tether.ErrUnavailable) {
			t.Fatalf("Validate with the store down = %v, want ErrUnavailable", err)
		}
		return err != nil
	})
	for range 3 { // and keeps refusing
		if got, err := m.Validate(ctx, token); !errors.Is(err, tether.ErrUnavailable) || got != nil {
			t.Fatalf("Validate with the store down = %v, %v; want nil, ErrUnavailable", got, err)
		}
	}

	got, err := s.Get(ctx, r.ID)
	if got != nil {
		t.Fatalf("Get with the store down returned a record")
	}
	wantUnavailable(t, "Get", err)
	_, err = s.List(ctx, "alice")
	wantUnavailable(t, "List", err)
	_, err = s.Roles(ctx, "alice")
	wantUnavailable(t, "Roles", err)
	wantUnavailable(t, "Create", s.Create(ctx, newRecord("alice", time.Hour)))
	wantUnavailable(t, "Touch", s.Touch(ctx, r.ID, time.Now(), time.Now().Add(time.Hour)))
	wantUnavailable(t, "Rotate", s.Rotate(ctx, r.ID, r.SecretHash, [32]byte{1}))
	wantUnavailable(t, "Delete", s.Delete(ctx, r.ID))
	_, err = s.DeleteSubject(ctx, "alice", "")
	wantUnavailable(t, "DeleteSubject", err)
	wantUnavailable(t, "SetRoles", s.SetRoles(ctx, "alice", []string{"x"}))
	wantUnavailable(t, "Consume", s.Consume(ctx, "jti", time.Now().Add(time.Minute)))
	wantUnavailable(t, "Ping", s.Ping(ctx))
	_, err = s.sweep(ctx)
	wantUnavailable(t, "sweep", err)

	px.Start(t)
	waitChange(t, changes, tether.ChannelRestored)
	eventually(t, "store recovers", func() bool { return s.Ping(ctx) == nil })
	if got, err := s.Get(ctx, r.ID); err != nil || got.ID != r.ID {
		t.Fatalf("Get after recovery = %v, %v", got, err)
	}
	eventually(t, "Manager recovers", func() bool {
		got, err := m.Validate(ctx, token)
		return err == nil && got.ID == sess.ID
	})
}

// TestTerminatedBackends kills the store's server connections from an admin
// session, as a failover or an operator would: the Watcher reports the loss
// and comes back, and the pool reconnects without reopening.
func TestTerminatedBackends(t *testing.T) {
	dbURL, dbName := freshDB(t)
	s := openStore(t, dbURL, Options{})
	changes := watch(t, s)
	waitChange(t, changes, tether.ChannelRestored)
	r := newRecord("bob", time.Hour)
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	admin := adminConn(t)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid()`, dbName); err != nil {
		t.Fatal(err)
	}
	waitChange(t, changes, tether.ChannelLost)
	waitChange(t, changes, tether.ChannelRestored)
	// The pooled connection was killed too. A call may fail once (closed
	// and reported as ErrUnavailable, never as a wrong answer); then it works.
	eventually(t, "Get recovers", func() bool {
		got, err := s.Get(ctx, r.ID)
		if err != nil && !errors.Is(err, tether.ErrUnavailable) {
			t.Fatalf("Get = %v, want a record or ErrUnavailable", err)
		}
		return err == nil && got.ID == r.ID
	})
	// And the restored channel carries changes again.
	if err := s.Delete(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	waitChange(t, changes, tether.SessionChanged)
}
