package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

// Fault is a networked backend that a test can cut off, for RunFaults:
// usually the backend's server behind internal/servicetest's Proxy.
type Fault struct {
	// Open opens one more store that reaches the backend only through what
	// Cut breaks, and arranges for its cleanup.
	Open Open
	// Cut breaks every open connection at once and refuses new ones, as a
	// dead server or network would; it returns once the backend is
	// unreachable.
	Cut func()
	// Restore makes the backend reachable again, with its data. Cut and
	// Restore may each be called more than once in a row.
	Restore func()
}

// NewFault sets up the Fault for one case. Cases may share a backend.
type NewFault func(t *testing.T) Fault

// RunFaults runs the fault cases every networked store passes:
//
//   - CutMidTraffic: the connection is cut under a stream of writes and
//     reads (Traffic). Every call made while it is down fails with
//     tether.ErrUnavailable, never a success nor another answer; once it is
//     back, every acknowledged write has taken effect and none has taken
//     effect in part.
//   - ChannelLostAndRestored: a Watcher reports ChannelLost when the
//     connection is cut and ChannelRestored when it is back, keeping the
//     order tether.Watcher promises, and the restored channel carries
//     changes again.
//   - ManagerFailsClosed: a Manager that cached a session for an hour
//     refuses it with ErrUnavailable while the store is cut off, every Store
//     method fails with ErrUnavailable, and all of it recovers without
//     reopening.
//   - CloseEndsWatch: Close ends a running Watch with an error wrapping
//     ErrUnavailable, and Watch on a closed store returns at once.
func RunFaults(t *testing.T, newFault NewFault) {
	cases := []struct {
		name string
		fn   func(t *testing.T, f Fault)
	}{
		{"CutMidTraffic", testCutMidTraffic},
		{"ChannelLostAndRestored", testChannelLostAndRestored},
		{"ManagerFailsClosed", testManagerFailsClosed},
		{"CloseEndsWatch", testCloseEndsWatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFault(t)
			t.Cleanup(f.Restore) // a failed case leaves the backend up for the next
			c.fn(t, f)
		})
	}
}

// eventually polls cond until it returns nil or 20 s have passed. It waits
// for a reconnect; it times nothing.
func eventually(tb testing.TB, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: still %v after 20s", what, err)
		}
		time.Sleep(5 * time.Millisecond) // a poll interval
	}
}

func testCutMidTraffic(t *testing.T, f Fault) {
	s := f.Open(t)
	tr := StartTraffic(s, 4)
	defer tr.Stop()
	tr.WaitCalls(t, 60)
	f.Cut()
	cut := time.Now()
	tr.WaitCalls(t, tr.Calls()+60)
	n, wrong := tr.FailedSince(cut)
	for _, w := range wrong {
		t.Error(w)
	}
	acked := tr.Acknowledged()
	f.Restore()
	check := f.Open(t)
	eventually(t, "Ping after Restore", func() error { return check.Ping(ctx) })
	l := tr.Check(t, check)
	t.Logf("%d acknowledged calls before the cut, %d calls after it; %v", acked, n, l)
	if !l.Zero() {
		t.Errorf("after the cut: %v", l)
		for _, w := range l.Wrong {
			t.Error(w)
		}
	}
	if acked == 0 || n == 0 {
		t.Fatalf("traffic made %d acknowledged calls and %d after the cut; want some of each", acked, n)
	}
}

// changeLog records what a Watch delivers and checks the order that
// tether.Watcher promises as it goes.
type changeLog struct {
	t    testing.TB
	inFn atomic.Bool
	mu   sync.Mutex
	all  []tether.Change
	up   bool
	cond chan struct{} // closed and replaced on every change
	done chan error
}

// watchChanges runs w.Watch until the test ends.
func watchChanges(t testing.TB, w tether.Watcher) *changeLog {
	l := &changeLog{t: t, cond: make(chan struct{}), done: make(chan error, 1)}
	wctx, cancel := context.WithCancel(ctx)
	go func() { l.done <- w.Watch(wctx, l.record) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-l.done:
		case <-time.After(10 * time.Second):
			t.Errorf("Watch did not return 10s after its context ended")
		}
	})
	return l
}

func (l *changeLog) record(c tether.Change) {
	if l.inFn.Swap(true) {
		l.t.Errorf("Watch called fn concurrently")
	}
	defer l.inFn.Store(false)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch c.Kind {
	case tether.ChannelRestored:
		if l.up {
			l.t.Errorf("ChannelRestored twice without ChannelLost between (after %+v)", l.all)
		}
		l.up = true
	case tether.ChannelLost:
		if !l.up {
			l.t.Errorf("ChannelLost while the channel was not up (after %+v)", l.all)
		}
		l.up = false
	default:
		if !l.up {
			l.t.Errorf("change %+v while the channel was not up", c)
		}
	}
	l.all = append(l.all, c)
	close(l.cond)
	l.cond = make(chan struct{})
}

// waitFor waits until the n-th change (from 1) equal to want has arrived.
func (l *changeLog) waitFor(want tether.Change, n int) {
	l.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		l.mu.Lock()
		seen := 0
		for _, c := range l.all {
			if c == want {
				seen++
			}
		}
		cond, all := l.cond, len(l.all)
		l.mu.Unlock()
		if seen >= n {
			return
		}
		select {
		case <-cond:
		case <-deadline:
			l.t.Fatalf("change %+v #%d not delivered within 20s (%d changes seen)", want, n, all)
		}
	}
}

