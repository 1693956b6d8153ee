package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/web"
)

const wantCSP = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	token, _ := e.login(t, "alice", uaChromeLinux, "192.0.2.7")
	cookie, _ := e.consoleSignIn(t)
	for _, tc := range []struct {
		name    string
		h       http.Handler
		path    string
		hdr     []string
		status  int
		wantCSP string
	}{
		{"sessions", e.pub, "/account/sessions", userCookie(token), 200, wantCSP},
		{"not signed in", e.pub, "/account/sessions", nil, 401, wantCSP},
		{"signed out", e.pub, "/account/signed-out", nil, 200, wantCSP},
		{"unknown page", e.pub, "/account/nope", nil, 404, wantCSP},
		{"console sign-in", e.adm, "/admin/", nil, 200, wantCSP + "; connect-src 'self'"},
		{"console", e.adm, "/admin/?subject=alice", cookie, 200, wantCSP + "; connect-src 'self'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := call(tc.h, "GET", tc.path, nil, tc.hdr...)
			if w.Code != tc.status {
				t.Fatalf("got status %d, want %d:\n%s", w.Code, tc.status, w.Body)
			}
			for name, want := range map[string]string{
				"Content-Security-Policy": tc.wantCSP,
				"X-Frame-Options":         "DENY",
				"Referrer-Policy":         "no-referrer",
				"Cache-Control":           "no-store",
				"X-Content-Type-Options":  "nosniff",
				"Content-Type":            "text/html; charset=utf-8",
			} {
				if got := w.Header().Get(name); got != want {
					t.Errorf("%s: got %q, want %q", name, got, want)
				}
			}
			body := w.Body.String()
			for _, want := range []string{`<html lang="en">`, "<h1>", `<main id="main"`} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			for _, bad := range []string{" style=", "<style", "onclick", "onerror", "http://", "https://"} {
				if strings.Contains(body, bad) {
					t.Errorf("page contains %q: inline style/script or an external URL", bad)
				}
			}
		})
	}
}

func TestStaticAssets(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		h          http.Handler
		path, kind string
	}{
		{e.pub, "/account/static/style.css", "text/css"},
		{e.adm, "/admin/static/style.css", "text/css"},
		{e.adm, "/admin/static/console.js", "text/javascript"},
		{e.adm, "/admin/static/", "text/html"}, // no listing: the not-found page
	} {
		w := call(tc.h, "GET", tc.path, nil)
		if strings.HasSuffix(tc.path, "/") {
			if w.Code != 404 {
				t.Errorf("GET %s: got %d, want 404", tc.path, w.Code)
			}
			continue
		}
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), tc.kind) {
			t.Errorf("GET %s: got %d %q, want 200 %s", tc.path, w.Code, w.Header().Get("Content-Type"), tc.kind)
		}
	}
}

func TestAccountNotSignedIn(t *testing.T) {
	e := newEnv(t)
	token, sess := e.login(t, "alice", uaChromeLinux, "192.0.2.7")
	if err := e.m.Revoke(context.Background(), sess.ID); err != nil {
		t.Fatal(err)
	}
	for name, hdr := range map[string][]string{
		"no cookie":       nil,
		"revoked session": userCookie(token),
		"garbage cookie":  userCookie("tts_garbage"),
	} {
		t.Run(name, func(t *testing.T) {
			w := call(e.pub, "GET", "/account/sessions", nil, hdr...)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("got %d, want 401", w.Code)
			}
			if !strings.Contains(w.Body.String(), "You are not signed in") {
				t.Errorf("the 401 page does not say so:\n%s", w.Body)
			}
			if w.Header().Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
		})
	}
}

