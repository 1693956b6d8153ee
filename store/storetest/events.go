package storetest

import (
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

// RunEvents runs the event-log cases (DESIGN §10) against stores made by
// newStore: every change that returns nil has its events, in commit order;
// a change that fails or does not happen has none; cursors page without loss
// or repetition under concurrent writes. Every store that keeps an event log
// calls it next to Run.
func RunEvents(t *testing.T, newStore NewStore) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s tether.Store)
	}{
		{"WithChanges", testEventsWithChanges},
		{"NoChangeNoEvent", testEventsNoChange},
		{"Cursor", testEventsCursor},
		{"Filters", testEventsFilters},
		{"BadCursor", testEventsBadCursor},
		{"Concurrent", testEventsConcurrent},
		{"Trim", testEventsTrim},
		{"State", testState},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, newStore(t))
		})
	}
}

// RunExpiryEvents checks that a session that expires is reported as such
// (DESIGN §10): the store writes exactly one session.expired event for it, by
// the system, with the reason (idle timeout or lifetime), in the same
// transaction that removes the record, whether its sweep or an access finds it
// first; and none for a session revoked (alone or with its subject) before it
// expired, nor for a live one.
//
// It waits for real expiries about a second away, so newStore must open
// stores that sweep expired sessions on their own at least every 200ms (a
// store with a sweep interval sets it that short; one whose records expire
// natively must still record the expiry within that time). A store opts in
// by calling it next to RunEvents with such a newStore.
func RunExpiryEvents(t *testing.T, newStore NewStore) {
	s := newStore(t)
	start := now()
	mk := func(sub string, lifetime, idle time.Duration) *tether.Record {
		r := record(sub, lifetime)
		r.ExpiresAt, r.IdleExpiresAt, r.IdleTimeout = start.Add(lifetime), start.Add(idle), idle
		mustCreate(t, s, r)
		return r
	}
	sub, other, revokedSub := subject(t), subject(t), subject(t)
	const soon = time.Second
	lifetime := mk(sub, soon, soon)       // idle expiry capped at the lifetime: "lifetime"
	idle := mk(sub, time.Hour, soon)      // "idle_timeout"
	live := mk(sub, time.Hour, time.Hour) // outlives the test
	revoked := mk(sub, soon, soon)        // revoked while live
	deadAtRevoke := mk(other, soon, soon) // its subject revoked after it expired
	mk(revokedSub, soon, soon)            // these two end with their subject, while live
	mk(revokedSub, time.Hour, soon)
	if err := s.Delete(ctx, revoked.ID, event(tether.EventSessionRevoked, "", revoked.ID)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteSubject(ctx, revokedSub, "", event(tether.EventSubjectRevoked, revokedSub, "")); err != nil || n != 2 {
		t.Fatalf("DeleteSubject(live sessions) = %d, %v; want 2, nil", n, err)
	}

	// Only this case's subjects: a shared backend holds other cases' events.
	expired := func() []tether.Event {
		var out []tether.Event
		for _, subj := range []string{sub, other, revokedSub} {
			out = append(out, allEvents(t, s, tether.EventQuery{Subject: subj, Type: tether.EventSessionExpired})...)
		}
		return out
	}
	// The store may find deadAtRevoke by its sweep or by this revoke,
	// whichever comes first: either way it is reported once.
	time.Sleep(time.Until(start.Add(soon + 10*time.Millisecond)))
	if n, err := s.DeleteSubject(ctx, other, "", event(tether.EventSubjectRevoked, other, "")); err != nil || n != 0 {
		t.Fatalf("DeleteSubject(expired sessions only) = %d, %v; want 0, nil", n, err)
	}
	want := map[string]string{
		lifetime.ID:     tether.ExpiryLifetime,
		idle.ID:         tether.ExpiryIdleTimeout,
		deadAtRevoke.ID: tether.ExpiryLifetime,
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(expired()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // a poll interval, well under the sweep's
	}
	// Reads of the expired sessions must not record their expiry again.
	for _, r := range []*tether.Record{lifetime, idle, deadAtRevoke} {
		wantNotFound(t, s, r.ID)
	}
	for _, subj := range []string{sub, other} {
		got, err := s.List(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			if r.ID != live.ID {
				t.Errorf("List(%s) has %s after it expired or was revoked", subj, r.ID)
			}
		}
	}
	if _, err := s.Get(ctx, live.ID); err != nil {
		t.Errorf("Get(live session) = %v", err)
	}

	got := map[string]string{}
	for _, e := range expired() {
		r, ok := map[string]*tether.Record{lifetime.ID: lifetime, idle.ID: idle, deadAtRevoke.ID: deadAtRevoke}[e.SessionID]
		if !ok {
			t.Errorf("session.expired for %s (subject %s), which was revoked or is live", e.SessionID, e.Subject)
			continue
		}
		if _, dup := got[e.SessionID]; dup {
			t.Errorf("a second session.expired for %s", e.SessionID)
		}
		got[e.SessionID] = checkExpired(t, &e, r)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("session.expired reasons by session (-want +got):\n%s", diff)
	}
}

// checkExpired reports an error unless e is as the session.expired of r
// should be, whatever its reason, which it returns.
func checkExpired(t *testing.T, e *tether.Event, r *tether.Record) string {
	t.Helper()
	reason, _ := e.Detail["reason"].(string)
	at := r.ExpiresAt
	if reason == tether.ExpiryIdleTimeout {
		at = r.IdleExpiresAt
	}
	if e.Subject != r.Subject || e.Actor != (tether.Actor{Kind: tether.ActorSystem}) ||
		e.Detail["expired_at"] != at.UTC().Format(time.RFC3339Nano) || e.Time.Before(at) {
		t.Errorf("session.expired for %s = %+v; want subject %s, actor system, expired_at %s, recorded after it",
			e.SessionID, e, r.Subject, at.UTC().Format(time.RFC3339Nano))
	}
	return reason
}

// RunExpiryOnReplace checks that a Create reusing the ID of a session that
// has expired, but that no sweep has removed yet, leaves that session's
// expiry reported (DESIGN §10): exactly one session.expired, with the
// expired session's subject, reason and time, as RunExpiryEvents wants it,
// and none for the service's bookkeeping records (tether.BookkeepingPrefixes);
// of Creates racing for the ID, one wins and the others get ErrExists and
// write nothing; the winner's record then stands alone under the ID.
//
// A store that records the expiry in Create is held to it by a newStore that
// opens stores which do not sweep (or not within a minute): then nothing else
// can report it. A store that leaves it to its sweep (Redis, whose records
// vanish by themselves) must sweep at least every 200ms, as for
// RunExpiryEvents.
func RunExpiryOnReplace(t *testing.T, newStore NewStore) {
	s := newStore(t)
	expiry := now().Add(300 * time.Millisecond)
	cases := []struct {
		name, subject string
		idle          bool
		wantReason    string // empty: no event
	}{
		{"ReplacedLifetime", subject(t), false, tether.ExpiryLifetime},
		{"ReplacedIdleTimeout", subject(t), true, tether.ExpiryIdleTimeout},
		{"ReplacedBookkeeping", tether.BookkeepingPrefixes()[0] + subject(t), false, ""},
	}
	old := make([]*tether.Record, len(cases))
	for i, c := range cases {
		r := record(c.subject, time.Hour)
		if c.idle {
			r.IdleExpiresAt = expiry
		} else {
			r.ExpiresAt, r.IdleExpiresAt = expiry, expiry
		}
		mustCreate(t, s, r)
		old[i] = r
	}
	time.Sleep(time.Until(expiry.Add(10 * time.Millisecond)))

	// Several Creates race for each ID: exactly one wins, and the expiry is
	// still reported once.
	const racers = 4
	successors := make([]*tether.Record, len(cases))
	var losers []*tether.Record
	for i := range cases {
		var wg sync.WaitGroup
		errs := make([]error, racers)
		rivals := make([]*tether.Record, racers)
		for k := range racers {
			rivals[k] = record(subject(t), time.Hour)
			rivals[k].ID = old[i].ID
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[k] = s.Create(ctx, rivals[k], event(tether.EventSessionCreated, rivals[k].Subject, old[i].ID))
			}()
		}
		wg.Wait()
		for k, err := range errs {
			switch {
			case err == nil && successors[i] == nil:
				successors[i] = rivals[k]
			case err == nil || !errors.Is(err, tether.ErrExists):
				t.Fatalf("racing Creates over the expired %s: %v; want one nil, the others ErrExists", old[i].ID, errs)
			default:
				losers = append(losers, rivals[k])
			}
		}
		if successors[i] == nil {
			t.Fatalf("racing Creates over the expired %s: %v; want one nil", old[i].ID, errs)
		}
	}
	expired := func(i int) []tether.Event {
		return allEvents(t, s, tether.EventQuery{Subject: old[i].Subject, Type: tether.EventSessionExpired})
	}
	deadline := time.Now().Add(15 * time.Second)
	for i, c := range cases {
		for c.wantReason != "" && len(expired(i)) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // a poll interval, well under the sweep's
		}
	}

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var reasons []string
			for _, e := range expired(i) {
				if e.SessionID != old[i].ID {
					t.Errorf("session.expired for %s; want only %s's", e.SessionID, old[i].ID)
					continue
				}
				reasons = append(reasons, checkExpired(t, &e, old[i]))
			}
			var want []string
			if c.wantReason != "" {
				want = []string{c.wantReason}
			}
			if diff := cmp.Diff(want, reasons); diff != "" {
				t.Errorf("session.expired reasons of the replaced session (-want +got):\n%s", diff)
			}
			got, err := s.Get(ctx, old[i].ID)
			if err != nil || !cmp.Equal(got, successors[i], cmpRecord) {
				t.Errorf("Get(%s) = %+v, %v; want the new record %+v", old[i].ID, got, err, successors[i])
			}
			evs := allEvents(t, s, tether.EventQuery{Subject: successors[i].Subject})
			if types := eventTypes(evs); !slices.Equal(types, []string{tether.EventSessionCreated + "/" + successors[i].Subject}) {
				t.Errorf("events of the new record's subject = %v; want its session.created alone", types)
			}
		})
	}
	for _, r := range losers {
		if evs := allEvents(t, s, tether.EventQuery{Subject: r.Subject}); len(evs) != 0 {
			t.Errorf("events of a Create that lost the race: %v", eventTypes(evs))
		}
	}
}

