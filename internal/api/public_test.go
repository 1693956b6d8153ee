package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/store/memstore"
)

func TestWhoami(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, `{"subject":"alice","roles":["admin"],"metadata":{"device":"laptop"}}`)

	w := e.bearer(http.MethodGet, "/v1/session", c.Token)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /v1/session: got %d %s, want 200", w.Code, w.Body)
	}
	got := decode[tether.Session](t, w)
	if got.ID != c.Session.ID || got.Subject != "alice" || !slices.Equal(got.Roles, []string{"admin"}) || got.Metadata["device"] != "laptop" {
		t.Errorf("got %+v, want session %s of alice with roles [admin] and device laptop", got, c.Session.ID)
	}
	if strings.Contains(w.Body.String(), c.Token) {
		t.Error("the session object contains the token")
	}
	// The contract's field names, as outside checks read them.
	raw := decode[map[string]any](t, w)
	for _, k := range []string{"id", "subject", "roles", "created_at", "last_seen_at", "expires_at", "idle_expires_at", "metadata"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("session JSON lacks %q: %s", k, w.Body)
		}
	}
}

func TestUnauthenticated(t *testing.T) {
	e := newEnv(t)
	live := e.create(t, `{"subject":"alice"}`)
	tests := []struct {
		name   string
		header []string
	}{
		{"no token", nil},
		{"garbage token", []string{"Authorization", "Bearer tts_garbage_0123456789"}},
		{"token that is not ours", []string{"Authorization", "Bearer eyJhbGciOiJub25lIn0.e30."}},
		{"empty bearer", []string{"Authorization", "Bearer "}},
		// Another scheme must not fall back to the cookie: the caller meant
		// that header, and a cookie beside it is ambient authority.
		{"basic scheme beside a cookie", []string{"Authorization", "Basic YWxpY2U6cHc=", "Cookie", tether.CookieName + "=" + live.Token}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, route := range []string{"GET /v1/session", "DELETE /v1/session", "POST /v1/session/rotate",
				"GET /v1/sessions", "DELETE /v1/sessions", "DELETE /v1/sessions/" + live.Session.ID} {
				method, path, _ := strings.Cut(route, " ")
				w := serve(e.pub, req(method, path, nil, tt.header...))
				wantError(t, w, http.StatusUnauthorized, "unauthenticated", "")
				if h := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
					t.Errorf("%s: WWW-Authenticate: got %q, want Bearer…", route, h)
				}
			}
		})
	}
	if e.status(live.Token) != http.StatusOK {
		t.Error("a live session was ended by unauthenticated requests")
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, `{"subject":"alice"}`)
	other := e.create(t, `{"subject":"alice"}`)

	if w := e.bearer(http.MethodDelete, "/v1/session", c.Token); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE /v1/session: got %d %s, want 204", w.Code, w.Body)
	}
	if got := e.status(c.Token); got != http.StatusUnauthorized {
		t.Errorf("after logout: got %d, want 401", got)
	}
	if got := e.status(other.Token); got != http.StatusOK {
		t.Errorf("the subject's other session after logout: got %d, want 200", got)
	}
	if w := e.bearer(http.MethodDelete, "/v1/session", c.Token); w.Code != http.StatusUnauthorized {
		t.Errorf("second logout: got %d, want 401", w.Code)
	}
}

func TestRotate(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, `{"subject":"carol","roles":["user"]}`)
	e.status(c.Token) // cached now: rotation must not leave the old token in the cache

	w := e.bearer(http.MethodPost, "/v1/session/rotate", c.Token)
	if w.Code != http.StatusOK {
		t.Fatalf("rotate: got %d %s, want 200", w.Code, w.Body)
	}
	if len(w.Result().Cookies()) != 0 {
		t.Errorf("a Bearer rotate set a cookie: %v", w.Result().Cookies())
	}
	got := decode[created](t, w)
	if got.Token == "" || got.Token == c.Token {
		t.Fatalf("rotate token: got %q, want a new one", got.Token)
	}
	if got.Session.ID != c.Session.ID || !slices.Equal(got.Session.Roles, []string{"user"}) {
		t.Errorf("rotated session: got %+v, want the same session %s with roles [user]", got.Session, c.Session.ID)
	}
	if s := e.status(got.Token); s != http.StatusOK {
		t.Errorf("new token: got %d, want 200", s)
	}
	if s := e.status(c.Token); s != http.StatusUnauthorized {
		t.Errorf("old token: got %d, want 401", s)
	}
	if w := e.bearer(http.MethodPost, "/v1/session/rotate", c.Token); w.Code != http.StatusUnauthorized {
		t.Errorf("rotating the old token again: got %d, want 401", w.Code)
	}
}