func TestAccountSessionsPage(t *testing.T) {
	e := newEnv(t)
	token, current := e.login(t, "alice", uaChromeLinux, "192.0.2.7")
	_, phone := e.login(t, "alice", uaSafariIPhone, "198.51.100.20")
	e.login(t, "bob", uaFirefoxWin, "203.0.113.9")

	w := call(e.pub, "GET", "/account/sessions", nil, userCookie(token)...)
	if w.Code != 200 {
		t.Fatalf("got %d:\n%s", w.Code, w.Body)
	}
	body := w.Body.String()
	for _, want := range []string{"Chrome on Linux", "Safari on iPhone", "192.0.2.7", "198.51.100.20", current.ID, phone.ID} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if n := strings.Count(body, `class="badge">This device<`); n != 1 {
		t.Errorf("%d \"This device\" markers, want 1", n)
	}
	if strings.Index(body, current.ID) > strings.Index(body, phone.ID) {
		t.Error("the current session is not listed first")
	}
	if strings.Contains(body, "signed in through") {
		t.Error("a session signed in here says it came from elsewhere")
	}
	_, from, err := e.m.Create(t.Context(), tether.CreateParams{Subject: "alice",
		Origin: tether.Origin{Issuer: "https://a.example", Subject: "alice", SessionID: "s1"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := call(e.pub, "GET", "/account/sessions", nil, userCookie(token)...).Body.String(); !strings.Contains(body, "signed in through https://a.example") || !strings.Contains(body, from.ID) {
		t.Error("the session from a.example's handshake does not say where it came from")
	}
	for _, leak := range []string{token, tether.TokenPrefix, "Firefox on Windows", "203.0.113.9"} {
		if strings.Contains(body, leak) {
			t.Errorf("page shows %q (a token, or another subject's session)", leak)
		}
	}
}

// form posts form to the account page's action with the session's token.
func accountPost(t *testing.T, e *env, token, action string, form url.Values, hdr ...string) *http.Response {
	t.Helper()
	w := call(e.pub, "POST", action, form, with(userCookie(token), hdr)...)
	return w.Result()
}

func accountCSRF(t *testing.T, e *env, token string) string {
	t.Helper()
	w := call(e.pub, "GET", "/account/sessions", nil, userCookie(token)...)
	return hiddenField(t, w.Body.String(), "csrf")
}

func TestAccountCSRFRefused(t *testing.T) {
	e := newEnv(t)
	token, _ := e.login(t, "alice", uaChromeLinux, "192.0.2.7")
	otherToken, _ := e.login(t, "alice", uaSafariIPhone, "198.51.100.20")
	csrf := accountCSRF(t, e, token)
	otherCSRF := accountCSRF(t, e, otherToken)
	if csrf == otherCSRF || csrf == "" {
		t.Fatalf("form tokens are not per session: %q, %q", csrf, otherCSRF)
	}
	good := url.Values{"csrf": {csrf}}
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  []string
	}{
		{"cross-site Sec-Fetch-Site", good, []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}},
		{"same-site, other origin", good, []string{"Sec-Fetch-Site", "same-site", "Origin", "http://127.0.0.1:9999"}},
		{"foreign Origin only", good, []string{"Origin", "https://evil.example"}},
		{"neither header", good, nil},
		{"no form token", url.Values{}, sameOrigin},
		{"another session's form token", url.Values{"csrf": {otherCSRF}}, sameOrigin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, action := range []string{"/account/sessions/sign-out-everywhere", "/account/sessions/sign-out-others"} {
				res := accountPost(t, e, token, action, tc.form, tc.hdr...)
				if res.StatusCode != http.StatusForbidden {
					t.Errorf("POST %s: got %d, want 403", action, res.StatusCode)
				}
				if len(res.Cookies()) != 0 {
					t.Errorf("POST %s: a refused post set cookies %v", action, res.Cookies())
				}
			}
			if n := e.count(t, "alice"); n != 2 {
				t.Fatalf("alice has %d sessions after a refused post, want 2", n)
			}
		})
	}
	// A cross-site post is refused before the session is even looked at.
	res := accountPost(t, e, "", "/account/sessions/sign-out-everywhere", good, "Sec-Fetch-Site", "cross-site")
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site post without a cookie: got %d, want 403", res.StatusCode)
	}
}