func event(typ, subject, sessionID string) tether.Event {
	return tether.Event{
		ID: "evt_" + tether.NewID(), Time: now(), Type: typ, Subject: subject, SessionID: sessionID,
		Actor:  tether.Actor{Kind: tether.ActorAdmin, IP: "192.0.2.7"},
		Detail: map[string]any{"n": 1.0, "roles": []any{"a", "b"}},
	}
}

// allEvents follows the cursor to the end and returns every event matching q.
func allEvents(t *testing.T, s tether.Store, q tether.EventQuery) []tether.Event {
	t.Helper()
	q.Limit = 7 // small pages, so the cursor is exercised
	var out []tether.Event
	for range 1000 {
		p, err := s.Events(ctx, q)
		if err != nil {
			t.Fatalf("Events(%+v): %v", q, err)
		}
		out = append(out, p.Events...)
		if len(p.Events) == 0 && p.Next == q.After {
			return out
		}
		q.After = p.Next
	}
	t.Fatal("Events: the cursor never reached the end")
	return nil
}

func eventTypes(evs []tether.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type + "/" + e.Subject
	}
	return out
}

func testEventsWithChanges(t *testing.T, s tether.Store) {
	sub := subject(t)
	r := record(sub, time.Hour)
	created := event(tether.EventSessionCreated, sub, r.ID)
	if err := s.Create(ctx, r, created); err != nil {
		t.Fatal(err)
	}
	var newHash [32]byte
	newHash[0] = 1
	if err := s.Rotate(ctx, r.ID, r.SecretHash, newHash, event(tether.EventSessionRotated, sub, r.ID)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRoles(ctx, sub, []string{"admin"}, event(tether.EventRolesChanged, sub, "")); err != nil {
		t.Fatal(err)
	}
	// Delete fills in the subject the caller did not know.
	if err := s.Delete(ctx, r.ID, event(tether.EventSessionRevoked, "", r.ID)); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, record(sub, time.Hour))
	if _, err := s.DeleteSubject(ctx, sub, "", event(tether.EventSubjectRevoked, sub, "")); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvents(ctx, event(tether.EventHandshakeRefused, sub, "")); err != nil {
		t.Fatal(err)
	}
	got := allEvents(t, s, tether.EventQuery{})
	want := []string{
		tether.EventSessionCreated + "/" + sub, tether.EventSessionRotated + "/" + sub,
		tether.EventRolesChanged + "/" + sub, tether.EventSessionRevoked + "/" + sub,
		tether.EventSubjectRevoked + "/" + sub, tether.EventHandshakeRefused + "/" + sub,
	}
	if diff := cmp.Diff(want, eventTypes(got)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	// The event comes back as it was written.
	if diff := cmp.Diff(created, got[0], cmpRecord, cmpopts.IgnoreFields(tether.Event{}, "Cursor")); diff != "" {
		t.Errorf("created event (-want +got):\n%s", diff)
	}
}

func testEventsNoChange(t *testing.T, s tether.Store) {
	sub := subject(t)
	r := record(sub, time.Hour)
	mustCreate(t, s, r)
	if err := s.Create(ctx, r, event(tether.EventSessionCreated, sub, r.ID)); !errors.Is(err, tether.ErrExists) {
		t.Fatalf("Create(existing) = %v; want ErrExists", err)
	}
	var wrong [32]byte
	if err := s.Rotate(ctx, r.ID, wrong, wrong, event(tether.EventSessionRotated, sub, r.ID)); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("Rotate(wrong hash) = %v; want ErrNotFound", err)
	}
	if err := s.Delete(ctx, tether.NewID(), event(tether.EventSessionRevoked, "", "missing")); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("Delete(missing) = %v; want ErrNotFound", err)
	}
	dead := record(sub, time.Hour)
	dead.ExpiresAt = now().Add(-time.Second)
	if err := s.Create(ctx, dead, event(tether.EventSessionCreated, sub, dead.ID)); err != nil {
		t.Fatalf("Create(born dead) = %v", err)
	}
	if got := allEvents(t, s, tether.EventQuery{}); len(got) != 0 {
		t.Fatalf("events after changes that did not happen: %v", eventTypes(got))
	}
}

