package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

func TestAdminCreateSession(t *testing.T) {
	e := newEnv(t)
	w := e.admin(http.MethodPost, "/v1/sessions",
		`{"subject":"alice","roles":["admin","ops"],"ttl":"90m","idle_ttl":"15m","metadata":{"user_agent":"curl/8","ip":"192.0.2.7"}}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("got %d %s, want 201", w.Code, w.Body)
	}
	c := decode[created](t, w)
	if len(c.Token) == 0 || len(c.Token) > 64 || !strings.HasPrefix(c.Token, tether.TokenPrefix) {
		t.Errorf("token: got %q (%d chars), want %s… of at most 64 characters", c.Token, len(c.Token), tether.TokenPrefix)
	}
	s := c.Session
	if s.Subject != "alice" || !slices.Equal(s.Roles, []string{"admin", "ops"}) {
		t.Errorf("got subject %q roles %v, want alice [admin ops]", s.Subject, s.Roles)
	}
	if got := s.ExpiresAt.Sub(s.CreatedAt); got != 90*time.Minute {
		t.Errorf("expires_at - created_at: got %v, want 90m", got)
	}
	if got := s.IdleExpiresAt.Sub(s.CreatedAt); got != 15*time.Minute {
		t.Errorf("idle_expires_at - created_at: got %v, want 15m", got)
	}
	if s.Metadata["user_agent"] != "curl/8" || s.Metadata["ip"] != "192.0.2.7" {
		t.Errorf("metadata: got %v, want user_agent and ip as sent", s.Metadata)
	}
	if st := e.status(c.Token); st != http.StatusOK {
		t.Errorf("the new token: got %d, want 200", st)
	}

	t.Run("defaults", func(t *testing.T) {
		c := e.create(t, `{"subject":"bob"}`)
		if got := c.Session.ExpiresAt.Sub(c.Session.CreatedAt); got != 24*time.Hour {
			t.Errorf("default lifetime: got %v, want 24h", got)
		}
		if c.Session.Roles == nil || len(c.Session.Roles) != 0 {
			t.Errorf("roles of a subject without any: got %#v, want []", c.Session.Roles)
		}
	})
	t.Run("null durations mean the default", func(t *testing.T) {
		c := e.create(t, `{"subject":"bob","ttl":null,"idle_ttl":null}`)
		if got := c.Session.ExpiresAt.Sub(c.Session.CreatedAt); got != 24*time.Hour {
			t.Errorf("lifetime: got %v, want 24h", got)
		}
	})
	t.Run("roles replace the subject's roles", func(t *testing.T) {
		first := e.create(t, `{"subject":"carol","roles":["a"]}`)
		e.create(t, `{"subject":"carol","roles":["b"]}`)
		got := decode[tether.Session](t, e.bearer(http.MethodGet, "/v1/session", first.Token))
		if !slices.Equal(got.Roles, []string{"b"}) {
			t.Errorf("roles of carol's first session: got %v, want [b]: roles belong to the subject", got.Roles)
		}
	})
}

func TestAdminSessionByID(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, `{"subject":"alice","roles":["admin"]}`)

	w := e.admin(http.MethodGet, "/v1/sessions/"+c.Session.ID, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET: got %d %s, want 200", w.Code, w.Body)
	}
	if got := decode[tether.Session](t, w); got.ID != c.Session.ID || got.Subject != "alice" {
		t.Errorf("got %+v, want session %s of alice", got, c.Session.ID)
	}
	if body := w.Body.String(); strings.Contains(body, tether.TokenPrefix) || strings.Contains(body, "token") {
		t.Errorf("GET by ID shows the token: %s", body)
	}

	tests := []struct {
		name   string
		method string
		id     string
		want   int
	}{
		{"get unknown", http.MethodGet, tether.NewID(), http.StatusNotFound},
		{"get malformed", http.MethodGet, "x", http.StatusNotFound},
		{"delete unknown", http.MethodDelete, tether.NewID(), http.StatusNotFound},
		{"delete", http.MethodDelete, c.Session.ID, http.StatusNoContent},
		{"delete again", http.MethodDelete, c.Session.ID, http.StatusNotFound},
		{"get revoked", http.MethodGet, c.Session.ID, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.admin(tt.method, "/v1/sessions/"+tt.id, "")
			if w.Code != tt.want {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tt.want)
			}
			if tt.want == http.StatusNotFound {
				wantError(t, w, http.StatusNotFound, "not_found", "")
			}
		})
	}
	if s := e.status(c.Token); s != http.StatusUnauthorized {
		t.Errorf("token of a revoked session: got %d, want 401", s)
	}
}

func TestAdminSubjectSessions(t *testing.T) {
	e := newEnv(t)
	a1 := e.create(t, `{"subject":"alice"}`)
	a2 := e.create(t, `{"subject":"alice"}`)
	bob := e.create(t, `{"subject":"bob"}`)
	e.status(a1.Token) // cached: revoke-all must reach past the cache

	w := e.admin(http.MethodGet, "/v1/subjects/alice/sessions", "")
	if w.Code != http.StatusOK {
		t.Fatalf("list: got %d %s, want 200", w.Code, w.Body)
	}
	if got := decode[struct{ Sessions []tether.Session }](t, w).Sessions; len(got) != 2 {
		t.Errorf("list: got %d sessions, want 2", len(got))
	}
	w = e.admin(http.MethodGet, "/v1/subjects/nobody/sessions", "")
	if got := decode[map[string][]any](t, w)["sessions"]; w.Code != http.StatusOK || got == nil || len(got) != 0 {
		t.Errorf("list of an unknown subject: got %d %s, want 200 {\"sessions\":[]}", w.Code, w.Body)
	}

	w = e.admin(http.MethodDelete, "/v1/subjects/alice/sessions", "")
	if w.Code != http.StatusOK {
		t.Fatalf("revoke-all: got %d %s, want 200", w.Code, w.Body)
	}
	if got := decode[struct{ Revoked int }](t, w).Revoked; got != 2 {
		t.Errorf("revoked: got %d, want 2", got)
	}
	for _, tok := range []string{a1.Token, a2.Token} {
		if s := e.status(tok); s != http.StatusUnauthorized {
			t.Errorf("alice's session after revoke-all: got %d, want 401", s)
		}
	}
	if s := e.status(bob.Token); s != http.StatusOK {
		t.Errorf("bob's session: got %d, want 200", s)
	}
	if got := decode[struct{ Revoked int }](t, e.admin(http.MethodDelete, "/v1/subjects/alice/sessions", "")).Revoked; got != 0 {
		t.Errorf("second revoke-all: got %d, want 0", got)
	}
}

func TestAdminSetRoles(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, `{"subject":"alice","roles":["admin"]}`)
	if got := decode[tether.Session](t, e.bearer(http.MethodGet, "/v1/session", c.Token)).Roles; !slices.Equal(got, []string{"admin"}) {
		t.Fatalf("roles before: got %v, want [admin]", got)
	}

	w := e.admin(http.MethodPut, "/v1/subjects/alice/roles", `{"roles":["viewer","auditor"]}`)
	if w.Code != http.StatusOK {
		t.Fatalf("PUT roles: got %d %s, want 200", w.Code, w.Body)
	}
	got := decode[struct {
		Subject string
		Roles   []string
	}](t, w)
	if got.Subject != "alice" || !slices.Equal(got.Roles, []string{"viewer", "auditor"}) {
		t.Errorf("got %+v, want alice [viewer auditor]", got)
	}
	// The session was cached by the first whoami: the very next request must
	// still see the new roles.
	if r := decode[tether.Session](t, e.bearer(http.MethodGet, "/v1/session", c.Token)).Roles; !slices.Equal(r, []string{"viewer", "auditor"}) {
		t.Errorf("roles on the next request: got %v, want [viewer auditor]", r)
	}

	w = e.admin(http.MethodPut, "/v1/subjects/alice/roles", `{"roles":[]}`)
	if r := decode[map[string]any](t, w)["roles"]; w.Code != http.StatusOK || r == nil {
		t.Errorf("clearing roles: got %d %s, want 200 with \"roles\":[]", w.Code, w.Body)
	}
}

func TestIntrospect(t *testing.T) {
	e := newEnv(t)
	live := e.create(t, `{"subject":"bob","roles":["user","ops"]}`)
	revoked := e.create(t, `{"subject":"eve"}`)
	if w := e.admin(http.MethodDelete, "/v1/sessions/"+revoked.Session.ID, ""); w.Code != http.StatusNoContent {
		t.Fatalf("revoke: got %d", w.Code)
	}
	rotated := e.create(t, `{"subject":"carol"}`)
	if w := e.bearer(http.MethodPost, "/v1/session/rotate", rotated.Token); w.Code != http.StatusOK {
		t.Fatalf("rotate: got %d", w.Code)
	}

	t.Run("media type in another case, with a charset", func(t *testing.T) {
		w := serve(e.adm, req(http.MethodPost, "/v1/introspect", strings.NewReader("token="+live.Token),
			"Authorization", "Bearer "+testAdminKey, "Content-Type", "Application/X-WWW-Form-URLEncoded; charset=UTF-8"))
		if got := decode[map[string]any](t, w); w.Code != http.StatusOK || got["active"] != true {
			t.Errorf("got %d %s, want 200 active", w.Code, w.Body)
		}
	})
	t.Run("live", func(t *testing.T) {
		w := e.introspect(url.Values{"token": {live.Token}, "token_type_hint": {"access_token"}})
		if w.Code != http.StatusOK {
			t.Fatalf("got %d %s, want 200", w.Code, w.Body)
		}
		got := decode[struct {
			Active bool
			Sub    string
			Sid    string
			Exp    int64
			Scope  string
		}](t, w)
		if !got.Active || got.Sub != "bob" || got.Sid != live.Session.ID || got.Exp != live.Session.ExpiresAt.Unix() || got.Scope != "user ops" {
			t.Errorf("got %+v, want active, sub bob, sid %s, exp %d, scope \"user ops\"", got, live.Session.ID, live.Session.ExpiresAt.Unix())
		}
	})

	inactive := []struct{ name, token string }{
		{"revoked", revoked.Token},
		{"rotated away", rotated.Token},
		{"garbage", "tts_garbage"},
		{"well-formed but unknown", strings.Replace(live.Token, live.Session.ID, tether.NewID(), 1)},
		{"not a tether token", "eyJhbGciOiJIUzI1NiJ9.e30.x"},
	}
	for _, tt := range inactive {
		t.Run(tt.name, func(t *testing.T) {
			w := e.introspect(url.Values{"token": {tt.token}})
			if w.Code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", w.Code, w.Body)
			}
			// RFC 7662 §2.2: an inactive token says nothing more about itself.
			if got := strings.TrimSpace(w.Body.String()); got != `{"active":false}` {
				t.Errorf(`got %s, want {"active":false}`, got)
			}
		})
	}

	bad := []struct {
		name, contentType, body, target, msg string
	}{
		{"missing token", "application/x-www-form-urlencoded", "token_type_hint=access_token", "/v1/introspect", "token"},
		{"empty body", "application/x-www-form-urlencoded", "", "/v1/introspect", "token"},
		{"JSON instead of a form", "application/json", `{"token":"` + live.Token + `"}`, "/v1/introspect", "Content-Type"},
		{"no content type", "", "token=" + live.Token, "/v1/introspect", "Content-Type"},
		// Tokens never travel in URLs, so a query string does not count.
		{"token in the query", "application/x-www-form-urlencoded", "", "/v1/introspect?token=" + live.Token, "token"},
		{"malformed form", "application/x-www-form-urlencoded", "token=%zz", "/v1/introspect", "form"},
		{"oversize form", "application/x-www-form-urlencoded", "token=" + strings.Repeat("a", 70<<10), "/v1/introspect", "larger than 65536 bytes"},
		{"form-like but another type", "application/x-www-form-urlencodedx", "token=" + live.Token, "/v1/introspect", "Content-Type"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			h := []string{"Authorization", "Bearer " + testAdminKey}
			if tt.contentType != "" {
				h = append(h, "Content-Type", tt.contentType)
			}
			w := serve(e.adm, req(http.MethodPost, tt.target, strings.NewReader(tt.body), h...))
			wantError(t, w, http.StatusBadRequest, "bad_request", tt.msg)
		})
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, `{"subject":"alice"}`)
	e.status(c.Token)
	e.status("tts_nope")

	w := e.admin(http.MethodGet, "/metrics", "")
	if w.Code != http.StatusOK {
		t.Fatalf("got %d %s, want 200", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type: got %q, want text/plain (Prometheus text)", ct)
	}
	body := w.Body.String()
	for _, want := range []string{
		"# TYPE tether_validations_total counter",
		`tether_validations_total{result="ok"} 1`,
		`tether_validations_total{result="invalid"} 1`,
		"tether_sessions_created_total 1",
		"# TYPE tether_validation_duration_seconds histogram",
		`tether_http_requests_total{code="201",listener="admin",route="POST /v1/sessions"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, tether.TokenPrefix) {
		t.Error("metrics contain a token")
	}
	if w := serve(e.adm, req(http.MethodGet, "/metrics", nil)); w.Code != http.StatusUnauthorized {
		t.Errorf("metrics without the admin key: got %d, want 401", w.Code)
	}
}

func TestAdminAuth(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		header []string
	}{
		{"no key", nil},
		{"wrong key", []string{"Authorization", "Bearer wrong"}},
		{"key with a suffix", []string{"Authorization", "Bearer " + testAdminKey + "x"}},
		{"key as Basic", []string{"Authorization", "Basic " + testAdminKey}},
		{"key without a scheme", []string{"Authorization", testAdminKey}},
		// A session token is not an admin key, however live.
		{"session token", []string{"Authorization", "Bearer " + e.create(t, `{"subject":"alice"}`).Token}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case from its own address, so none hits the failure limit.
			h := append([]string{"RemoteAddr", fmt.Sprintf("198.51.100.%d:5000", i+1), "Content-Type", "application/json"}, tt.header...)
			w := serve(e.adm, req(http.MethodPost, "/v1/sessions", strings.NewReader(`{"subject":"mallory"}`), h...))
			wantError(t, w, http.StatusUnauthorized, "unauthenticated", "")
			if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate: got %q, want Bearer…", got)
			}
		})
	}
	if got, _ := e.m.List(t.Context(), "mallory"); len(got) != 0 {
		t.Errorf("refused requests created %d sessions for mallory", len(got))
	}
}