func TestAccountSignOut(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	laptop, _ := e.login(t, "alice", uaChromeLinux, "192.0.2.7")
	phone, phoneSess := e.login(t, "alice", uaSafariIPhone, "198.51.100.20")
	tablet, _ := e.login(t, "alice", uaFirefoxWin, "198.51.100.21")
	_, bobSess := e.login(t, "bob", uaFirefoxWin, "203.0.113.9")
	csrf := accountCSRF(t, e, laptop)

	// Another subject's session is not found, and stays.
	res := accountPost(t, e, laptop, "/account/sessions/sign-out", url.Values{"csrf": {csrf}, "id": {bobSess.ID}}, sameOrigin...)
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("signing out bob's session: got %d, want 404", res.StatusCode)
	}
	if e.count(t, "bob") != 1 {
		t.Fatal("alice signed bob out")
	}

	// One other device: its next request is refused.
	res = accountPost(t, e, laptop, "/account/sessions/sign-out", url.Values{"csrf": {csrf}, "id": {phoneSess.ID}}, sameOrigin...)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account/sessions?done=one" {
		t.Fatalf("sign out one: got %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if w := call(e.pub, "GET", "/v1/session", nil, "Authorization", "Bearer "+phone); w.Code != http.StatusUnauthorized {
		t.Errorf("the signed-out phone's next request: got %d, want 401", w.Code)
	}
	if w := call(e.pub, "GET", "/account/sessions?done=one", nil, userCookie(laptop)...); !strings.Contains(w.Body.String(), "That session is signed out.") {
		t.Error("no confirmation after signing out a session")
	}

	// All others: the current one stays.
	res = accountPost(t, e, laptop, "/account/sessions/sign-out-others", url.Values{"csrf": {csrf}}, sameOrigin...)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account/sessions?done=others&n=1" {
		t.Fatalf("sign out others: got %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if _, err := e.m.Validate(ctx, tablet); err == nil {
		t.Error("the tablet survived 'sign out all other sessions'")
	}
	if _, err := e.m.Validate(ctx, laptop); err != nil {
		t.Errorf("the current session did not survive 'sign out all other sessions': %v", err)
	}

	// Everywhere: the cookie is cleared and the page refuses this browser.
	res = accountPost(t, e, laptop, "/account/sessions/sign-out-everywhere", url.Values{"csrf": {csrf}}, sameOrigin...)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account/signed-out" {
		t.Fatalf("sign out everywhere: got %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	cleared := false
	for _, c := range res.Cookies() {
		cleared = cleared || (c.Name == tether.CookieName && c.MaxAge < 0)
	}
	if !cleared {
		t.Errorf("sign out everywhere did not clear the cookie: %v", res.Header["Set-Cookie"])
	}
	if w := call(e.pub, "GET", "/account/sessions", nil, userCookie(laptop)...); w.Code != http.StatusUnauthorized {
		t.Errorf("after signing out everywhere: got %d, want 401", w.Code)
	}
	if e.count(t, "alice") != 0 || e.count(t, "bob") != 1 {
		t.Error("sign out everywhere ended the wrong sessions")
	}
}

func TestSignOutCurrentSession(t *testing.T) {
	e := newEnv(t)
	laptop, laptopSess := e.login(t, "alice", uaChromeLinux, "192.0.2.7")
	res := accountPost(t, e, laptop, "/account/sessions/sign-out",
		url.Values{"csrf": {accountCSRF(t, e, laptop)}, "id": {laptopSess.ID}}, sameOrigin...)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account/signed-out" {
		t.Fatalf("got %d to %q, want 303 to /account/signed-out", res.StatusCode, res.Header.Get("Location"))
	}
	if w := call(e.pub, "GET", "/account/sessions", nil, userCookie(laptop)...); w.Code != http.StatusUnauthorized {
		t.Errorf("got %d, want 401", w.Code)
	}
}