func testEventsCursor(t *testing.T, s tether.Store) {
	sub := subject(t)
	for i := range 25 {
		if err := s.AppendEvents(ctx, event(tether.EventAdminAuthFailed, fmt.Sprint(sub, i), "")); err != nil {
			t.Fatal(err)
		}
	}
	var pages [][]tether.Event
	q := tether.EventQuery{Limit: 10}
	for {
		p, err := s.Events(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) == 0 {
			if p.Next != q.After {
				t.Fatalf("an empty page moved the cursor from %q to %q", q.After, p.Next)
			}
			break
		}
		pages = append(pages, p.Events)
		q.After = p.Next
	}
	if len(pages) != 3 || len(pages[0]) != 10 || len(pages[1]) != 10 || len(pages[2]) != 5 {
		t.Fatalf("pages of %d: want 10, 10, 5", len(pages))
	}
	for i, e := range append(append(pages[0], pages[1]...), pages[2]...) {
		if want := fmt.Sprint(sub, i); e.Subject != want {
			t.Fatalf("event %d is of %q; want %q (oldest first)", i, e.Subject, want)
		}
	}
	// Each event's own cursor resumes right after it.
	mid := pages[1][3]
	p, err := s.Events(ctx, tether.EventQuery{After: mid.Cursor, Limit: 1})
	if err != nil || len(p.Events) != 1 || p.Events[0].ID != pages[1][4].ID {
		t.Fatalf("Events(After the 14th event's cursor) = %v, %v; want the 15th", p.Events, err)
	}
	// A later event appears after the cursor that reached the end.
	if err := s.AppendEvents(ctx, event(tether.EventAdminAuthFailed, sub, "")); err != nil {
		t.Fatal(err)
	}
	p, err = s.Events(ctx, q)
	if err != nil || len(p.Events) != 1 || p.Events[0].Subject != sub {
		t.Fatalf("Events after the end = %v, %v; want the one new event", p.Events, err)
	}
}

