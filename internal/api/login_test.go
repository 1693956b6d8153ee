package api_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/memstore"
)

// oidcEnv is a public API with sign-in through a real OpenID provider
// (oidc-provider from npm) on loopback.
type oidcEnv struct {
	m      *tether.Manager
	tether *httptest.Server
	idp    *servicetest.OIDCProvider
}

func newOIDCEnv(t *testing.T, cookies tether.Cookies) *oidcEnv {
	t.Helper()
	e := &oidcEnv{}
	var h http.Handler
	e.tether = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(e.tether.Close)
	const secret = "test-client-secret-0123456789abcdef"
	e.idp = servicetest.StartOIDCProvider(t, []servicetest.OIDCClient{{
		ID: "tether", Secret: secret, RedirectURIs: []string{e.tether.URL + "/v1/login/callback"},
		// Registered so that the provider puts sid in the ID token.
		BackchannelLogoutURI: e.tether.URL + "/v1/oidc/backchannel-logout",
	}}, map[string]map[string]any{
		"alice": {"groups": []string{"admin", "staff"}},
		"bob":   {"groups": "staff"},
	})
	st := memstore.New()
	var err error
	e.m, err = tether.NewManager(tether.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.m.Close(); st.Close() })
	srv, err := api.New(api.Config{
		Manager: e.m, Admin: newAdmin(t), Logger: slog.New(slog.DiscardHandler), Cookies: cookies,
		OIDC: &api.OIDCConfig{
			Issuer: e.idp.Issuer, ClientID: "tether", ClientSecret: secret,
			RedirectURL: e.tether.URL + "/v1/login/callback",
			Scopes:      []string{"openid", "email", "groups"}, RolesClaim: "groups", SubjectPrefix: "idp:",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h = srv.Public()
	return e
}

// browser is a cookie-keeping client that does not follow redirects, so
// that each hop can be checked.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// signIn goes from start (a /v1/login URL) through the provider's pages as
// login, lets tamper change the state cookie, and returns Tether's answer to
// the callback.
func (e *oidcEnv) signIn(t *testing.T, c *http.Client, start, login string, tamper func(*loginStateView)) *http.Response {
	t.Helper()
	callback := e.idp.SignIn(t, c, start, login)
	if !strings.HasPrefix(callback.String(), e.tether.URL+"/v1/login/callback?") {
		t.Fatalf("the provider sent the browser to %s, want the callback", callback)
	}
	if tamper != nil {
		tamperState(t, c, e.tether.URL, tamper)
	}
	resp, err := c.Get(callback.String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return resp
}

// loginStateView mirrors the state cookie, for tests that tamper with it.
type loginStateView struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Rd       string `json:"r,omitempty"`
	MaxAge   *int   `json:"m,omitempty"`
	Started  int64  `json:"t"`
}

func tamperState(t *testing.T, c *http.Client, base string, f func(*loginStateView)) {
	u, _ := url.Parse(base)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name != "tether_login" {
			continue
		}
		b, _ := base64.RawURLEncoding.DecodeString(ck.Value)
		var st loginStateView
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		f(&st)
		b, _ = json.Marshal(st)
		c.Jar.SetCookies(u, []*http.Cookie{{Name: "tether_login", Value: base64.RawURLEncoding.EncodeToString(b), Path: "/"}})
		return
	}
	t.Fatal("no state cookie to tamper with")
}

func sessionCookie(c *http.Client, base string) string {
	u, _ := url.Parse(base)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == tether.CookieName {
			return ck.Value
		}
	}
	return ""
}