func TestEscaping(t *testing.T) {
	e := newEnv(t)
	hostileSubject := `<img src=x onerror=alert(3)>"'&`
	token, _ := e.login(t, hostileSubject, uaHostile, "192.0.2.7")
	if _, _, err := e.m.Create(context.Background(), tether.CreateParams{
		Subject: hostileSubject, Metadata: map[string]string{"device": `</td><script>alert(4)</script>`},
	}); err != nil {
		t.Fatal(err)
	}
	cookie, _ := e.consoleSignIn(t)
	pages := map[string]string{
		"account": call(e.pub, "GET", "/account/sessions", nil, userCookie(token)...).Body.String(),
		"console": call(e.adm, "GET", "/admin/?subject="+url.QueryEscape(hostileSubject), nil, cookie...).Body.String(),
	}
	for name, body := range pages {
		for _, raw := range []string{"<script>alert", "<img src=x", "onerror=alert(2)>", "</td><script>"} {
			if strings.Contains(body, raw) {
				t.Errorf("%s page contains unescaped %q", name, raw)
			}
		}
		for _, escaped := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(3)&gt;"} {
			if !strings.Contains(body, escaped) {
				t.Errorf("%s page lacks the escaped %q", name, escaped)
			}
		}
	}
}

func TestConsoleCookie(t *testing.T) {
	for _, tc := range []struct {
		host, name string
		secure     bool
	}{
		{"127.0.0.1:8081", web.ConsoleCookieName, false},
		{"localhost:8081", web.ConsoleCookieName, false},
		{"tether.example", web.SecureConsoleCookieName, true},
	} {
		t.Run(tc.host, func(t *testing.T) {
			e := newEnv(t)
			w := call(e.adm, "POST", "/admin/sign-in", url.Values{"key": {testAdminKey}},
				"Host", tc.host, "Sec-Fetch-Site", "same-origin")
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/admin/" {
				t.Fatalf("got %d to %q, want 303 to /admin/", w.Code, w.Header().Get("Location"))
			}
			cookies := w.Result().Cookies()
			if len(cookies) != 1 {
				t.Fatalf("got cookies %v, want one", w.Header()["Set-Cookie"])
			}
			c := cookies[0]
			if c.Name != tc.name || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/admin/" ||
				c.Secure != tc.secure || c.Domain != "" || c.Expires.IsZero() {
				t.Errorf("cookie %q: want %s, HttpOnly, SameSite=Strict, Path=/admin/, Secure=%v, host-only, expiring",
					w.Header().Get("Set-Cookie"), tc.name, tc.secure)
			}
			if strings.Contains(c.Value, testAdminKey) || strings.Contains(w.Body.String(), testAdminKey) {
				t.Error("the admin key reached the browser")
			}
			if !strings.HasPrefix(c.Value, tether.TokenPrefix) {
				t.Errorf("the console cookie is not an opaque Tether token: %q", c.Value)
			}
			// It is worthless anywhere but the console.
			if w := call(e.pub, "GET", "/v1/session", nil, "Authorization", "Bearer "+c.Value); w.Code != 401 {
				t.Errorf("the console session works on the public API: %d", w.Code)
			}
			if w := call(e.adm, "GET", "/v1/sessions/x", nil, "Authorization", "Bearer "+c.Value); w.Code != 401 {
				t.Errorf("the console session works as the admin key: %d", w.Code)
			}
		})
	}
}

func TestConsoleSignIn(t *testing.T) {
	e := newEnv(t)
	// Wrong key: the form again, with a 401, and no cookie.
	w := call(e.adm, "POST", "/admin/sign-in", url.Values{"key": {"wrong-key-0123456789"}}, sameOrigin...)
	if w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 || !strings.Contains(w.Body.String(), "not the admin key") {
		t.Errorf("wrong key: got %d, cookies %v", w.Code, w.Result().Cookies())
	}
	// A cross-site sign-in form is refused.
	w = call(e.adm, "POST", "/admin/sign-in", url.Values{"key": {testAdminKey}}, "Sec-Fetch-Site", "cross-site")
	if w.Code != http.StatusForbidden || len(w.Result().Cookies()) != 0 {
		t.Errorf("cross-site sign-in: got %d, cookies %v", w.Code, w.Result().Cookies())
	}
	// The Bearer key does not open the pages, and the JSON routes still take it.
	if w := call(e.adm, "GET", "/admin/", nil, "Authorization", "Bearer "+testAdminKey); !strings.Contains(w.Body.String(), `id="key"`) {
		t.Error("a Bearer admin key opened the console without signing in")
	}
	if w := call(e.adm, "GET", "/v1/keys", nil, "Authorization", "Bearer "+testAdminKey); w.Code != 200 {
		t.Errorf("admin API with the Bearer key: got %d, want 200", w.Code)
	}
	if w := call(e.adm, "GET", "/v1/keys", nil); w.Code != 401 {
		t.Errorf("admin API without a key: got %d, want 401", w.Code)
	}

	cookie, csrf := e.consoleSignIn(t)
	// Sign out: the cookie is cleared and the session is dead.
	w = call(e.adm, "POST", "/admin/sign-out", url.Values{"csrf": {csrf}}, with(cookie, sameOrigin)...)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign out: got %d", w.Code)
	}
	if c := w.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
		t.Errorf("sign out did not clear the cookie: %v", w.Header()["Set-Cookie"])
	}
	if w := call(e.adm, "GET", "/admin/", nil, cookie...); !strings.Contains(w.Body.String(), `id="key"`) {
		t.Error("the console still opens after signing out")
	}
	if w := call(e.adm, "GET", "/admin/stats", nil, cookie...); w.Code != 401 {
		t.Errorf("stats after signing out: got %d, want 401", w.Code)
	}
}