func testEventsFilters(t *testing.T, s tether.Store) {
	a, b := subject(t), subject(t)
	ra := record(a, time.Hour)
	if err := s.Create(ctx, ra, event(tether.EventSessionCreated, a, ra.ID)); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{a, b} {
		if err := s.SetRoles(ctx, sub, []string{"x"}, event(tether.EventRolesChanged, sub, "")); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		q    tether.EventQuery
		want []string
	}{
		{tether.EventQuery{Subject: a}, []string{tether.EventSessionCreated + "/" + a, tether.EventRolesChanged + "/" + a}},
		{tether.EventQuery{Subject: b}, []string{tether.EventRolesChanged + "/" + b}},
		{tether.EventQuery{Type: tether.EventRolesChanged}, []string{tether.EventRolesChanged + "/" + a, tether.EventRolesChanged + "/" + b}},
		{tether.EventQuery{SessionID: ra.ID}, []string{tether.EventSessionCreated + "/" + a}},
		{tether.EventQuery{Subject: b, Type: tether.EventSessionCreated}, []string{}},
	} {
		if diff := cmp.Diff(c.want, eventTypes(allEvents(t, s, c.q))); diff != "" {
			t.Errorf("Events(%+v) (-want +got):\n%s", c.q, diff)
		}
	}
}