func TestAdminAuthFailureLimit(t *testing.T) {
	e := newEnv(t)
	const attacker, bystander = "203.0.113.9:40000", "203.0.113.10:40000"
	wrong := func(addr string) *http.Request {
		return req(http.MethodGet, "/v1/subjects/alice/sessions", nil, "RemoteAddr", addr, "Authorization", "Bearer wrong")
	}
	for i := range 10 {
		if w := serve(e.adm, wrong(attacker)); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: got %d, want 401", i+1, w.Code)
		}
	}
	w := serve(e.adm, wrong(attacker))
	wantError(t, w, http.StatusTooManyRequests, "rate_limited", "")
	ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Errorf("Retry-After: got %q, want a whole number of seconds >= 1", w.Header().Get("Retry-After"))
	}
	// Locked out means locked out: guessing right now must not tell the
	// attacker it guessed right.
	right := req(http.MethodGet, "/v1/subjects/alice/sessions", nil, "RemoteAddr", attacker, "Authorization", "Bearer "+testAdminKey)
	if w := serve(e.adm, right); w.Code != http.StatusTooManyRequests {
		t.Errorf("the right key from a locked-out address: got %d, want 429", w.Code)
	}
	// Other addresses are not punished for the attacker.
	ok := req(http.MethodGet, "/v1/subjects/alice/sessions", nil, "RemoteAddr", bystander, "Authorization", "Bearer "+testAdminKey)
	if w := serve(e.adm, ok); w.Code != http.StatusOK {
		t.Errorf("the right key from another address: got %d, want 200", w.Code)
	}
}

