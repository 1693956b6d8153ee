package tether_test

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

func TestTokenFromRequest(t *testing.T) {
	tests := []struct {
		name       string
		auth       string
		cookies    []*http.Cookie
		host       string // default example.com: a public name, so only the __Host- cookie counts
		want       string
		wantCookie bool
	}{
		{name: "none"},
		{name: "bearer", auth: "Bearer tok", want: "tok"},
		{name: "bearer lower case", auth: "bearer tok", want: "tok"},
		{name: "bearer upper case", auth: "BEARER tok", want: "tok"},
		{name: "bearer extra spaces", auth: "Bearer   tok  ", want: "tok"},
		{name: "bearer without token", auth: "Bearer"},
		{name: "basic", auth: "Basic dXNlcjpwYXNz"},
		{name: "other scheme does not fall back to the cookie", auth: "Token tok",
			cookies: []*http.Cookie{{Name: tether.CookieName, Value: "c"}}},
		{name: "bearer wins over the cookie", auth: "Bearer tok",
			cookies: []*http.Cookie{{Name: tether.CookieName, Value: "c"}}, want: "tok"},
		{name: "plain cookie on loopback", host: "127.0.0.1:8080", cookies: []*http.Cookie{{Name: tether.CookieName, Value: "c"}},
			want: "c", wantCookie: true},
		{name: "plain cookie ignored on a public name (cookie tossing)", cookies: []*http.Cookie{{Name: tether.CookieName, Value: "c"}}},
		{name: "host cookie", cookies: []*http.Cookie{{Name: tether.SecureCookieName, Value: "h"}},
			want: "h", wantCookie: true},
		{name: "host cookie preferred", cookies: []*http.Cookie{
			{Name: tether.CookieName, Value: "c"}, {Name: tether.SecureCookieName, Value: "h"}},
			want: "h", wantCookie: true},
		{name: "empty host cookie does not fall to the plain one", cookies: []*http.Cookie{
			{Name: tether.SecureCookieName, Value: ""}, {Name: tether.CookieName, Value: "c"}}},
		{name: "unrelated cookie", cookies: []*http.Cookie{{Name: "other", Value: "x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.host != "" {
				r.Host = tt.host
			}
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			for _, c := range tt.cookies {
				r.AddCookie(c)
			}
			got, fromCookie := tether.TokenFromRequest(r)
			if got != tt.want || fromCookie != tt.wantCookie {
				t.Errorf("TokenFromRequest = %q, %v; want %q, %v", got, fromCookie, tt.want, tt.wantCookie)
			}
		})
	}
}

// serve runs r through m.Middleware and returns the response and the session
// the handler saw, if it ran.
func serve(m *tether.Manager, r *http.Request) (*httptest.ResponseRecorder, *tether.Session) {
	var seen *tether.Session
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := tether.FromContext(r.Context())
		if !ok || s == nil {
			http.Error(w, "no session in context", http.StatusInternalServerError)
			return
		}
		seen = s
		w.WriteHeader(http.StatusNoContent)
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, seen
}

func TestMiddleware(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	token, sess := e.create(t, "alice")
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	// example.com is a public name, so the session cookie is the __Host- one.
	cookie := func(r *http.Request) { r.AddCookie(&http.Cookie{Name: tether.SecureCookieName, Value: token}) }
	header := func(k, v string) func(*http.Request) { return func(r *http.Request) { r.Header.Set(k, v) } }

	tests := []struct {
		name       string
		method     string
		setup      []func(*http.Request)
		wantStatus int
		wantError  string
	}{
		{"no token", "GET", nil, 401, "unauthenticated"},
		{"garbage bearer", "GET", []func(*http.Request){bearer("garbage")}, 401, "unauthenticated"},
		{"unknown token", "GET", []func(*http.Request){bearer(tokenFor("0000000000000000", make([]byte, 20)))}, 401, "unauthenticated"},
		{"garbage cookie", "GET", []func(*http.Request){func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: tether.SecureCookieName, Value: "garbage"})
		}}, 401, "unauthenticated"},
		{"bearer", "GET", []func(*http.Request){bearer(token)}, 204, ""},
		{"cookie GET", "GET", []func(*http.Request){cookie}, 204, ""},
		{"bearer POST without browser headers", "POST", []func(*http.Request){bearer(token)}, 204, ""},
		{"cookie POST cross-site", "POST", []func(*http.Request){cookie, header("Sec-Fetch-Site", "cross-site")}, 403, "cross_origin"},
		{"cookie POST same-site", "POST", []func(*http.Request){cookie, header("Sec-Fetch-Site", "same-site")}, 403, "cross_origin"},
		{"cookie POST without Sec-Fetch-Site or Origin", "POST", []func(*http.Request){cookie}, 403, "cross_origin"},
		{"cookie DELETE without Sec-Fetch-Site or Origin", "DELETE", []func(*http.Request){cookie}, 403, "cross_origin"},
		{"cookie POST same-origin", "POST", []func(*http.Request){cookie, header("Sec-Fetch-Site", "same-origin")}, 204, ""},
		{"cookie POST Origin matches Host", "POST", []func(*http.Request){cookie, header("Origin", "http://example.com")}, 204, ""},
		{"cookie POST foreign Origin", "POST", []func(*http.Request){cookie, header("Origin", "https://evil.example")}, 403, "cross_origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://example.com/v1/session", nil)
			for _, f := range tt.setup {
				f(r)
			}
			w, seen := serve(e.m, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantStatus == 204 {
				if seen == nil || seen.ID != sess.ID {
					t.Errorf("handler saw session %+v, want %s", seen, sess.ID)
				}
				return
			}
			if seen != nil {
				t.Errorf("the handler ran for a refused request")
			}
			var body struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != tt.wantError {
				t.Errorf("body = %q (%v), want {\"error\":%q}", w.Body, err, tt.wantError)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			wwwAuth := w.Header().Get("WWW-Authenticate")
			if tt.wantStatus == 401 && !strings.HasPrefix(wwwAuth, "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want Bearer…", wwwAuth)
			}
		})
	}

	t.Run("store down", func(t *testing.T) {
		e := newEnv(t, tether.Config{MaxStaleness: -1}, false)
		token, _ := e.create(t, "alice")
		e.mem.Close() // every call now fails with ErrUnavailable
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		w, seen := serve(e.m, r)
		if w.Code != http.StatusServiceUnavailable || seen != nil {
			t.Errorf("status = %d (handler ran: %v), want 503 and no handler", w.Code, seen != nil)
		}
		if strings.Contains(w.Body.String(), token) {
			t.Errorf("the error body %q contains the token", w.Body)
		}
	})
}