func TestMySessions(t *testing.T) {
	e := newEnv(t)
	a1 := e.create(t, `{"subject":"alice"}`)
	a2 := e.create(t, `{"subject":"alice"}`)
	e.create(t, `{"subject":"bob"}`)

	w := e.bearer(http.MethodGet, "/v1/sessions", a1.Token)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /v1/sessions: got %d %s, want 200", w.Code, w.Body)
	}
	var ids []string
	for _, s := range decode[struct{ Sessions []tether.Session }](t, w).Sessions {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	want := []string{a1.Session.ID, a2.Session.ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("got sessions %v, want alice's %v (and not bob's)", ids, want)
	}
}

func TestSignOutEverywhere(t *testing.T) {
	tests := []struct {
		query       string
		wantRevoked int
		currentLive bool
	}{
		{"?keep_current=true", 2, true},
		{"?keep_current=false", 3, false},
		{"", 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			e := newEnv(t)
			cur := e.create(t, `{"subject":"alice"}`)
			o1 := e.create(t, `{"subject":"alice"}`)
			o2 := e.create(t, `{"subject":"alice"}`)
			bob := e.create(t, `{"subject":"bob"}`)
			for _, tok := range []string{cur.Token, o1.Token, o2.Token} {
				e.status(tok) // cached: revocation must reach past the cache
			}

			w := e.bearer(http.MethodDelete, "/v1/sessions"+tt.query, cur.Token)
			if w.Code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", w.Code, w.Body)
			}
			if got := decode[struct{ Revoked int }](t, w).Revoked; got != tt.wantRevoked {
				t.Errorf("revoked: got %d, want %d", got, tt.wantRevoked)
			}
			for _, tok := range []string{o1.Token, o2.Token} {
				if s := e.status(tok); s != http.StatusUnauthorized {
					t.Errorf("another session of alice: got %d, want 401", s)
				}
			}
			wantCur := http.StatusUnauthorized
			if tt.currentLive {
				wantCur = http.StatusOK
			}
			if s := e.status(cur.Token); s != wantCur {
				t.Errorf("current session: got %d, want %d", s, wantCur)
			}
			if s := e.status(bob.Token); s != http.StatusOK {
				t.Errorf("bob's session: got %d, want 200", s)
			}
		})
	}

	t.Run("bad keep_current", func(t *testing.T) {
		e := newEnv(t)
		cur := e.create(t, `{"subject":"alice"}`)
		other := e.create(t, `{"subject":"alice"}`)
		w := e.bearer(http.MethodDelete, "/v1/sessions?keep_current=maybe", cur.Token)
		wantError(t, w, http.StatusBadRequest, "bad_request", "keep_current")
		if s := e.status(other.Token); s != http.StatusOK {
			t.Errorf("a refused sign-out revoked a session: got %d, want 200", s)
		}
	})
}

func TestRevokeMine(t *testing.T) {
	e := newEnv(t)
	me := e.create(t, `{"subject":"alice"}`)
	mine := e.create(t, `{"subject":"alice"}`)
	theirs := e.create(t, `{"subject":"bob"}`)

	tests := []struct {
		name string
		id   string
		want int
	}{
		{"another subject's session", theirs.Session.ID, http.StatusNotFound},
		{"unknown ID", tether.NewID(), http.StatusNotFound},
		{"malformed ID", "not-an-id", http.StatusNotFound},
		{"one of mine", mine.Session.ID, http.StatusNoContent},
		{"one of mine, again", mine.Session.ID, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.bearer(http.MethodDelete, "/v1/sessions/"+tt.id, me.Token)
			if w.Code != tt.want {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tt.want)
			}
			if tt.want == http.StatusNotFound {
				// Same answer for "not yours" and "no such": IDs cannot be probed.
				wantError(t, w, http.StatusNotFound, "not_found", "")
			}
		})
	}
	if s := e.status(mine.Token); s != http.StatusUnauthorized {
		t.Errorf("revoked session: got %d, want 401", s)
	}
	if s := e.status(theirs.Token); s != http.StatusOK {
		t.Errorf("bob's session after alice tried to revoke it: got %d, want 200", s)
	}
	if s := e.status(me.Token); s != http.StatusOK {
		t.Errorf("the caller's own session: got %d, want 200", s)
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		if w := serve(e.pub, req(http.MethodGet, path, nil)); w.Code != http.StatusOK {
			t.Errorf("GET %s: got %d %s, want 200", path, w.Code, w.Body)
		}
	}
	e.store.Close()
	wantError(t, serve(e.pub, req(http.MethodGet, "/readyz", nil)), http.StatusServiceUnavailable, "unavailable", "")
	// Liveness says the process runs, not that the store does: a restart
	// would not bring the store back.
	if w := serve(e.pub, req(http.MethodGet, "/healthz", nil)); w.Code != http.StatusOK {
		t.Errorf("GET /healthz with the store down: got %d, want 200", w.Code)
	}
}

