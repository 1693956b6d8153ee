// Package storetest is the conformance suite every tether.Store passes. A
// backend's test calls Run with a function that makes a fresh, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) tether.Store { return memstore.New() })
//	}
//
// The same cases run against every backend, so no backend's behaviour can drift
// from the contract written on tether.Store.
//
// A backend whose stores share state between instances (one Redis, one
// database) also passes an Open, which opens one more store on that shared
// backend, to the multi-node helpers:
//
//   - RunNodes: a revoke, a revoke of a subject's sessions and a role change
//     made through a Manager on one node reach the cache of another
//     (TwoNodes and Cached are the pieces, for backend-specific tests);
//   - BenchmarkPropagation: revocation latency between two nodes, reported
//     as p50/p99 metrics.
//
// A networked backend also passes a NewFault, which puts the backend behind
// something a test can cut (internal/servicetest's Proxy), to RunFaults: the
// same fault cases for every such store. Traffic, the recorded stream of
// writes those cases drive, is exported for backend-specific fault tests
// (a failover) that check the same history.
//
// BenchmarkGet reads one session from a store. For the TETHER_SCALE tests,
// ScaleSessions gates them and sizes the load, MeasureSubjectOps times List
// and DeleteSubject on stores that the backend's own bulk loader has filled,
// and CheckSubjectScaling holds those times to O(subject).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tetherhq/tether"
)

// NewStore returns a fresh, empty store and arranges for its cleanup.
type NewStore func(t *testing.T) tether.Store

// Run runs every conformance case against stores made by newStore.
func Run(t *testing.T, newStore NewStore) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s tether.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateExisting", testCreateExisting},
		{"GetMissing", testGetMissing},
		{"Expiry", testExpiry},
		{"Touch", testTouch},
		{"Rotate", testRotate},
		{"Delete", testDelete},
		{"DeleteSubject", testDeleteSubject},
		{"List", testList},
		{"Roles", testRoles},
		{"Consume", testConsume},
		{"ConcurrentConsume", testConcurrentConsume},
		{"ConcurrentUse", testConcurrentUse},
		{"RevokeAllAtomic", testRevokeAllAtomic},
		{"Watch", testWatch},
		{"Manager", testManager},
		{"RevokeOrigin", testRevokeOrigin},
		{"Ping", testPing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			c.fn(t, s)
		})
	}
}

var ctx = context.Background()

// now is truncated to the microsecond: the finest precision every backend keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

var seq atomic.Int64

// subject returns a subject name no other case uses, so stores that share a
// server between cases cannot see each other's data.
func subject(t *testing.T) string {
	return fmt.Sprintf("%s-%d-%d", t.Name(), time.Now().UnixNano(), seq.Add(1))
}

func record(subject string, lifetime time.Duration) *tether.Record {
	n := now()
	r := &tether.Record{
		ID: tether.NewID(), Subject: subject,
		CreatedAt: n, LastSeenAt: n, ExpiresAt: n.Add(lifetime), IdleExpiresAt: n.Add(lifetime),
		IdleTimeout: lifetime, Metadata: map[string]string{"ip": "192.0.2.1", "user_agent": "storetest/1.0"},
		AuthTime: n.Add(-time.Minute), AuthMethod: "password",
		JKT:    "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", // RFC 8037 §A.3
		DBSC:   "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", // RFC 7638 §3.1
		Origin: tether.Origin{Issuer: "https://a.example", Subject: subject, SessionID: "sid-" + subject},
	}
	copy(r.SecretHash[:], fmt.Sprintf("hash-of-%-24s", r.ID))
	return r
}

func mustCreate(t *testing.T, s tether.Store, r *tether.Record) {
	t.Helper()
	if err := s.Create(ctx, r); err != nil {
		t.Fatalf("Create(%s): %v", r.ID, err)
	}
}

var cmpRecord = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	cmpopts.EquateEmpty(),
}

func wantNotFound(t *testing.T, s tether.Store, id string) {
	t.Helper()
	if r, err := s.Get(ctx, id); !errors.Is(err, tether.ErrNotFound) || r != nil {
		t.Fatalf("Get(%s) = %v, %v; want nil, ErrNotFound", id, r, err)
	}
}

