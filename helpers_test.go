package tether_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

// clock is a fake clock that moves only when a test advances it, so expiry,
// touch throttling and cache staleness are tested without sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingStore wraps a Store and counts the calls the Manager makes. Embedding
// the interface (not *memstore.Store) hides the inner store's Watch method, so a
// Manager over a countingStore caches on the staleness bound alone.
type countingStore struct {
	tether.Store
	gets, roleReads, touches, writes atomic.Int64

	// beforeTouch, when set, runs at the start of every Touch; tests use it to
	// hold a validation at a precise point.
	beforeTouch func()
	// beforeCreate, when set, runs at the start of every Create, to land a
	// concurrent change between a caller's check and its write.
	beforeCreate func(*tether.Record)
}

func (s *countingStore) Get(ctx context.Context, id string) (*tether.Record, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, id)
}

func (s *countingStore) Roles(ctx context.Context, subject string) ([]string, error) {
	s.roleReads.Add(1)
	return s.Store.Roles(ctx, subject)
}

func (s *countingStore) Create(ctx context.Context, r *tether.Record, evs ...tether.Event) error {
	if s.beforeCreate != nil {
		s.beforeCreate(r)
	}
	s.writes.Add(1)
	return s.Store.Create(ctx, r, evs...)
}

func (s *countingStore) Touch(ctx context.Context, id string, lastSeen, idleExpires time.Time) error {
	if s.beforeTouch != nil {
		s.beforeTouch()
	}
	s.touches.Add(1)
	s.writes.Add(1)
	return s.Store.Touch(ctx, id, lastSeen, idleExpires)
}

func (s *countingStore) Rotate(ctx context.Context, id string, old, new [32]byte, evs ...tether.Event) error {
	s.writes.Add(1)
	return s.Store.Rotate(ctx, id, old, new, evs...)
}

func (s *countingStore) Delete(ctx context.Context, id string, evs ...tether.Event) error {
	s.writes.Add(1)
	return s.Store.Delete(ctx, id, evs...)
}

func (s *countingStore) DeleteSubject(ctx context.Context, subject, keepID string, evs ...tether.Event) (int, error) {
	s.writes.Add(1)
	return s.Store.DeleteSubject(ctx, subject, keepID, evs...)
}

func (s *countingStore) SetRoles(ctx context.Context, subject string, roles []string, evs ...tether.Event) error {
	s.writes.Add(1)
	return s.Store.SetRoles(ctx, subject, roles, evs...)
}

func (s *countingStore) Consume(ctx context.Context, key string, until time.Time) error {
	s.writes.Add(1)
	return s.Store.Consume(ctx, key, until)
}

// watchingStore is a countingStore that passes the inner store's Watcher on,
// and closes ready once the Manager's cache has been told the channel is up.
type watchingStore struct {
	*countingStore
	inner tether.Watcher
	ready chan struct{}
	once  sync.Once
}

func (s *watchingStore) Watch(ctx context.Context, fn func(tether.Change)) error {
	return s.inner.Watch(ctx, func(c tether.Change) {
		fn(c)
		if c.Kind == tether.ChannelRestored {
			s.once.Do(func() { close(s.ready) })
		}
	})
}

var (
	_ tether.Store   = (*countingStore)(nil)
	_ tether.Watcher = (*watchingStore)(nil)
)

// env is a Manager over a memstore, both on one fake clock.
type env struct {
	m     *tether.Manager
	mem   *memstore.Store
	store *countingStore
	clock *clock
}

// newEnv returns a Manager configured by cfg (Store and Now are filled in).
// With watch, the Manager follows the memstore's changes, and newEnv returns
// only once its cache is on.
func newEnv(t testing.TB, cfg tether.Config, watch bool) *env {
	t.Helper()
	c := newClock()
	mem := memstore.NewWithOptions(memstore.Options{Now: c.Now})
	return newEnvOn(t, cfg, mem, c, watch)
}

// newEnvOn is newEnv over an existing memstore and clock: several Managers can
// share one store, as several nodes share one database.
func newEnvOn(t testing.TB, cfg tether.Config, mem *memstore.Store, c *clock, watch bool) *env {
	t.Helper()
	cs := &countingStore{Store: mem}
	cfg.Store, cfg.Now = cs, c.Now
	var ws *watchingStore
	if watch {
		ws = &watchingStore{countingStore: cs, inner: mem, ready: make(chan struct{})}
		cfg.Store = ws
	}
	m, err := tether.NewManager(cfg)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if ws != nil && cfg.MaxStaleness >= 0 {
		select {
		case <-ws.ready:
		case <-time.After(10 * time.Second): // a deadline for a hang, not a timing
			t.Fatal("the Manager never started watching the store")
		}
	}
	return &env{m: m, mem: mem, store: cs, clock: c}
}