func TestConsoleSignInRateLimit(t *testing.T) {
	e := newEnv(t)
	// The API's limiter: a burst of 10 failures per IP, then one a second.
	for i := range 10 {
		w := call(e.adm, "POST", "/admin/sign-in", url.Values{"key": {"wrong-key-0123456789"}}, sameOrigin...)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: got %d, want 401", i+1, w.Code)
		}
	}
	w := call(e.adm, "POST", "/admin/sign-in", url.Values{"key": {testAdminKey}}, sameOrigin...)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || len(w.Result().Cookies()) != 0 {
		t.Errorf("after 10 failures: got %d, Retry-After %q, want 429 with Retry-After and no cookie",
			w.Code, w.Header().Get("Retry-After"))
	}
	// One limiter for the form and the API.
	if w := call(e.adm, "GET", "/v1/keys", nil, "Authorization", "Bearer "+testAdminKey); w.Code != http.StatusTooManyRequests {
		t.Errorf("admin API from the same IP: got %d, want 429", w.Code)
	}
	// Another IP is not affected.
	if w := call(e.adm, "POST", "/admin/sign-in", url.Values{"key": {testAdminKey}}, with(sameOrigin, []string{"Remote", "192.0.2.99:1"})...); w.Code != http.StatusSeeOther {
		t.Errorf("another IP: got %d, want 303", w.Code)
	}
}