func testCreateGet(t *testing.T, s tether.Store) {
	want := record(subject(t), time.Hour)
	mustCreate(t, s, want)
	got, err := s.Get(ctx, want.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if d := cmp.Diff(want, got, cmpRecord); d != "" {
		t.Fatalf("Get mismatch (-want +got):\n%s", d)
	}
	got.Metadata["ip"] = "changed by caller" // the store must not share the map
	again, _ := s.Get(ctx, want.ID)
	if again.Metadata["ip"] != "192.0.2.1" {
		t.Fatalf("store shares its record with callers")
	}
	bare := record(subject(t), time.Hour)
	bare.Metadata, bare.AuthTime, bare.AuthMethod, bare.JKT, bare.DBSC, bare.Origin = nil, time.Time{}, "", "", "", tether.Origin{}
	mustCreate(t, s, bare)
	got, err = s.Get(ctx, bare.ID)
	if err != nil || !got.AuthTime.IsZero() || len(got.Metadata) != 0 || got.JKT != "" || got.DBSC != "" || !got.Origin.IsZero() {
		t.Fatalf("Get(bare) = %+v, %v; want zero auth time, no metadata, no keys and no origin", got, err)
	}
}

func testCreateExisting(t *testing.T, s tether.Store) {
	r := record(subject(t), time.Hour)
	mustCreate(t, s, r)
	if err := s.Create(ctx, r); !errors.Is(err, tether.ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
}

func testGetMissing(t *testing.T, s tether.Store) {
	wantNotFound(t, s, tether.NewID())
}

func testExpiry(t *testing.T, s tether.Store) {
	sub := subject(t)
	absolute := record(sub, time.Hour)
	absolute.ExpiresAt = now().Add(-time.Second)
	idle := record(sub, time.Hour)
	idle.IdleExpiresAt = now().Add(-time.Second)
	live := record(sub, time.Hour)
	for _, r := range []*tether.Record{absolute, idle, live} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	wantNotFound(t, s, absolute.ID)
	wantNotFound(t, s, idle.ID)
	list, err := s.List(ctx, sub)
	if err != nil || len(list) != 1 || list[0].ID != live.ID {
		t.Fatalf("List = %d records, %v; want only the live one", len(list), err)
	}
}

func testTouch(t *testing.T, s tether.Store) {
	r := record(subject(t), time.Hour)
	mustCreate(t, s, r)
	seen, idle := now().Add(time.Minute), now().Add(30*time.Minute)
	if err := s.Touch(ctx, r.ID, seen, idle); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	got, err := s.Get(ctx, r.ID)
	if err != nil || !got.LastSeenAt.Equal(seen) || !got.IdleExpiresAt.Equal(idle) || !got.ExpiresAt.Equal(r.ExpiresAt) {
		t.Fatalf("after Touch got %+v, %v; want last seen %v, idle expiry %v, expiry unchanged", got, err, seen, idle)
	}
	if err := s.Touch(ctx, tether.NewID(), seen, idle); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("Touch(missing) = %v, want ErrNotFound", err)
	}
	if err := s.Touch(ctx, r.ID, now(), now().Add(-time.Second)); err != nil {
		t.Fatalf("Touch into the past: %v", err)
	}
	wantNotFound(t, s, r.ID)
	if err := s.Delete(ctx, r.ID); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("Delete(idle-expired) = %v, want ErrNotFound", err)
	}
	if err := s.Touch(ctx, r.ID, now(), now().Add(time.Hour)); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("Touch revived an expired record: %v", err)
	}
}

func testRotate(t *testing.T, s tether.Store) {
	r := record(subject(t), time.Hour)
	mustCreate(t, s, r)
	var fresh, wrong [32]byte
	copy(fresh[:], "a brand new secret hash........")
	copy(wrong[:], "not the current hash...........")
	if err := s.Rotate(ctx, r.ID, wrong, fresh); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("Rotate(wrong old) = %v, want ErrNotFound", err)
	}
	if err := s.Rotate(ctx, r.ID, r.SecretHash, fresh); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	got, err := s.Get(ctx, r.ID)
	if err != nil || got.SecretHash != fresh {
		t.Fatalf("after Rotate got hash %x, %v; want %x", got.SecretHash, err, fresh)
	}
	if err := s.Rotate(ctx, r.ID, r.SecretHash, wrong); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("Rotate with the superseded hash = %v, want ErrNotFound", err)
	}
	if err := s.Rotate(ctx, tether.NewID(), r.SecretHash, fresh); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("Rotate(missing) = %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, s tether.Store) {
	sub := subject(t)
	r, other := record(sub, time.Hour), record(sub, time.Hour)
	mustCreate(t, s, r)
	mustCreate(t, s, other)
	if err := s.Delete(ctx, r.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNotFound(t, s, r.ID)
	if err := s.Delete(ctx, r.ID); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, other.ID); err != nil {
		t.Fatalf("Delete removed another session: %v", err)
	}
	if list, _ := s.List(ctx, sub); len(list) != 1 {
		t.Fatalf("List after Delete has %d records, want 1", len(list))
	}
}

