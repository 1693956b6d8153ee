package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tetherhq/tether"
)

type eventsPage struct {
	Events []tether.Event `json:"events"`
	Next   string         `json:"next"`
}

// TestEvents drives changes through both listeners and reads them back from
// GET /v1/events: who acted and from where, filters, the cursor, bad input.
func TestEvents(t *testing.T) {
	e := newEnv(t)
	alice := e.create(t, `{"subject":"alice","roles":["admin"]}`)
	e.create(t, `{"subject":"bob"}`)
	if w := e.bearer(http.MethodDelete, "/v1/session", alice.Token, "RemoteAddr", "198.51.100.7:4000"); w.Code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}

	w := e.admin(http.MethodGet, "/v1/events?subject=alice", "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /v1/events: %d %s", w.Code, w.Body)
	}
	p := decode[eventsPage](t, w)
	var got []string
	for _, ev := range p.Events {
		got = append(got, ev.Type+" by "+ev.Actor.Kind+"@"+ev.Actor.IP)
	}
	want := []string{
		"session.created by admin@192.0.2.1",
		"roles.changed by admin@192.0.2.1",
		"session.revoked by self@198.51.100.7",
	}
	if len(got) != len(want) {
		t.Fatalf("alice's events: got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: got %q, want %q", i, got[i], want[i])
		}
	}
	if p.Events[2].SessionID != alice.Session.ID || p.Events[2].Subject != "alice" {
		t.Errorf("the logout event is %+v; want alice's session", p.Events[2])
	}

	// The cursor: one at a time, then nothing new.
	var all []tether.Event
	after := ""
	for range 10 {
		p := decode[eventsPage](t, e.admin(http.MethodGet, "/v1/events?limit=1&after="+after, ""))
		if len(p.Events) == 0 {
			break
		}
		all = append(all, p.Events...)
		after = p.Next
	}
	if len(all) != 4 { // alice's three and bob's session.created
		t.Errorf("paging one by one gave %d events; want 4", len(all))
	}

	for _, c := range []struct{ query, msg string }{
		{"type=session.exploded", "unknown event type"},
		{"limit=0", "limit"},
		{"limit=5000", "limit"},
		{"limit=x", "limit"},
		{"after=not-a-cursor", "cursor"},
	} {
		wantError(t, e.admin(http.MethodGet, "/v1/events?"+c.query, ""), http.StatusBadRequest, "bad_request", c.msg)
	}
	if w := serve(e.adm, req(http.MethodGet, "/v1/events", nil)); w.Code != http.StatusUnauthorized {
		t.Errorf("GET /v1/events without the admin key: %d; want 401", w.Code)
	}

	// A wrong key is a failed admin login in the log, with where it came from;
	// a missing one is not an attempt and is not recorded.
	serve(e.adm, req(http.MethodGet, "/v1/keys", nil, "Authorization", "Bearer wrong-key-0123456789abcdef", "RemoteAddr", "203.0.113.66:5000"))
	p = decode[eventsPage](t, e.admin(http.MethodGet, "/v1/events?type=admin.auth_failed", ""))
	if len(p.Events) != 1 || p.Events[0].Actor.IP != "203.0.113.66" || p.Events[0].Actor.Kind != tether.ActorAdmin {
		t.Fatalf("admin.auth_failed events: %+v; want one, from 203.0.113.66", p.Events)
	}
	if strings.Contains(fmt.Sprint(p.Events[0]), "wrong-key") {
		t.Fatal("the event holds the key that was tried")
	}
}