func testEventsBadCursor(t *testing.T, s tether.Store) {
	for _, c := range []string{"x", "-1", "1.2.3", "18446744073709551616.1", "1-", "\x00"} {
		if _, err := s.Events(ctx, tether.EventQuery{After: c, Limit: 10}); !errors.Is(err, tether.ErrBadInput) {
			t.Errorf("Events(After %q) = %v; want ErrBadInput", c, err)
		}
	}
}

// testEventsConcurrent writes from many goroutines while a reader follows the
// cursor: the reader must see every event exactly once.
func testEventsConcurrent(t *testing.T, s tether.Store) {
	sub := subject(t)
	const writers, each = 8, 15
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := record(sub, time.Hour)
				ev := event(tether.EventSessionCreated, sub, r.ID)
				ev.Detail = map[string]any{"writer": float64(w), "i": float64(i)}
				if err := s.Create(ctx, r, ev); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	seen := map[string]int{}
	q := tether.EventQuery{Subject: sub, Limit: 5}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	done := (<-chan struct{})(finished)
	// A store may hold an event back while an older transaction is still
	// running (PostgreSQL does), so the reader stops only once it has them
	// all, or after a generous bound.
	var deadline <-chan time.Time
	for total := 0; total < writers*each; {
		select {
		case <-done:
			done, deadline = nil, time.After(10*time.Second)
		case <-deadline:
			t.Fatalf("saw %d events; want %d", total, writers*each)
		default:
		}
		p, err := s.Events(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Events {
			seen[e.ID]++
			total++
		}
		q.After = p.Next
	}
	wg.Wait()
	if p, err := s.Events(ctx, q); err != nil || len(p.Events) != 0 {
		t.Errorf("Events after the last = %d events, %v; want none", len(p.Events), err)
	}
	if len(seen) != writers*each {
		t.Errorf("saw %d distinct events; want %d", len(seen), writers*each)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s seen %d times", id, n)
		}
	}
}