func TestCreateRateLimit(t *testing.T) {
	e := newEnv(t)
	var last int
	var w = e.admin(http.MethodPost, "/v1/sessions", `{"subject":"busy"}`)
	for i := 0; i < 200 && w.Code == http.StatusCreated; i++ {
		last = i
		w = e.admin(http.MethodPost, "/v1/sessions", `{"subject":"busy"}`)
	}
	wantError(t, w, http.StatusTooManyRequests, "rate_limited", "")
	if last < 50 {
		t.Errorf("limited after %d creates, want a burst of at least 50", last+1)
	}
	if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After: got %q, want seconds >= 1", w.Header().Get("Retry-After"))
	}
	// The limit is per subject: another one is unaffected.
	e.create(t, `{"subject":"quiet"}`)
}

// TestAdminFailuresKeyedByIPv6Prefix: addresses of one IPv6 /64 share a
// failure bucket, since one client can take as many of them as it likes.
func TestAdminFailuresKeyedByIPv6Prefix(t *testing.T) {
	e := newEnv(t)
	var code int
	var body string
	for i := range 11 {
		r := req(http.MethodGet, "/v1/sessions/0000000000000000", nil, "Authorization", "Bearer wrong")
		r.RemoteAddr = fmt.Sprintf("[2001:db8:1:2::%x]:40000", i+1)
		w := serve(e.adm, r)
		code, body = w.Code, w.Body.String()
	}
	if code != http.StatusTooManyRequests {
		t.Fatalf("11th failure from one /64: got %d %s, want 429", code, body)
	}
	r := req(http.MethodGet, "/v1/sessions/0000000000000000", nil, "Authorization", "Bearer wrong")
	r.RemoteAddr = "[2001:db8:1:3::1]:40000" // another /64
	if w := serve(e.adm, r); w.Code != http.StatusUnauthorized {
		t.Errorf("another /64: got %d, want 401", w.Code)
	}
}