func TestSetCookie(t *testing.T) {
	expires := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		host       string
		tls        bool
		wantName   string
		wantSecure bool
	}{
		{"loopback IPv4", "127.0.0.1:8080", false, tether.CookieName, false},
		{"localhost", "localhost:8080", false, tether.CookieName, false},
		{"localhost without port", "localhost", false, tether.CookieName, false},
		{"loopback IPv6", "[::1]:8080", false, tether.CookieName, false},
		{"loopback over TLS", "127.0.0.1:8443", true, tether.SecureCookieName, true},
		{"public host over TLS", "example.com", true, tether.SecureCookieName, true},
		{"public host behind a proxy", "example.com", false, tether.SecureCookieName, true},
		{"LAN address", "192.168.1.10:8080", false, tether.SecureCookieName, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Host = tt.host
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			check := func(t *testing.T, c *http.Cookie) {
				t.Helper()
				if c.Name != tt.wantName || c.Secure != tt.wantSecure {
					t.Errorf("cookie %s, Secure=%v; want %s, Secure=%v", c.Name, c.Secure, tt.wantName, tt.wantSecure)
				}
				if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
					t.Errorf("cookie HttpOnly=%v SameSite=%v Path=%q Domain=%q; want HttpOnly, Lax, /, no Domain",
						c.HttpOnly, c.SameSite, c.Path, c.Domain)
				}
			}

			w := httptest.NewRecorder()
			tether.SetCookie(w, r, "tok", expires)
			cs := w.Result().Cookies()
			if len(cs) != 1 {
				t.Fatalf("SetCookie wrote %d cookies, want 1", len(cs))
			}
			check(t, cs[0])
			if cs[0].Value != "tok" || !cs[0].Expires.Equal(expires) {
				t.Errorf("cookie value %q expires %v, want tok, %v", cs[0].Value, cs[0].Expires, expires)
			}

			w = httptest.NewRecorder()
			tether.ClearCookie(w, r)
			cs = w.Result().Cookies()
			if len(cs) != 1 {
				t.Fatalf("ClearCookie wrote %d cookies, want 1", len(cs))
			}
			check(t, cs[0])
			if cs[0].Value != "" || cs[0].MaxAge >= 0 {
				t.Errorf("ClearCookie: value %q MaxAge %d, want empty and negative", cs[0].Value, cs[0].MaxAge)
			}
		})
	}
}

// FuzzTokenFromRequest: whatever the headers hold, TokenFromRequest never
// panics, takes a token from the cookie only when there is no Authorization
// header at all, and only from an Authorization header with the Bearer scheme.
func FuzzTokenFromRequest(f *testing.F) {
	f.Add("Bearer tts_abc", "")
	f.Add("bearer  x ", "tether_session=y")
	f.Add("", "tether_session=y; __Host-tether=z")
	f.Add("Basic abc", "tether_session=y")
	f.Add("", "__Host-tether=\"quoted\"; tether_session=")
	f.Add("Bearer", ";;=;")
	f.Fuzz(func(t *testing.T, auth, cookie string) {
		r := httptest.NewRequest("GET", "/", nil)
		if auth != "" {
			r.Header["Authorization"] = []string{auth}
		}
		if cookie != "" {
			r.Header["Cookie"] = []string{cookie}
		}
		tok, fromCookie := tether.TokenFromRequest(r)
		switch {
		case fromCookie && auth != "":
			t.Fatalf("token %q taken from the cookie although Authorization is %q", tok, auth)
		case fromCookie && tok == "":
			t.Fatalf("fromCookie with an empty token")
		case !fromCookie && tok != "":
			scheme, _, _ := strings.Cut(auth, " ")
			if !strings.EqualFold(scheme, "Bearer") {
				t.Fatalf("token %q taken from Authorization %q, which is not Bearer", tok, auth)
			}
			if tok != strings.TrimSpace(tok) {
				t.Fatalf("token %q keeps surrounding space", tok)
			}
		}
	})
}