func TestOIDCSignIn(t *testing.T) {
	e := newOIDCEnv(t, tether.Cookies{})
	c := browser(t)

	// The first hop: code flow with PKCE S256, state and nonce.
	resp, err := c.Get(e.tether.URL + "/v1/login?rd=" + url.QueryEscape(e.tether.URL+"/app/x?y=1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), e.idp.Issuer+"/auth") {
		t.Fatalf("login: got %d to %s, want 302 to the provider", resp.StatusCode, loc)
	}
	for name, want := range map[string]string{"response_type": "code", "code_challenge_method": "S256", "client_id": "tether"} {
		if got := q.Get(name); got != want {
			t.Errorf("authorization request %s: got %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(name)) < 43 {
			t.Errorf("authorization request %s: got %q, want 256 random bits", name, q.Get(name))
		}
	}
	if strings.Contains(loc.String(), "code_verifier") {
		t.Error("the PKCE verifier left the browser's cookie")
	}

	resp = e.signIn(t, c, resp.Header.Get("Location"), "alice", nil)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != e.tether.URL+"/app/x?y=1" {
		t.Fatalf("callback: got %d to %q, want 302 to rd", resp.StatusCode, resp.Header.Get("Location"))
	}
	token := sessionCookie(c, e.tether.URL)
	if !strings.HasPrefix(token, tether.TokenPrefix) {
		t.Fatalf("session cookie: got %q", token)
	}
	sess, err := e.m.Validate(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	if sess.Subject != "idp:alice" || strings.Join(sess.Roles, ",") != "admin,staff" || sess.AuthMethod != "oidc" {
		t.Errorf("session: got subject %q roles %v method %q, want idp:alice [admin staff] oidc", sess.Subject, sess.Roles, sess.AuthMethod)
	}
	if time.Since(sess.AuthTime) > time.Minute {
		t.Errorf("auth_time: got %v, want the sign-in's", sess.AuthTime)
	}
	if sess.Metadata["oidc_iss"] != e.idp.Issuer || sess.Metadata["oidc_sub"] != "alice" || sess.Metadata["oidc_sid"] == "" {
		t.Errorf("provider identity on the session: got %v", sess.Metadata)
	}
	for k, v := range sess.Metadata {
		if strings.Count(v, ".") == 2 && len(v) > 100 {
			t.Errorf("metadata %s looks like a JWT: the ID token must never be stored", k)
		}
	}

	// A second sign-in (the provider remembers the browser) with a roles
	// claim that is one string; no rd: the account page.
	c2 := browser(t)
	resp = e.signIn(t, c2, e.tether.URL+"/v1/login", "bob", nil)
	if resp.Header.Get("Location") != "/account/sessions" {
		t.Errorf("no rd: got %q, want /account/sessions", resp.Header.Get("Location"))
	}
	bob, err := e.m.Validate(t.Context(), sessionCookie(c2, e.tether.URL))
	if err != nil || strings.Join(bob.Roles, ",") != "staff" {
		t.Errorf("bob: %v roles %v, want [staff]", err, bob)
	}

	// Log out: a same-site POST with the cookie ends the session and sends
	// the browser to the provider's end_session_endpoint.
	req, _ := http.NewRequest(http.MethodPost, e.tether.URL+"/v1/logout", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, _ = c.Do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site logout: got %d, want 403", resp.StatusCode)
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, _ = c.Do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), e.idp.Issuer+"/session/end?client_id=tether") {
		t.Errorf("logout: got %d to %q, want 302 to the provider's end_session_endpoint", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, err := e.m.Validate(t.Context(), token); err == nil {
		t.Error("the session outlived the logout")
	}
	if sessionCookie(c, e.tether.URL) != "" {
		t.Error("the session cookie outlived the logout")
	}

	// The audit log: the provider created the session, then alice ended it.
	page, err := e.m.Events(t.Context(), tether.EventQuery{Subject: "idp:alice"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range page.Events {
		got = append(got, ev.Type+"/"+ev.Actor.Kind)
	}
	want := []string{"session.created/oidc", "roles.changed/oidc", "oidc.login/oidc", "session.revoked/self", "oidc.logout/self"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events: got %v, want %v", got, want)
	}
}

// Sign-in refuses what it did not start: a state from elsewhere, a missing
// state cookie, a nonce or PKCE verifier that does not match, a replayed code.
func TestOIDCSignInRefuses(t *testing.T) {
	e := newOIDCEnv(t, tether.Cookies{})
	cases := []struct {
		name   string
		tamper func(*loginStateView)
		status int
	}{
		{"state from another sign-in", func(s *loginStateView) { s.State = flipFirst(s.State) }, 400},
		{"nonce mismatch", func(s *loginStateView) { s.Nonce = "other-nonce-other-nonce-other-nonce-000000" }, 401},
		{"PKCE verifier mismatch", func(s *loginStateView) { s.Verifier = "other-verifier-other-verifier-other-verifier-00" }, 401},
		{"sign-in too old", func(s *loginStateView) { s.Started -= 3600 }, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := browser(t)
			resp := e.signIn(t, c, e.tether.URL+"/v1/login", "mallory", tc.tamper)
			if resp.StatusCode != tc.status || sessionCookie(c, e.tether.URL) != "" {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("got %d %s, want %d and no session", resp.StatusCode, b, tc.status)
			}
		})
	}

	t.Run("no state cookie, replayed code", func(t *testing.T) {
		c := browser(t)
		var callback string
		resp := e.signIn(t, c, e.tether.URL+"/v1/login", "mallory", func(*loginStateView) {})
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("sign-in: got %d", resp.StatusCode)
		}
		callback = resp.Request.URL.String()
		// The state cookie was used up: the same callback again is refused
		// before the code is even tried, in this browser or another.
		for _, cl := range []*http.Client{c, browser(t)} {
			resp, err := cl.Get(callback)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("callback replayed: got %d, want 400", resp.StatusCode)
			}
		}
	})
}

// rd goes only to this host or one under cookie.domain; anything else ends
// on the account page.
func TestOIDCOpenRedirect(t *testing.T) {
	e := newOIDCEnv(t, tether.Cookies{Domain: "example.test"})
	self := e.tether.URL
	cases := map[string]string{
		"/app?x=1":                                "/app?x=1",
		self + "/app":                             self + "/app",
		"https://app.example.test/x":              "https://app.example.test/x",
		"https://example.test/":                   "https://example.test/",
		"https://evil.example/":                   "/account/sessions",
		"//evil.example/x":                        "/account/sessions",
		"/\\evil.example":                         "/account/sessions",
		"https://example.test.evil.example":       "/account/sessions",
		"https://evilexample.test/":               "/account/sessions",
		"https://app.example.test@evil.example/":  "/account/sessions",
		"https://evil.example\\@app.example.test": "/account/sessions",
		"javascript:alert(1)":                     "/account/sessions",
		"data:text/html,hi":                       "/account/sessions",
		"ftp://app.example.test/":                 "/account/sessions",
		"https:/evil.example":                     "/account/sessions",
		"\t//evil.example":                        "/account/sessions",
		"http://127.0.0.1.evil.example/":          "/account/sessions",
	}
	c := browser(t)
	for rd, want := range cases {
		t.Run(rd, func(t *testing.T) {
			resp := e.signIn(t, c, self+"/v1/login?rd="+url.QueryEscape(rd), "alice", nil)
			if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || got != want {
				t.Errorf("rd %q: got %d to %q, want 302 to %q", rd, resp.StatusCode, got, want)
			}
		})
	}
}

func TestOIDCOff(t *testing.T) {
	e := newEnv(t)
	for _, r := range []*http.Request{req(http.MethodGet, "/v1/login", nil), req(http.MethodGet, "/v1/login/callback?code=x&state=y", nil), req(http.MethodPost, "/v1/logout", nil)} {
		wantError(t, serve(e.pub, r), http.StatusNotFound, "not_found", "not configured")
	}
}

// A step-up (forward auth's redirect for max_auth_age) asks the provider for
// a fresh sign-in with max_age, and the new session carries the new time.
func TestOIDCStepUp(t *testing.T) {
	e := newOIDCEnv(t, tether.Cookies{})
	c := browser(t)
	e.signIn(t, c, e.tether.URL+"/v1/login", "alice", nil)

	resp, err := c.Get(e.tether.URL + "/v1/login?max_age=0&rd=%2Fbilling")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if got := loc.Query().Get("max_age"); got != "0" {
		t.Fatalf("step-up authorization request: max_age %q, want 0", got)
	}
	before := time.Now().Truncate(time.Second)
	resp = e.signIn(t, c, loc.String(), "alice", nil)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/billing" {
		t.Fatalf("step-up callback: got %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	sess, err := e.m.Validate(t.Context(), sessionCookie(c, e.tether.URL))
	if err != nil {
		t.Fatal(err)
	}
	if sess.AuthTime.Before(before) {
		t.Errorf("after the step-up auth_time is %v, want the new sign-in (≥ %v)", sess.AuthTime, before)
	}

	for _, bad := range []string{"-1", "soon", "99999999999"} {
		resp, err := c.Get(e.tether.URL + "/v1/login?max_age=" + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("max_age=%s: got %d, want 400", bad, resp.StatusCode)
		}
	}
}

// flipFirst changes the first character of s, whatever it is.
func flipFirst(s string) string {
	if s[0] == 'x' {
		return "y" + s[1:]
	}
	return "x" + s[1:]
}