// create starts a session for subject and fails the test on error.
func (e *env) create(t testing.TB, subject string) (string, *tether.Session) {
	t.Helper()
	token, s, err := e.m.Create(context.Background(), tether.CreateParams{Subject: subject})
	if err != nil {
		t.Fatalf("Create(%q): %v", subject, err)
	}
	return token, s
}

// flakyStore fails every call with an error wrapping ErrUnavailable while down,
// and is a Watcher whose channel the test drives through send.
type flakyStore struct {
	inner   tether.Store
	down    atomic.Bool
	changes chan tether.Change
	applied chan struct{}
}

var (
	_ tether.Store   = (*flakyStore)(nil)
	_ tether.Watcher = (*flakyStore)(nil)
)

func newFlakyStore(inner tether.Store) *flakyStore {
	return &flakyStore{inner: inner, changes: make(chan tether.Change), applied: make(chan struct{})}
}

// send delivers c on the watch goroutine and returns once the Manager has seen it.
func (s *flakyStore) send(t testing.TB, c tether.Change) {
	t.Helper()
	select {
	case s.changes <- c:
		<-s.applied
	case <-time.After(10 * time.Second):
		t.Fatalf("nobody is watching the store for %+v", c)
	}
}

func (s *flakyStore) Watch(ctx context.Context, fn func(tether.Change)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-s.changes:
			fn(c)
			s.applied <- struct{}{}
		}
	}
}

func (s *flakyStore) err() error {
	if s.down.Load() {
		return fmt.Errorf("%w: fake outage", tether.ErrUnavailable)
	}
	return nil
}

func (s *flakyStore) Create(ctx context.Context, r *tether.Record, evs ...tether.Event) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.inner.Create(ctx, r, evs...)
}

func (s *flakyStore) Get(ctx context.Context, id string) (*tether.Record, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.inner.Get(ctx, id)
}

func (s *flakyStore) Touch(ctx context.Context, id string, lastSeen, idleExpires time.Time) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.inner.Touch(ctx, id, lastSeen, idleExpires)
}

func (s *flakyStore) Rotate(ctx context.Context, id string, old, new [32]byte, evs ...tether.Event) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.inner.Rotate(ctx, id, old, new, evs...)
}

func (s *flakyStore) Delete(ctx context.Context, id string, evs ...tether.Event) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.inner.Delete(ctx, id, evs...)
}

func (s *flakyStore) DeleteSubject(ctx context.Context, subject, keepID string, evs ...tether.Event) (int, error) {
	if err := s.err(); err != nil {
		return 0, err
	}
	return s.inner.DeleteSubject(ctx, subject, keepID, evs...)
}

func (s *flakyStore) List(ctx context.Context, subject string) ([]*tether.Record, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.inner.List(ctx, subject)
}

func (s *flakyStore) Roles(ctx context.Context, subject string) ([]string, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.inner.Roles(ctx, subject)
}

func (s *flakyStore) SetRoles(ctx context.Context, subject string, roles []string, evs ...tether.Event) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.inner.SetRoles(ctx, subject, roles, evs...)
}

func (s *flakyStore) Consume(ctx context.Context, key string, until time.Time) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.inner.Consume(ctx, key, until)
}

func (s *flakyStore) Ping(ctx context.Context) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.inner.Ping(ctx)
}

func (s *flakyStore) Close() error { return s.inner.Close() }

func (s *flakyStore) AppendEvents(ctx context.Context, evs ...tether.Event) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.inner.AppendEvents(ctx, evs...)
}

func (s *flakyStore) Events(ctx context.Context, q tether.EventQuery) (tether.EventPage, error) {
	if err := s.err(); err != nil {
		return tether.EventPage{}, err
	}
	return s.inner.Events(ctx, q)
}

func (s *flakyStore) TrimEvents(ctx context.Context, before time.Time) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.inner.TrimEvents(ctx, before)
}

func (s *flakyStore) GetState(ctx context.Context, key string) ([]byte, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.inner.GetState(ctx, key)
}

func (s *flakyStore) PutState(ctx context.Context, key string, value []byte) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.inner.PutState(ctx, key, value)
}