func TestConsoleActions(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	laptop, laptopSess := e.login(t, "alice", uaChromeLinux, "192.0.2.7")
	phone, _ := e.login(t, "alice", uaSafariIPhone, "198.51.100.20")
	cookie, csrf := e.consoleSignIn(t)
	post := func(action string, form url.Values, hdr ...string) *http.Response {
		t.Helper()
		return call(e.adm, "POST", action, form, with(cookie, hdr)...).Result()
	}

	w := call(e.adm, "GET", "/admin/?subject=alice", nil, cookie...)
	body := w.Body.String()
	for _, want := range []string{"Chrome on Linux", "Safari on iPhone", laptopSess.ID, "2 live sessions", "EdDSA", "ES256"} {
		if !strings.Contains(body, want) {
			t.Errorf("console lacks %q", want)
		}
	}

	// CSRF: a cross-site post and a post without the form token change nothing.
	if res := post("/admin/subjects/revoke-all", url.Values{"csrf": {csrf}, "subject": {"alice"}}, "Sec-Fetch-Site", "cross-site"); res.StatusCode != 403 {
		t.Errorf("cross-site revoke-all: got %d, want 403", res.StatusCode)
	}
	if res := post("/admin/subjects/revoke-all", url.Values{"subject": {"alice"}}, sameOrigin...); res.StatusCode != 403 {
		t.Errorf("revoke-all without a form token: got %d, want 403", res.StatusCode)
	}
	if res := call(e.adm, "POST", "/admin/subjects/revoke-all", url.Values{"csrf": {csrf}, "subject": {"alice"}}, sameOrigin...); res.Code != 401 {
		t.Errorf("revoke-all without the console cookie: got %d, want 401", res.Code)
	}
	if e.count(t, "alice") != 2 {
		t.Fatal("a refused post revoked sessions")
	}

	// Roles.
	res := post("/admin/subjects/roles", url.Values{"csrf": {csrf}, "subject": {"alice"}, "roles": {"editor\r\n viewer \n\neditor\n"}}, sameOrigin...)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("set roles: got %d", res.StatusCode)
	}
	sess, err := e.m.Validate(ctx, laptop)
	if err != nil || strings.Join(sess.Roles, ",") != "editor,viewer" {
		t.Errorf("alice's roles: got %v (%v), want editor,viewer", sess, err)
	}
	if res := post("/admin/subjects/roles", url.Values{"csrf": {csrf}, "subject": {"alice"}, "roles": {strings.Repeat("x", 200)}}, sameOrigin...); res.StatusCode != 400 {
		t.Errorf("an oversize role: got %d, want 400", res.StatusCode)
	}

	// Revoke one, then all.
	res = post("/admin/sessions/revoke", url.Values{"csrf": {csrf}, "subject": {"alice"}, "id": {laptopSess.ID}}, sameOrigin...)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/?done=revoked&subject=alice" {
		t.Fatalf("revoke: got %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if _, err := e.m.Validate(ctx, laptop); err == nil {
		t.Error("the revoked session still validates")
	}
	res = post("/admin/subjects/revoke-all", url.Values{"csrf": {csrf}, "subject": {"alice"}}, sameOrigin...)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke all: got %d", res.StatusCode)
	}
	if _, err := e.m.Validate(ctx, phone); err == nil {
		t.Error("revoke all left a session")
	}
	if w := call(e.adm, "GET", "/admin/?subject=alice&done=revoked-all", nil, cookie...); !strings.Contains(w.Body.String(), "No live sessions") ||
		!strings.Contains(w.Body.String(), "Every session of the subject is revoked.") {
		t.Errorf("console after revoke all:\n%s", w.Body)
	}

	// Keys.
	before := e.keys.List()
	res = post("/admin/keys/rotate", url.Values{"csrf": {csrf}}, sameOrigin...)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate: got %d", res.StatusCode)
	}
	if after := e.keys.List(); len(after) <= len(before) {
		t.Errorf("rotation did not add keys: %d before, %d after", len(before), len(after))
	}
	if w := call(e.adm, "GET", "/admin/", nil, cookie...); !strings.Contains(w.Body.String(), "retiring") {
		t.Error("the console does not show the retiring keys")
	}

	// A bad subject is a 400 with the reason, not a 500.
	if w := call(e.adm, "GET", "/admin/?subject="+strings.Repeat("a", 300), nil, cookie...); w.Code != 400 {
		t.Errorf("oversize subject: got %d, want 400", w.Code)
	}
}

func TestConsoleStats(t *testing.T) {
	e := newEnv(t)
	token, _ := e.login(t, "alice", uaChromeLinux, "192.0.2.7")
	for range 3 {
		call(e.pub, "GET", "/v1/session", nil, "Authorization", "Bearer "+token)
	}
	if w := call(e.adm, "GET", "/admin/stats", nil); w.Code != 401 {
		t.Errorf("stats without the console cookie: got %d, want 401", w.Code)
	}
	cookie, _ := e.consoleSignIn(t)
	w := call(e.adm, "GET", "/admin/stats", nil, cookie...)
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("stats: got %d, Cache-Control %q", w.Code, w.Header().Get("Cache-Control"))
	}
	var got struct {
		CacheEntries int     `json:"cache_entries"`
		Validations  uint64  `json:"validations"`
		CacheHitRate float64 `json:"cache_hit_rate"`
		AtMillis     int64   `json:"at_ms"`
	}
	if err := json.NewDecoder(w.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Validations != 3 || got.CacheEntries != 1 || got.CacheHitRate <= 0 || got.AtMillis < time.Now().Add(-time.Minute).UnixMilli() {
		t.Errorf("stats: got %+v, want 3 validations, 1 cached session, a hit rate and the time", got)
	}
}