func testEventsTrim(t *testing.T, s tether.Store) {
	sub := subject(t)
	for range 3 {
		if err := s.AppendEvents(ctx, event(tether.EventAdminAuthFailed, sub, "")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.TrimEvents(ctx, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := allEvents(t, s, tether.EventQuery{}); len(got) != 3 {
		t.Fatalf("after trimming older than an hour ago: %d events; want 3", len(got))
	}
	if err := s.TrimEvents(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := allEvents(t, s, tether.EventQuery{}); len(got) != 0 {
		t.Fatalf("after trimming everything: %d events; want 0", len(got))
	}
}

func testState(t *testing.T, s tether.Store) {
	key := subject(t)
	if v, err := s.GetState(ctx, key); err != nil || v != nil {
		t.Fatalf("GetState(missing) = %q, %v; want nil, nil", v, err)
	}
	for _, want := range [][]byte{[]byte(`{"cursor":"1"}`), {0, 1, 2, 255}, []byte(`{"cursor":"2"}`)} {
		if err := s.PutState(ctx, key, want); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetState(ctx, key); err != nil || string(got) != string(want) {
			t.Fatalf("GetState = %q, %v; want %q", got, err, want)
		}
	}
}

// BenchmarkEventCost measures what the event log adds to a store's writes:
// Delete (a revocation) serially and Create in parallel, each without and
// with its event, side by side. DESIGN's budget: the event costs a revocation
// at most 20 %.
func BenchmarkEventCost(b *testing.B, s tether.Store) {
	// Revocations with and without an event alternate in one loop, each
	// timed on its own, so that a busy machine slows both alike and the
	// ratio stays meaningful where the absolute numbers are not (ns/op is
	// one of each).
	b.Run("revoke", func(b *testing.B) {
		sub := fmt.Sprintf("bench-revoke-%d", time.Now().UnixNano())
		recs := make([]*tether.Record, 2*b.N)
		for i := range recs {
			recs[i] = record(sub, time.Hour)
			if err := s.Create(ctx, recs[i]); err != nil {
				b.Fatal(err)
			}
		}
		spent := [2][]time.Duration{make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)} // without, with an event
		b.ResetTimer()
		for i := range b.N {
			for k, withEvent := range []bool{i%2 == 0, i%2 != 0} {
				r := recs[2*i+k]
				start := time.Now() // building the event is part of its cost, as in Manager.Revoke
				var evs []tether.Event
				if withEvent {
					evs = []tether.Event{event(tether.EventSessionRevoked, "", r.ID)}
				}
				if err := s.Delete(ctx, r.ID, evs...); err != nil {
					b.Fatal(err)
				}
				spent[btoi(withEvent)] = append(spent[btoi(withEvent)], time.Since(start))
			}
		}
		// Medians: a stall of the machine hits a few calls, not the middle.
		without, with := median(spent[0]), median(spent[1])
		b.ReportMetric(float64(without.Nanoseconds()), "p50-ns/revoke")
		b.ReportMetric(float64(with.Nanoseconds()), "p50-ns/revoke+event")
		b.ReportMetric(float64(with)/float64(without), "event-ratio")
	})
	for _, withEvent := range []bool{false, true} {
		name := map[bool]string{false: "events=0", true: "events=1"}[withEvent]
		b.Run("create-parallel/"+name, func(b *testing.B) {
			sub := fmt.Sprintf("bench-create-%d", time.Now().UnixNano())
			start := time.Now()
			// Callers are requests, not CPUs: as many as a busy node has in
			// flight, so that stores which commit concurrent writes together
			// (bbolt, PostgreSQL) are measured as they run.
			b.SetParallelism(64)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := record(sub, time.Hour)
					var evs []tether.Event
					if withEvent {
						evs = []tether.Event{event(tether.EventSessionCreated, sub, r.ID)}
					}
					if err := s.Create(ctx, r, evs...); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "creates/s")
		})
	}
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}

// RunEventFaults is the event log's fault case, for networked stores that
// keep one: creates with their events run while the connection is cut and
// restored. Afterwards, for every create attempted — acknowledged, failed or
// of unknown outcome — the session exists if and only if its event does, and
// every acknowledged one has both: no change without its event, no event
// without its change.
func RunEventFaults(t *testing.T, newFault NewFault) {
	t.Run("EventsMatchChanges", func(t *testing.T) {
		f := newFault(t)
		t.Cleanup(f.Restore)
		s := f.Open(t)
		sub := subject(t)
		var (
			mu        sync.Mutex
			attempted []string
			acked     = map[string]bool{}
			stop      atomic.Bool
			wg        sync.WaitGroup
			calls     atomic.Int64
		)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					r := record(sub, time.Hour)
					mu.Lock()
					attempted = append(attempted, r.ID)
					mu.Unlock()
					err := s.Create(ctx, r, event(tether.EventSessionCreated, sub, r.ID))
					calls.Add(1)
					if err == nil {
						mu.Lock()
						acked[r.ID] = true
						mu.Unlock()
					} else if !errors.Is(err, tether.ErrUnavailable) {
						t.Errorf("Create during a fault: %v; want nil or ErrUnavailable", err)
					}
				}
			}()
		}
		waitCalls := func(n int64) {
			eventually(t, "traffic", func() error {
				if c := calls.Load(); c < n {
					return fmt.Errorf("%d calls", c)
				}
				return nil
			})
		}
		waitCalls(40)
		f.Cut()
		waitCalls(calls.Load() + 20)
		f.Restore()
		check := f.Open(t)
		eventually(t, "Ping after Restore", func() error { return check.Ping(ctx) })
		waitCalls(calls.Load() + 40)
		stop.Store(true)
		wg.Wait()

		// A store may move events into its log just after the write returns
		// (Redis Cluster, from per-slot outboxes): the check is of the log
		// once it has caught up, within eventually's bound. A change without
		// its event never catches up; an event without its change never
		// goes away.
		var evs []tether.Event
		eventually(t, "every session with its event, no event without its session", func() error {
			evs = nil
			q := tether.EventQuery{Subject: sub, Limit: tether.MaxEventLimit}
			for {
				p, err := check.Events(ctx, q)
				if err != nil {
					return err
				}
				evs = append(evs, p.Events...)
				if len(p.Events) == 0 {
					break
				}
				q.After = p.Next
			}
			logged := map[string]bool{}
			for _, e := range evs {
				logged[e.SessionID] = true
			}
			var problems []string
			for _, id := range attempted {
				_, err := check.Get(ctx, id)
				exists := err == nil
				if err != nil && !errors.Is(err, tether.ErrNotFound) {
					return fmt.Errorf("Get after restore: %w", err)
				}
				switch {
				case acked[id] && (!exists || !logged[id]):
					problems = append(problems, fmt.Sprintf("acknowledged create %s: session %v, event %v; want both", id, exists, logged[id]))
				case exists != logged[id]:
					problems = append(problems, fmt.Sprintf("create %s of unknown outcome: session %v but event %v", id, exists, logged[id]))
				}
			}
			if len(problems) > 0 {
				return fmt.Errorf("%d mismatches, first: %s", len(problems), problems[0])
			}
			return nil
		})
		t.Logf("%d creates attempted, %d acknowledged, %d events", len(attempted), len(acked), len(evs))
	})
}