// adminAuthFailures reads tether_admin_auth_failures_total.
func adminAuthFailures(t *testing.T, e *env) string {
	t.Helper()
	body := e.admin(http.MethodGet, "/metrics", "").Body.String()
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, "tether_admin_auth_failures_total "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no tether_admin_auth_failures_total in\n%s", body)
	return ""
}

// TestAdminNoCredentials: requests that carry no credentials at all (a
// browser's /favicon.ico, a scraper, a page polling /metrics) are plain 401s:
// they never count as failed logins, so they cannot lock the real key out.
// Only a wrong key counts.
func TestAdminNoCredentials(t *testing.T) {
	e := newEnv(t)
	const addr = "203.0.113.50:40000"
	paths := []string{"/metrics", "/v1/subjects/alice/sessions", "/", "/v1/keys", "/robots.txt"}
	for i := range 50 {
		w := serve(e.adm, req(http.MethodGet, paths[i%len(paths)], nil, "RemoteAddr", addr))
		wantError(t, w, http.StatusUnauthorized, "unauthenticated", "")
	}
	if w := serve(e.adm, req(http.MethodGet, "/favicon.ico", nil, "RemoteAddr", addr)); w.Code != http.StatusOK {
		t.Errorf("/favicon.ico without credentials: got %d, want 200", w.Code)
	}
	right := req(http.MethodGet, "/v1/subjects/alice/sessions", nil, "RemoteAddr", addr, "Authorization", "Bearer "+testAdminKey)
	if w := serve(e.adm, right); w.Code != http.StatusOK {
		t.Fatalf("the right key after 50 credential-less requests: got %d %s, want 200", w.Code, w.Body)
	}
	if got := adminAuthFailures(t, e); got != "0" {
		t.Errorf("tether_admin_auth_failures_total after credential-less requests: got %s, want 0", got)
	}
	serve(e.adm, req(http.MethodGet, "/metrics", nil, "RemoteAddr", addr, "Authorization", "Bearer wrong-key"))
	serve(e.adm, req(http.MethodGet, "/metrics", nil, "RemoteAddr", addr, "Authorization", "Basic "+testAdminKey))
	if got := adminAuthFailures(t, e); got != "2" {
		t.Errorf("tether_admin_auth_failures_total after a wrong key and a wrong scheme: got %s, want 2", got)
	}
}

// TestReservedSubjectsRefused: no admin API caller can create, list, revoke
// or set roles for a session of the reserved namespace, where the console's
// own sessions live.
func TestReservedSubjectsRefused(t *testing.T) {
	e := newEnv(t)
	const console = "tether%3Aconsole"
	tests := []struct {
		method, target, body string
	}{
		{http.MethodPost, "/v1/sessions", `{"subject":"tether:console"}`},
		{http.MethodPost, "/v1/sessions", `{"subject":"tether:anything"}`},
		{http.MethodGet, "/v1/subjects/" + console + "/sessions", ""},
		{http.MethodDelete, "/v1/subjects/" + console + "/sessions", ""},
		{http.MethodPut, "/v1/subjects/" + console + "/roles", `{"roles":["admin"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target+" "+tt.body, func(t *testing.T) {
			wantError(t, e.admin(tt.method, tt.target, tt.body), http.StatusBadRequest, "bad_request", "reserved")
		})
	}
	if n := e.m.Stats().Created; n != 0 {
		t.Errorf("refused requests created %d sessions", n)
	}
}