func TestDemoSignIn(t *testing.T) {
	e := newEnv(t)
	h, err := web.DemoSignIn(web.DemoConfig{
		Subjects: []string{"alice"},
		Next:     "http://127.0.0.1:8080/account/sessions",
		Create: func(ctx context.Context, subject string, md map[string]string) (string, time.Time, error) {
			token, sess, err := e.m.Create(ctx, tether.CreateParams{Subject: subject, Metadata: md})
			if err != nil {
				return "", time.Time{}, err
			}
			return token, sess.ExpiresAt, nil
		},
		End: demoEnd(e),
	})
	if err != nil {
		t.Fatal(err)
	}
	if w := call(h, "GET", "/demo/sign-in", nil); w.Code != 200 || w.Header().Get("Content-Security-Policy") != strings.Replace(wantCSP, "form-action 'self'", "form-action 'self' http://127.0.0.1:8080", 1) {
		t.Errorf("page: got %d, CSP %q", w.Code, w.Header().Get("Content-Security-Policy"))
	}
	if w := call(h, "POST", "/demo/sign-in", url.Values{"subject": {"alice"}}, "Sec-Fetch-Site", "cross-site"); w.Code != 403 {
		t.Errorf("cross-site: got %d, want 403", w.Code)
	}
	if w := call(h, "POST", "/demo/sign-in", url.Values{"subject": {"mallory"}}, sameOrigin...); w.Code != 400 {
		t.Errorf("not a demo subject: got %d, want 400", w.Code)
	}
	w := call(h, "POST", "/demo/sign-in", url.Values{"subject": {"alice"}}, with(sameOrigin, []string{"User-Agent", uaFirefoxWin})...)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "http://127.0.0.1:8080/account/sessions" {
		t.Fatalf("sign in: got %d to %q", w.Code, w.Header().Get("Location"))
	}
	c := w.Result().Cookies()
	if len(c) != 1 || c[0].Name != tether.CookieName || !c[0].HttpOnly {
		t.Fatalf("sign in set %v", w.Header()["Set-Cookie"])
	}
	page := call(e.pub, "GET", "/account/sessions", nil, userCookie(c[0].Value)...)
	if !strings.Contains(page.Body.String(), "Firefox on Windows") || !strings.Contains(page.Body.String(), "192.0.2.7") {
		t.Errorf("the demo session lacks the browser's metadata:\n%s", page.Body)
	}

	// Each click replaces the browser's previous session, as an exchange does.
	for range 3 {
		w := call(h, "POST", "/demo/sign-in", url.Values{"subject": {"alice"}}, with(sameOrigin, userCookie(c[0].Value))...)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("sign in again: got %d", w.Code)
		}
		if _, err := e.m.Validate(t.Context(), c[0].Value); !errors.Is(err, tether.ErrInvalidToken) {
			t.Errorf("the previous session after signing in again: got %v, want it ended", err)
		}
		c = w.Result().Cookies()
	}
	if n := e.count(t, "alice"); n != 1 {
		t.Errorf("after four sign-ins in one browser alice has %d sessions, want 1", n)
	}
}

func TestDeviceName(t *testing.T) {
	for _, tc := range []struct{ ua, want string }{
		{uaChromeLinux, "Chrome on Linux"},
		{uaFirefoxWin, "Firefox on Windows"},
		{uaSafariIPhone, "Safari on iPhone"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Safari on macOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"},
		{"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "Samsung Internet on Android"},
		{"Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 OPR/85.0", "Opera on Android"},
		{"Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0 Mobile/15E148 Safari/604.1", "Chrome on iPad"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on ChromeOS"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", "Headless Chrome on Linux"},
		{"curl/8.5.0", "curl"},
		{"Go-http-client/1.1", "Go HTTP client"},
		{"Mozilla/5.0 (Windows NT 10.0)", "A browser on Windows"},
		{"", "Unknown device"},
		{uaHostile, "Unknown device"},
	} {
		if got := web.DeviceName(tc.ua); got != tc.want {
			t.Errorf("DeviceName(%q) = %q, want %q", tc.ua, got, tc.want)
		}
	}
}
