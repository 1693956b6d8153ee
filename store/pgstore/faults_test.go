package pgstore

import (
	"errors"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/storetest"
)

// TestFaults runs the shared fault cases with a proxy between the stores
// and a fresh database: stopping it cuts every connection and refuses new
// ones, as when the database host goes away.
func TestFaults(t *testing.T) {
	newFault := func(t *testing.T) storetest.Fault {
		dbURL, _ := freshDB(t)
		px := servicetest.NewProxy(t, servicetest.HostOf(t, dbURL))
		url := servicetest.WithHost(t, dbURL, px.Addr)
		return storetest.Fault{
			Open: func(tb testing.TB) tether.Store {
				return openStore(tb, url, Options{ConnectTimeout: time.Second, QueryTimeout: 2 * time.Second, HeartbeatInterval: time.Second})
			},
			Cut:     px.Stop,
			Restore: func() { px.Start(t) },
		}
	}
	storetest.RunFaults(t, newFault)
	storetest.RunEventFaults(t, newFault)
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

// TestSweepFailsClosed: the sweeper, which RunFaults cannot reach, reports a
// cut-off database as ErrUnavailable too.
func TestSweepFailsClosed(t *testing.T) {
	dbURL, _ := freshDB(t)
	px := servicetest.NewProxy(t, servicetest.HostOf(t, dbURL))
	s := openStore(t, servicetest.WithHost(t, dbURL, px.Addr), Options{ConnectTimeout: time.Second, QueryTimeout: 2 * time.Second})
	if _, err := s.sweep(ctx); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	px.Stop()
	_, err := s.sweep(ctx)
	wantUnavailable(t, "sweep with the database cut off", err)
}
