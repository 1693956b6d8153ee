package tether_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

// TestManagerEvents checks that each Manager change writes its event, with the
// actor from the context and the system for what the Manager does itself.
func TestManagerEvents(t *testing.T) {
	e := newEnv(t, tether.Config{MaxSessionsPerSubject: 1}, false)
	admin := tether.WithActor(context.Background(), tether.Actor{Kind: tether.ActorAdmin, IP: "192.0.2.9"})
	self := tether.WithActor(context.Background(), tether.Actor{Kind: tether.ActorSelf, IP: "198.51.100.4"})

	tok, s1, err := e.m.Create(admin, tether.CreateParams{Subject: "alice", Roles: []string{"viewer"}, AuthMethod: "password"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	_, s2, err := e.m.Create(self, tether.CreateParams{Subject: "alice"}) // over the cap: s1 goes
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.m.Rotate(self, tok); err == nil {
		t.Fatal("Rotate of a session the cap revoked succeeded")
	}
	if err := e.m.Revoke(self, s2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.RevokeSubject(admin, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Record(context.Background(), tether.EventAdminAuthFailed, "", map[string]any{"reason": "wrong key"}); err != nil {
		t.Fatal(err)
	}

	p, err := e.m.Events(context.Background(), tether.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ Type, Subject, Session, Actor, IP string }
	var got []row
	for _, ev := range p.Events {
		got = append(got, row{ev.Type, ev.Subject, ev.SessionID, ev.Actor.Kind, ev.Actor.IP})
		if ev.ID == "" || ev.Time.IsZero() || ev.Detail == nil {
			t.Errorf("event %+v lacks an ID, a time or a detail", ev)
		}
	}
	want := []row{
		{tether.EventSessionCreated, "alice", s1.ID, tether.ActorAdmin, "192.0.2.9"},
		{tether.EventRolesChanged, "alice", "", tether.ActorAdmin, "192.0.2.9"},
		{tether.EventSessionCreated, "alice", s2.ID, tether.ActorSelf, "198.51.100.4"},
		{tether.EventSessionRevoked, "alice", s1.ID, tether.ActorSystem, ""}, // the cap
		{tether.EventSessionRevoked, "alice", s2.ID, tether.ActorSelf, "198.51.100.4"},
		{tether.EventSubjectRevoked, "alice", "", tether.ActorAdmin, "192.0.2.9"},
		{tether.EventAdminAuthFailed, "", "", tether.ActorSystem, ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	if r := p.Events[1].Detail["roles"]; !cmp.Equal(r, []any{"viewer"}) && !cmp.Equal(r, []string{"viewer"}) {
		t.Errorf("roles.changed detail = %v; want the new roles", r)
	}
	if p.Events[3].Detail["reason"] != "max_per_subject" {
		t.Errorf("the cap's revocation says %v; want reason max_per_subject", p.Events[3].Detail)
	}
}

func TestEventQueryNormalize(t *testing.T) {
	for _, c := range []struct {
		q  tether.EventQuery
		ok bool
	}{
		{tether.EventQuery{}, true},
		{tether.EventQuery{Type: tether.EventSessionRevoked, Limit: 1000}, true},
		{tether.EventQuery{Type: tether.EventSessionExpired}, true},
		{tether.EventQuery{Type: "session.exploded"}, false},
		{tether.EventQuery{Limit: 1001}, false},
		{tether.EventQuery{Limit: -1}, false},
	} {
		q, err := c.q.Normalize()
		if (err == nil) != c.ok {
			t.Errorf("Normalize(%+v) = %v; want ok %v", c.q, err, c.ok)
		}
		if err == nil && (q.Limit < 1 || q.Limit > tether.MaxEventLimit) {
			t.Errorf("Normalize(%+v).Limit = %d", c.q, q.Limit)
		}
	}
}

func TestLease(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	ctx := context.Background()
	until, ok, err := e.m.Lease(ctx, "webhook/x", 10*time.Second)
	if err != nil || !ok {
		t.Fatalf("first Lease = %v, %v; want it granted", ok, err)
	}
	if _, ok, err := e.m.Lease(ctx, "webhook/x", 10*time.Second); err != nil || ok {
		t.Fatalf("second Lease in the same window = %v, %v; want refused", ok, err)
	}
	if _, ok, _ := e.m.Lease(ctx, "webhook/y", 10*time.Second); !ok {
		t.Fatal("another name's lease was refused")
	}
	e.clock.Advance(until.Sub(e.clock.Now()))
	if _, ok, err := e.m.Lease(ctx, "webhook/x", 10*time.Second); err != nil || !ok {
		t.Fatalf("Lease in the next window = %v, %v; want it granted", ok, err)
	}
	if _, _, err := e.m.Lease(ctx, "webhook/x", 0); err == nil {
		t.Fatal("Lease of length 0 succeeded")
	}
}

// TestRenew: the holder claims the next window before it turns, and then
// nobody else gets it; a window already claimed cannot be renewed.
func TestRenew(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	ctx := context.Background()
	const d = 10 * time.Second
	until, ok, err := e.m.Lease(ctx, "ssf/x", d)
	if err != nil || !ok {
		t.Fatalf("Lease = %v, %v; want it granted", ok, err)
	}
	next, ok, err := e.m.Renew(ctx, "ssf/x", d, until)
	if err != nil || !ok || !next.Equal(until.Add(d)) {
		t.Fatalf("Renew = %v, %v, %v; want the next window, to %v", next, ok, err, until.Add(d))
	}
	e.clock.Advance(until.Sub(e.clock.Now()))
	if _, ok, err := e.m.Lease(ctx, "ssf/x", d); err != nil || ok {
		t.Fatalf("Lease of the renewed window = %v, %v; want refused", ok, err)
	}
	if _, ok, err := e.m.Renew(ctx, "ssf/x", d, until); err != nil || ok {
		t.Fatalf("second Renew of one window = %v, %v; want refused", ok, err)
	}
	if _, _, err := e.m.Renew(ctx, "ssf/x", d, until.Add(time.Second)); !errors.Is(err, tether.ErrBadInput) {
		t.Fatalf("Renew off the window grid = %v, want ErrBadInput", err)
	}
}

func TestExchangeEvents(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	ctx := tether.WithActor(context.Background(), tether.Actor{Kind: tether.ActorSelf, IP: "203.0.113.5"})
	v := &fakeVerifier{handshakes: map[string]tether.Handshake{
		"good": {Issuer: "https://a.example", Subject: "alice", ID: "j1", IssuedAt: e.clock.Now()},
	}}
	_, s, err := e.m.Exchange(ctx, v, "good", tether.ExchangeParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"good", "forged"} { // a replay, then a forgery
		if _, _, err := e.m.Exchange(ctx, v, raw, tether.ExchangeParams{}); !errors.Is(err, tether.ErrInvalidToken) {
			t.Fatalf("Exchange(%s) = %v; want ErrInvalidToken", raw, err)
		}
	}
	p, err := e.m.Events(context.Background(), tether.EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range p.Events {
		got = append(got, fmt.Sprintf("%s %s %s %v", ev.Type, ev.SessionID, ev.Actor.IP, ev.Detail))
	}
	want := []string{
		fmt.Sprintf("session.created %s 203.0.113.5 map[auth_method:handshake]", s.ID),
		fmt.Sprintf("handshake.exchanged %s 203.0.113.5 map[issuer:https://a.example jti:j1]", s.ID),
		"handshake.refused  203.0.113.5 map[reason:replayed]",
		"handshake.refused  203.0.113.5 map[reason:invalid]",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
}

// TestOnPrivilegeGain: with revoke, a role change that adds a role ends the
// subject's sessions before the roles change (and says why); one that only
// removes roles, or the default keep, leaves them.
func TestOnPrivilegeGain(t *testing.T) {
	for _, c := range []struct {
		policy        string
		before, after []string
		wantLive      bool
	}{
		{tether.PrivilegeGainRevoke, []string{"viewer"}, []string{"viewer", "admin"}, false},
		{tether.PrivilegeGainRevoke, []string{"viewer", "admin"}, []string{"viewer"}, true},
		{tether.PrivilegeGainRevoke, []string{"viewer"}, []string{"viewer"}, true},
		{"", []string{"viewer"}, []string{"viewer", "admin"}, true}, // keep is the default
	} {
		t.Run(fmt.Sprint(c.policy, c.before, "→", c.after), func(t *testing.T) {
			e := newEnv(t, tether.Config{OnPrivilegeGain: c.policy}, false)
			ctx := context.Background()
			tok, _, err := e.m.Create(ctx, tether.CreateParams{Subject: "alice", Roles: c.before})
			if err != nil {
				t.Fatal(err)
			}
			// The create's own roles spare the session it starts.
			if _, err := e.m.Validate(ctx, tok); err != nil {
				t.Fatalf("a new session with roles: %v", err)
			}
			before, _ := e.m.Events(ctx, tether.EventQuery{})
			if err := e.m.SetRoles(ctx, "alice", c.after); err != nil {
				t.Fatal(err)
			}
			s, err := e.m.Validate(ctx, tok)
			if live := err == nil; live != c.wantLive {
				t.Fatalf("after SetRoles: live %v (%v); want %v", live, err, c.wantLive)
			}
			if err == nil && !cmp.Equal(s.Roles, c.after) {
				t.Errorf("roles %v; want %v", s.Roles, c.after)
			}
			p, _ := e.m.Events(ctx, tether.EventQuery{Type: tether.EventSubjectRevoked, After: before.Next})
			if revoked := len(p.Events) == 1; revoked == c.wantLive {
				t.Fatalf("subject.revoked events: %+v", p.Events)
			}
			if !c.wantLive && p.Events[0].Detail["reason"] != "privilege_gain" {
				t.Errorf("the revocation says %v; want reason privilege_gain", p.Events[0].Detail)
			}
		})
	}
	if _, err := tether.NewManager(tether.Config{Store: memstore.New(), OnPrivilegeGain: "rotate"}); err == nil {
		t.Error("OnPrivilegeGain rotate accepted")
	}
}

// TestExpiryEvents checks the event stores write when they remove an expired
// session: the system's, about that session, with the reason and the instant
// it stopped being live, and the time it was recorded.
func TestExpiryEvents(t *testing.T) {
	created := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	recorded := time.Date(2026, 3, 2, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	for _, c := range []struct {
		name          string
		expires       time.Time
		idleExpires   time.Time
		wantReason    string
		wantExpiredAt string
	}{
		{"lifetime", created.Add(time.Hour), created.Add(time.Hour), tether.ExpiryLifetime, "2026-03-01T10:00:00Z"},
		{"idle", created.Add(24 * time.Hour), created.Add(30*time.Minute + time.Millisecond), tether.ExpiryIdleTimeout, "2026-03-01T09:30:00.001Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &tether.Record{ID: tether.NewID(), Subject: "alice", CreatedAt: created, ExpiresAt: c.expires, IdleExpiresAt: c.idleExpires}
			evs := tether.ExpiryEvents(r, recorded)
			if len(evs) != 1 {
				t.Fatalf("ExpiryEvents gave %d events; want 1", len(evs))
			}
			e := evs[0]
			want := tether.Event{
				ID: e.ID, Time: time.Date(2026, 3, 2, 9, 0, 0, 123456000, time.UTC), Type: tether.EventSessionExpired,
				Subject: "alice", SessionID: r.ID, Actor: tether.Actor{Kind: tether.ActorSystem},
				Detail: map[string]any{"reason": c.wantReason, "expired_at": c.wantExpiredAt},
			}
			if diff := cmp.Diff(want, e); diff != "" {
				t.Errorf("ExpiryEvents (-want +got):\n%s", diff)
			}
			if len(e.ID) != len("evt_")+26 || e.ID[:4] != "evt_" {
				t.Errorf("ID %q; want evt_ and 26 characters, as the Manager's events", e.ID)
			}
			back, err := tether.UnmarshalEvent(tether.MarshalEvent(&e))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, back); diff != "" {
				t.Errorf("stored and read back (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExpiryOfOriginBookkeeping: a sign-in with a provider sid keeps an index
// record beside the session (origin.go); when both expire, the log reports
// the session, not the index record, which is no one's session.
func TestExpiryOfOriginBookkeeping(t *testing.T) {
	clk := newClock()
	st := memstore.NewWithOptions(memstore.Options{Now: clk.Now})
	m, err := tether.NewManager(tether.Config{Store: st, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, sess, err := m.Create(context.Background(), tether.CreateParams{
		Subject: "alice", Lifetime: time.Hour,
		Origin: tether.Origin{Issuer: "https://idp.example", Subject: "a-1", SessionID: "idp-sid-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	st.Sweep()
	page, err := m.Events(context.Background(), tether.EventQuery{Type: tether.EventSessionExpired})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].SessionID != sess.ID || page.Events[0].Subject != "alice" {
		t.Fatalf("session.expired events %+v; want one, for alice's session %s", page.Events, sess.ID)
	}
}