func testDeleteSubject(t *testing.T, s tether.Store) {
	alice, bob := subject(t), subject(t)
	var as []*tether.Record
	for range 3 {
		r := record(alice, time.Hour)
		mustCreate(t, s, r)
		as = append(as, r)
	}
	b := record(bob, time.Hour)
	mustCreate(t, s, b)

	n, err := s.DeleteSubject(ctx, alice, as[1].ID)
	if err != nil || n != 2 {
		t.Fatalf("DeleteSubject(keep one) = %d, %v; want 2, nil", n, err)
	}
	wantNotFound(t, s, as[0].ID)
	wantNotFound(t, s, as[2].ID)
	if _, err := s.Get(ctx, as[1].ID); err != nil {
		t.Fatalf("the kept session is gone: %v", err)
	}
	if _, err := s.Get(ctx, b.ID); err != nil {
		t.Fatalf("another subject's session is gone: %v", err)
	}
	n, err = s.DeleteSubject(ctx, alice, "")
	if err != nil || n != 1 {
		t.Fatalf("DeleteSubject(all) = %d, %v; want 1, nil", n, err)
	}
	if list, _ := s.List(ctx, alice); len(list) != 0 {
		t.Fatalf("List after DeleteSubject has %d records, want 0", len(list))
	}
	if n, err := s.DeleteSubject(ctx, subject(t), ""); err != nil || n != 0 {
		t.Fatalf("DeleteSubject(unknown) = %d, %v; want 0, nil", n, err)
	}
}

func testList(t *testing.T, s tether.Store) {
	sub := subject(t)
	var want []string
	base := now()
	for i := range 5 {
		r := record(sub, time.Hour)
		r.CreatedAt = base.Add(time.Duration(i) * time.Second)
		mustCreate(t, s, r)
		want = append(want, r.ID)
	}
	mustCreate(t, s, record(subject(t), time.Hour))
	list, err := s.List(ctx, sub)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var got []string
	for _, r := range list {
		got = append(got, r.ID)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("List IDs, oldest first (-want +got):\n%s", d)
	}
	if list, err := s.List(ctx, subject(t)); err != nil || len(list) != 0 {
		t.Fatalf("List(unknown) = %d, %v; want empty, nil", len(list), err)
	}
}

func testRoles(t *testing.T, s tether.Store) {
	alice, bob := subject(t), subject(t)
	if roles, err := s.Roles(ctx, alice); err != nil || len(roles) != 0 {
		t.Fatalf("Roles(unknown) = %v, %v; want none, nil", roles, err)
	}
	for _, want := range [][]string{{"admin", "user"}, {"viewer"}, {}} {
		if err := s.SetRoles(ctx, alice, want); err != nil {
			t.Fatalf("SetRoles(%v): %v", want, err)
		}
		got, err := s.Roles(ctx, alice)
		if err != nil {
			t.Fatalf("Roles: %v", err)
		}
		if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("Roles (-want +got):\n%s", d)
		}
	}
	if roles, _ := s.Roles(ctx, bob); len(roles) != 0 {
		t.Fatalf("roles leaked to another subject: %v", roles)
	}
}

func testConsume(t *testing.T, s tether.Store) {
	key := subject(t)
	until := now().Add(time.Minute)
	if err := s.Consume(ctx, key, until); err != nil {
		t.Fatalf("first Consume: %v", err)
	}
	if err := s.Consume(ctx, key, until); !errors.Is(err, tether.ErrReplayed) {
		t.Fatalf("second Consume = %v, want ErrReplayed", err)
	}
	if err := s.Consume(ctx, key+"-other", until); err != nil {
		t.Fatalf("Consume(other key): %v", err)
	}
}

func testConcurrentConsume(t *testing.T, s tether.Store) {
	key := subject(t)
	until := now().Add(time.Minute)
	const n = 32
	var wins, replays atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			switch err := s.Consume(ctx, key, until); {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, tether.ErrReplayed):
				replays.Add(1)
			default:
				t.Errorf("Consume: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || replays.Load() != n-1 {
		t.Fatalf("%d concurrent Consumes: %d won, %d replayed; want 1 and %d", n, wins.Load(), replays.Load(), n-1)
	}
}