// TestStoreDownFailsClosed: a validation that cannot read the store is a 503,
// never a 200 and never a 401 that would make a client throw its token away.
func TestStoreDownFailsClosed(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, `{"subject":"alice"}`) // never validated, so not cached
	e.store.Close()

	t.Run("whoami", func(t *testing.T) {
		wantError(t, e.bearer(http.MethodGet, "/v1/session", c.Token), http.StatusServiceUnavailable, "unavailable", "")
	})
	t.Run("introspect", func(t *testing.T) {
		w := e.introspect(map[string][]string{"token": {c.Token}})
		wantError(t, w, http.StatusServiceUnavailable, "unavailable", "")
	})
	t.Run("rotate", func(t *testing.T) {
		wantError(t, e.bearer(http.MethodPost, "/v1/session/rotate", c.Token), http.StatusServiceUnavailable, "unavailable", "")
	})
	t.Run("admin create", func(t *testing.T) {
		wantError(t, e.admin(http.MethodPost, "/v1/sessions", `{"subject":"bob"}`), http.StatusServiceUnavailable, "unavailable", "")
	})
	t.Run("admin list", func(t *testing.T) {
		wantError(t, e.admin(http.MethodGet, "/v1/subjects/alice/sessions", ""), http.StatusServiceUnavailable, "unavailable", "")
	})
}

func TestCookieAuthAndCSRF(t *testing.T) {
	// Host decides the cookie: plain HTTP to loopback is the development
	// cookie; any other host is taken to be behind TLS.
	const loopback = "127.0.0.1:8080"
	cookie := func(tok string) string { return tether.CookieName + "=" + tok }

	tests := []struct {
		name   string
		header []string
		want   int
	}{
		{"cross-site", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"same-site is not same-origin", []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"neither Sec-Fetch-Site nor Origin", nil, http.StatusForbidden},
		{"foreign Origin", []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"same-origin", []string{"Sec-Fetch-Site", "same-origin"}, http.StatusNoContent},
		{"matching Origin", []string{"Origin", "http://" + loopback}, http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run("logout "+tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.create(t, `{"subject":"alice"}`)
			h := append([]string{"Host", loopback, "Cookie", cookie(c.Token)}, tt.header...)
			w := serve(e.pub, req(http.MethodDelete, "/v1/session", nil, h...))
			if w.Code != tt.want {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tt.want)
			}
			if tt.want == http.StatusForbidden {
				wantError(t, w, http.StatusForbidden, "cross_origin", "")
				if s := e.status(c.Token); s != http.StatusOK {
					t.Errorf("a refused cross-site logout ended the session: got %d, want 200", s)
				}
				return
			}
			if s := e.status(c.Token); s != http.StatusUnauthorized {
				t.Errorf("after logout: got %d, want 401", s)
			}
			cs := w.Result().Cookies()
			if len(cs) != 1 || cs[0].Name != tether.CookieName || cs[0].MaxAge >= 0 || cs[0].Value != "" {
				t.Errorf("Set-Cookie: got %v, want %s cleared (Max-Age<=0, empty value)", w.Header()["Set-Cookie"], tether.CookieName)
			}
		})
	}

	t.Run("handshake mint cross-site", func(t *testing.T) {
		e := newEnv(t)
		c := e.create(t, `{"subject":"alice"}`)
		w := serve(e.pub, req(http.MethodPost, "/v1/handshakes", strings.NewReader(`{"audience":"https://b.example"}`),
			"Host", loopback, "Cookie", cookie(c.Token), "Sec-Fetch-Site", "cross-site", "Content-Type", "application/json"))
		wantError(t, w, http.StatusForbidden, "cross_origin", "")
	})

	t.Run("GET needs no CSRF headers", func(t *testing.T) {
		e := newEnv(t)
		c := e.create(t, `{"subject":"alice"}`)
		w := serve(e.pub, req(http.MethodGet, "/v1/session", nil, "Host", loopback, "Cookie", cookie(c.Token)))
		if w.Code != http.StatusOK {
			t.Errorf("got %d %s, want 200", w.Code, w.Body)
		}
	})

	t.Run("every state-changing route is guarded", func(t *testing.T) {
		e := newEnv(t)
		c := e.create(t, `{"subject":"alice"}`)
		other := e.create(t, `{"subject":"alice"}`)
		for _, route := range []string{"DELETE /v1/session", "POST /v1/session/rotate", "DELETE /v1/sessions", "DELETE /v1/sessions/" + other.Session.ID} {
			method, path, _ := strings.Cut(route, " ")
			w := serve(e.pub, req(method, path, nil, "Host", loopback, "Cookie", cookie(c.Token), "Sec-Fetch-Site", "cross-site"))
			if w.Code != http.StatusForbidden {
				t.Errorf("%s cross-site: got %d, want 403", route, w.Code)
			}
		}
		for _, tok := range []string{c.Token, other.Token} {
			if s := e.status(tok); s != http.StatusOK {
				t.Errorf("after refused cross-site requests: got %d, want 200", s)
			}
		}
	})

	cookieTests := []struct {
		name, host, cookieName string
		secure                 bool
	}{
		{"rotate on loopback sets the development cookie", loopback, tether.CookieName, false},
		{"rotate elsewhere sets the __Host- cookie", "sessions.example.com", tether.SecureCookieName, true},
	}
	for _, tt := range cookieTests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.create(t, `{"subject":"alice"}`)
			w := serve(e.pub, req(http.MethodPost, "/v1/session/rotate", nil,
				"Host", tt.host, "Cookie", tt.cookieName+"="+c.Token, "Sec-Fetch-Site", "same-origin"))
			if w.Code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", w.Code, w.Body)
			}
			fresh := decode[created](t, w).Token
			cs := w.Result().Cookies()
			if len(cs) != 1 {
				t.Fatalf("Set-Cookie: got %v, want one cookie", w.Header()["Set-Cookie"])
			}
			got := cs[0]
			if got.Name != tt.cookieName || got.Value != fresh || !got.HttpOnly || got.Secure != tt.secure ||
				got.Path != "/" || got.Domain != "" || got.SameSite < http.SameSiteLaxMode || got.Expires.Before(time.Now()) {
				t.Errorf("cookie: got %+v, want %s=<new token>, HttpOnly, Secure=%v, Path=/, no Domain, SameSite>=Lax, expiring later",
					got, tt.cookieName, tt.secure)
			}
			if s := e.status(c.Token); s != http.StatusUnauthorized {
				t.Errorf("old token after cookie rotate: got %d, want 401", s)
			}
		})
	}
}