var (
	restored = tether.Change{Kind: tether.ChannelRestored}
	lost     = tether.Change{Kind: tether.ChannelLost}
)

func watcher(t *testing.T, s tether.Store) tether.Watcher {
	w, ok := s.(tether.Watcher)
	if !ok {
		t.Fatalf("%T is not a tether.Watcher: a shared store must tell other nodes' caches what changed", s)
	}
	return w
}

func testChannelLostAndRestored(t *testing.T, f Fault) {
	s := f.Open(t)
	changes := watchChanges(t, watcher(t, s))
	changes.waitFor(restored, 1)
	f.Cut()
	changes.waitFor(lost, 1)
	f.Restore()
	changes.waitFor(restored, 2)
	// The restored channel carries a change made through another store.
	other := f.Open(t)
	r := record(subject(t), time.Hour)
	eventually(t, "Create after Restore", func() error { return other.Create(ctx, r) })
	if err := other.Delete(ctx, r.ID); err != nil {
		t.Fatalf("Delete after Restore: %v", err)
	}
	changes.waitFor(tether.Change{Kind: tether.SessionChanged, SessionID: r.ID}, 1)
}

func testManagerFailsClosed(t *testing.T, f Fault) {
	s := f.Open(t)
	// An hour of staleness: only the lost channel can stop the cache serving.
	m, err := tether.NewManager(tether.Config{Store: s, MaxStaleness: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	sub := subject(t)
	token, sess, err := m.Create(ctx, tether.CreateParams{Subject: sub})
	if err != nil {
		t.Fatal(err)
	}
	Cached(t, m, token)
	r := record(sub, time.Hour)
	mustCreate(t, s, r)

	f.Cut()
	// The Manager's watch learns of the loss on its own connection; from
	// then on it must fail closed: never the cached answer, never "invalid".
	eventually(t, "Manager refusing the cached token", func() error {
		if _, err := m.Validate(ctx, token); err == nil {
			return errors.New("validated from the cache")
		}
		return nil
	})
	for range 5 {
		if got, err := m.Validate(ctx, token); got != nil || !errors.Is(err, tether.ErrUnavailable) {
			t.Fatalf("Validate with the store cut off = %v, %v; want nil, ErrUnavailable", got, err)
		}
	}
	n := now()
	ops := []struct {
		name string
		call func() error
	}{
		{"Create", func() error { return s.Create(ctx, record(sub, time.Hour)) }},
		{"Get", func() error {
			got, err := s.Get(ctx, r.ID)
			if got != nil {
				return errors.New("returned a record")
			}
			return err
		}},
		{"Touch", func() error { return s.Touch(ctx, r.ID, n, n.Add(time.Hour)) }},
		{"Rotate", func() error { return s.Rotate(ctx, r.ID, r.SecretHash, [32]byte{1}) }},
		{"Delete", func() error { return s.Delete(ctx, r.ID) }},
		{"DeleteSubject", func() error { _, err := s.DeleteSubject(ctx, sub, ""); return err }},
		{"List", func() error { _, err := s.List(ctx, sub); return err }},
		{"Roles", func() error { _, err := s.Roles(ctx, sub); return err }},
		{"SetRoles", func() error { return s.SetRoles(ctx, sub, []string{"x"}) }},
		{"Consume", func() error { return s.Consume(ctx, "jti-"+sub, n.Add(time.Minute)) }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, op := range ops {
		if err := op.call(); !errors.Is(err, tether.ErrUnavailable) {
			t.Errorf("%s with the store cut off = %v; want ErrUnavailable", op.name, err)
		}
	}

	f.Restore()
	eventually(t, "Ping after Restore", func() error { return s.Ping(ctx) })
	if got, err := s.Get(ctx, r.ID); err != nil || got.ID != r.ID {
		t.Fatalf("Get after Restore = %v, %v; want the record", got, err)
	}
	Cached(t, m, token) // serves, and caches, again
	if err := m.Revoke(ctx, sess.ID); err != nil {
		t.Fatalf("Revoke after Restore: %v", err)
	}
	if _, err := m.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) {
		t.Fatalf("Validate after Revoke = %v; want ErrInvalidToken", err)
	}
}

func testCloseEndsWatch(t *testing.T, f Fault) {
	s := f.Open(t)
	w := watcher(t, s)
	changes := watchChanges(t, w)
	changes.waitFor(restored, 1)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-changes.done:
		if !errors.Is(err, tether.ErrUnavailable) {
			t.Fatalf("Watch ended by Close = %v; want ErrUnavailable", err)
		}
		changes.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return 10s after Close")
	}
	again := make(chan error, 1)
	go func() { again <- w.Watch(ctx, func(tether.Change) { t.Error("Watch on a closed store called fn") }) }()
	select {
	case err := <-again:
		if !errors.Is(err, tether.ErrUnavailable) {
			t.Fatalf("Watch on a closed store = %v; want ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch on a closed store did not return")
	}
	if err := s.Ping(ctx); !errors.Is(err, tether.ErrUnavailable) {
		t.Fatalf("Ping after Close = %v; want ErrUnavailable", err)
	}
}