// testConcurrentUse mixes every operation from many goroutines; run under -race
// it proves the store is safe for concurrent use, and the final counts prove no
// write was lost.
func testConcurrentUse(t *testing.T, s tether.Store) {
	sub := subject(t)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	var kept []string
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r := record(sub, time.Hour)
				if err := s.Create(ctx, r); err != nil {
					t.Errorf("Create: %v", err)
					return
				}
				if _, err := s.Get(ctx, r.ID); err != nil {
					t.Errorf("Get: %v", err)
				}
				if err := s.Touch(ctx, r.ID, now(), now().Add(time.Hour)); err != nil {
					t.Errorf("Touch: %v", err)
				}
				if i%5 == 0 {
					if err := s.Delete(ctx, r.ID); err != nil {
						t.Errorf("Delete: %v", err)
					}
					continue
				}
				if i%7 == 0 {
					_ = s.SetRoles(ctx, sub, []string{fmt.Sprintf("role-%d", w)})
				}
				mu.Lock()
				kept = append(kept, r.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	list, err := s.List(ctx, sub)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var got []string
	for _, r := range list {
		got = append(got, r.ID)
	}
	slices.Sort(got)
	slices.Sort(kept)
	if d := cmp.Diff(kept, got); d != "" {
		t.Fatalf("sessions after concurrent use (-want +got):\n%s", d)
	}
}

// testRevokeAllAtomic checks that once DeleteSubject returns, no read finds any
// of the subject's sessions, even with readers and creators racing it.
func testRevokeAllAtomic(t *testing.T, s tether.Store) {
	sub := subject(t)
	var ids []string
	for range 100 {
		r := record(sub, time.Hour)
		mustCreate(t, s, r)
		ids = append(ids, r.ID)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Get(ctx, ids[i%len(ids)]); err != nil && !errors.Is(err, tether.ErrNotFound) {
					t.Errorf("Get: %v", err)
					return
				}
			}
		})
	}
	n, err := s.DeleteSubject(ctx, sub, "")
	close(stop)
	wg.Wait()
	if err != nil || n != len(ids) {
		t.Fatalf("DeleteSubject = %d, %v; want %d, nil", n, err, len(ids))
	}
	for _, id := range ids {
		wantNotFound(t, s, id)
	}
}

func testWatch(t *testing.T, s tether.Store) {
	w, ok := s.(tether.Watcher)
	if !ok {
		t.Skip("store does not implement tether.Watcher")
	}
	wctx, cancel := context.WithCancel(ctx)
	changes := make(chan tether.Change, 64)
	done := make(chan error, 1)
	go func() { done <- w.Watch(wctx, func(c tether.Change) { changes <- c }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Watch did not return after its context ended")
		}
	})
	next := func(want tether.Change) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case got := <-changes:
				if got == want {
					return
				}
			case <-deadline:
				t.Fatalf("no change %+v within 10s", want)
			}
		}
	}
	next(tether.Change{Kind: tether.ChannelRestored})

	sub := subject(t)
	r := record(sub, time.Hour)
	mustCreate(t, s, r)
	var fresh [32]byte
	copy(fresh[:], "rotated.........................")
	if err := s.Rotate(ctx, r.ID, r.SecretHash, fresh); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	next(tether.Change{Kind: tether.SessionChanged, SessionID: r.ID})
	if err := s.Delete(ctx, r.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	next(tether.Change{Kind: tether.SessionChanged, SessionID: r.ID})
	if err := s.SetRoles(ctx, sub, []string{"x"}); err != nil {
		t.Fatalf("SetRoles: %v", err)
	}
	next(tether.Change{Kind: tether.SubjectChanged, Subject: sub})
	if _, err := s.DeleteSubject(ctx, sub, ""); err != nil {
		t.Fatalf("DeleteSubject: %v", err)
	}
	next(tether.Change{Kind: tether.SubjectChanged, Subject: sub})
}

// testManager drives the store through a Manager, cache on, the way a server does.
func testManager(t *testing.T, s tether.Store) {
	m, err := tether.NewManager(tether.Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	sub := subject(t)
	if err := m.SetRoles(ctx, sub, []string{"admin"}); err != nil {
		t.Fatalf("SetRoles: %v", err)
	}
	token, sess, err := m.Create(ctx, tether.CreateParams{Subject: sub})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	for range 3 { // the second and third are served from the cache
		got, err := m.Validate(ctx, token)
		if err != nil || got.ID != sess.ID || !got.HasRole("admin") {
			t.Fatalf("Validate = %+v, %v; want session %s with role admin", got, err, sess.ID)
		}
	}
	if err := m.SetRoles(ctx, sub, []string{"viewer"}); err != nil {
		t.Fatalf("SetRoles: %v", err)
	}
	if got, err := m.Validate(ctx, token); err != nil || !got.HasRole("viewer") || got.HasRole("admin") {
		t.Fatalf("after a role change Validate = %+v, %v; want only viewer", got, err)
	}
	if err := m.Revoke(ctx, sess.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := m.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) {
		t.Fatalf("Validate after Revoke = %v, want ErrInvalidToken", err)
	}
}

func testPing(t *testing.T, s tether.Store) {
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