func TestSecurityHeadersAndUnknownRoutes(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, `{"subject":"alice"}`)
	tests := []struct {
		name string
		h    http.Handler
		r    *http.Request
		want int
	}{
		{"public whoami", e.pub, req(http.MethodGet, "/v1/session", nil, "Authorization", "Bearer "+c.Token), http.StatusOK},
		{"public 401", e.pub, req(http.MethodGet, "/v1/session", nil), http.StatusUnauthorized},
		{"public unknown route", e.pub, req(http.MethodGet, "/v1/nope", nil), http.StatusNotFound},
		{"public root", e.pub, req(http.MethodGet, "/", nil), http.StatusNotFound},
		{"admin unknown route", e.adm, req(http.MethodGet, "/v1/nope", nil, "Authorization", "Bearer "+testAdminKey), http.StatusNotFound},
		{"admin 401", e.adm, req(http.MethodGet, "/v1/nope", nil), http.StatusUnauthorized},
		{"healthz", e.pub, req(http.MethodGet, "/healthz", nil), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(tt.h, tt.r)
			if w.Code != tt.want {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tt.want)
			}
			for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: got %q, want %q", k, got, v)
				}
			}
			if w.Code == http.StatusNotFound {
				wantError(t, w, http.StatusNotFound, "not_found", "route")
			}
			if cc := w.Header().Get("Cache-Control"); w.Header().Get("Content-Type") == "application/json" && cc != "no-store" {
				t.Errorf("Cache-Control on a JSON answer: got %q, want no-store", cc)
			}
		})
	}
}

// TestTokenInURLIgnored: a token in the query string never authenticates, so
// no one is led to put one in a URL (ASVS 14.2.1).
func TestTokenInURLIgnored(t *testing.T) {
	e := newEnv(t)
	live := e.create(t, `{"subject":"alice"}`)
	for _, name := range []string{"token", "access_token", "session", "sid"} {
		w := serve(e.pub, req(http.MethodGet, "/v1/session?"+name+"="+live.Token, nil))
		wantError(t, w, http.StatusUnauthorized, "unauthenticated", "")
	}
}

// deadlineStore answers every List with context.DeadlineExceeded, as a store
// does that cannot answer in time.
type deadlineStore struct{ tether.Store }

func (deadlineStore) List(context.Context, string) ([]*tether.Record, error) {
	return nil, context.DeadlineExceeded
}

// TestDeadlineIsUnavailable: a store that cannot answer in time is a 503,
// like one that cannot answer at all (the pages say the same: see
// internal/web).
func TestDeadlineIsUnavailable(t *testing.T) {
	e := newHSEnv(t, deadlineStore{memstore.New()}, api.Config{})
	c := e.create(t, `{"subject":"alice"}`)
	wantError(t, e.bearer(http.MethodGet, "/v1/sessions", c.Token), http.StatusServiceUnavailable, "unavailable", "try again")
	wantError(t, e.admin(http.MethodGet, "/v1/subjects/alice/sessions", ""), http.StatusServiceUnavailable, "unavailable", "")
}
