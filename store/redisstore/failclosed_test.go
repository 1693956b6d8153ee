package redisstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
)

// changeLog records what a Watch delivers, for tests to wait on.
type changeLog struct {
	mu   sync.Mutex
	all  []tether.Change
	cond chan struct{} // closed and replaced on every change
}

func watch(t *testing.T, s *Store) *changeLog {
	l := &changeLog{cond: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, func(c tether.Change) {
			l.mu.Lock()
			l.all = append(l.all, c)
			close(l.cond)
			l.cond = make(chan struct{})
			l.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Watch did not return after its context ended")
		}
	})
	return l
}

// waitFor waits until the n-th change (counting from 1) of kind k has arrived.
func (l *changeLog) waitFor(t *testing.T, k tether.ChangeKind, n int) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		l.mu.Lock()
		seen := 0
		for _, c := range l.all {
			if c.Kind == k {
				seen++
			}
		}
		cond := l.cond
		l.mu.Unlock()
		if seen >= n {
			return
		}
		select {
		case <-cond:
		case <-deadline:
			t.Fatalf("change kind %d #%d not seen within 15s; saw %+v", k, n, l.all)
		}
	}
}

// eventually polls cond until it returns nil or the deadline passes. It is
// for waiting on a condition, never for timing.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after 15s", what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFailClosed kills Redis under a store, a watcher and a Manager: every
// operation must fail with ErrUnavailable (never succeed, never claim "not
// found"), the watcher must report the loss, the Manager must stop serving
// from its cache; after a restart all of it must recover without reopening.
func TestFailClosed(t *testing.T) {
	// AOF with fsync always, so the session survives the SIGKILL and the
	// test can check that it is served again afterwards.
	srv := servicetest.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	ctx := context.Background()
	s := openTest(t, "redis://"+srv.Addr(), "")
	changes := watch(t, s)
	changes.waitFor(t, tether.ChannelRestored, 1)

	// A Manager whose cache would serve a record for an hour: only the lost
	// channel can stop it.
	m, err := tether.NewManager(tether.Config{Store: s, MaxStaleness: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	token, sess, err := m.Create(ctx, tether.CreateParams{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "Manager serving from its cache", func() error {
		hits := m.Stats().CacheHits
		if _, err := m.Validate(ctx, token); err != nil {
			return err
		}
		if m.Stats().CacheHits == hits {
			return errors.New("cache miss")
		}
		return nil
	})

	srv.Kill()
	changes.waitFor(t, tether.ChannelLost, 1)

	n := time.Now()
	fresh := &tether.Record{ID: tether.NewID(), Subject: "alice", CreatedAt: n, LastSeenAt: n,
		ExpiresAt: n.Add(time.Hour), IdleExpiresAt: n.Add(time.Hour), IdleTimeout: time.Hour}
	var h [32]byte
	ops := []struct {
		name string
		call func() error
	}{
		{"Create", func() error { return s.Create(ctx, fresh) }},
		{"Get", func() error { _, err := s.Get(ctx, sess.ID); return err }},
		{"Touch", func() error { return s.Touch(ctx, sess.ID, n, n.Add(time.Hour)) }},
		{"Rotate", func() error { return s.Rotate(ctx, sess.ID, h, h) }},
		{"Delete", func() error { return s.Delete(ctx, sess.ID) }},
		{"DeleteSubject", func() error { _, err := s.DeleteSubject(ctx, "alice", ""); return err }},
		{"List", func() error { _, err := s.List(ctx, "alice"); return err }},
		{"Roles", func() error { _, err := s.Roles(ctx, "alice"); return err }},
		{"SetRoles", func() error { return s.SetRoles(ctx, "alice", []string{"x"}) }},
		{"Consume", func() error { return s.Consume(ctx, "jti", n.Add(time.Minute)) }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, op := range ops {
		if err := op.call(); !errors.Is(err, tether.ErrUnavailable) {
			t.Errorf("%s with Redis down = %v; want ErrUnavailable", op.name, err)
		}
	}
	// The Manager's own watch may learn of the loss a moment after ours did;
	// from then on it must never accept the token.
	eventually(t, "Manager refusing while Redis is down", func() error {
		if _, err := m.Validate(ctx, token); err == nil {
			return errors.New("validated from cache")
		}
		return nil
	})
	for range 10 {
		if _, err := m.Validate(ctx, token); !errors.Is(err, tether.ErrUnavailable) {
			t.Fatalf("Validate with Redis down = %v; want ErrUnavailable", err)
		}
	}

	srv.Start() // same port, same directory
	eventually(t, "Ping after restart", func() error { return s.Ping(ctx) })
	changes.waitFor(t, tether.ChannelRestored, 2)
	if got, err := s.Get(ctx, sess.ID); err != nil || got.ID != sess.ID {
		t.Fatalf("Get after restart = %v, %v; want the session (AOF)", got, err)
	}
	if err := s.Create(ctx, fresh); err != nil {
		t.Fatalf("Create after restart: %v", err)
	}
	eventually(t, "Manager serving from its cache again", func() error {
		hits := m.Stats().CacheHits
		if _, err := m.Validate(ctx, token); err != nil {
			return err
		}
		if m.Stats().CacheHits == hits {
			return errors.New("cache miss")
		}
		return nil
	})
	if err := m.Revoke(ctx, sess.ID); err != nil {
		t.Fatalf("Revoke after restart: %v", err)
	}
	if _, err := m.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) {
		t.Fatalf("Validate after Revoke = %v; want ErrInvalidToken", err)
	}
}

// TestWatchEndsWithClose checks that closing the store ends its watches.
func TestWatchEndsWithClose(t *testing.T) {
	addr := servicetest.SharedRedis(t)
	s, err := Open(context.Background(), "redis://"+addr+"?prefix="+servicetest.KeyPrefix(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Watch(context.Background(), func(tether.Change) {}) }()
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Watch = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after Close")
	}
	if err := s.Ping(context.Background()); !errors.Is(err, tether.ErrUnavailable) {
		t.Fatalf("Ping after Close = %v; want ErrUnavailable", err)
	}
}
