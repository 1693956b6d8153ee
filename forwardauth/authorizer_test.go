package forwardauth_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/forwardauth"
	"github.com/tetherhq/tether/store/memstore"
)

// The rules of DESIGN §9's example, plus a method rule.
var testRules = []forwardauth.Rule{
	{Host: "app.example.test", PathPrefix: "/admin", RequireRoles: []string{"admin"}},
	{PathPrefix: "/public", AllowAnonymous: true},
	{PathPrefix: "/billing", RequireRoles: []string{"billing"}, MaxAuthAge: 10 * time.Minute},
	{Host: "*.example.test", PathPrefix: "/reports", Methods: []string{"POST"}, RequireRoles: []string{"writer"}},
}

type fixture struct {
	st     *memstore.Store
	m      *tether.Manager
	a      *forwardauth.Authorizer
	now    time.Time
	tokens map[string]string // name -> token
}

func newFixture(t testing.TB, cfg forwardauth.Config, cookies tether.Cookies) *fixture {
	t.Helper()
	f := &fixture{st: memstore.New(), now: time.Now(), tokens: map[string]string{}}
	var err error
	// No cache: a closed store must show at once, and the revocation cases
	// read the store.
	f.m, err = tether.NewManager(tether.Config{Store: f.st, MaxStaleness: -1, Cookies: cookies})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.m.Close() })
	p, err := forwardauth.NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.a, err = forwardauth.New(forwardauth.Options{
		Validator: f.m, Cookies: cookies, Now: func() time.Time { return f.now },
		Logger: slog.New(slog.DiscardHandler),
	}, p)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]tether.CreateParams{
		"user":      {Subject: "alice", Roles: []string{"user"}, AuthTime: f.now.Add(-time.Hour)},
		"admin":     {Subject: "root", Roles: []string{"admin", "ops"}, AuthTime: f.now.Add(-time.Hour)},
		"billing":   {Subject: "bill", Roles: []string{"billing"}, AuthTime: f.now.Add(-time.Minute)},
		"stale":     {Subject: "stale", Roles: []string{"billing"}, AuthTime: f.now.Add(-time.Hour)},
		"noauthtim": {Subject: "nat", Roles: []string{"billing"}},
		"writer":    {Subject: "wri", Roles: []string{"writer"}},
	} {
		tok, _, err := f.m.Create(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		f.tokens[name] = tok
	}
	return f
}

// ask sends a sub-request to the Authorizer; header is name, value pairs, with
// "RemoteAddr", "Host" and "Method" setting those fields, and "token:NAME"
// in a value replaced by the named token.
func (f *fixture) ask(target string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Host = "tether.internal"
	for i := 0; i+1 < len(header); i += 2 {
		v := header[i+1]
		for name, tok := range f.tokens {
			v = strings.ReplaceAll(v, "token:"+name, tok)
		}
		switch header[i] {
		case "RemoteAddr":
			r.RemoteAddr = v
		case "Host":
			r.Host = v
		case "Method":
			r.Method = v
		default:
			r.Header.Add(header[i], v)
		}
	}
	w := httptest.NewRecorder()
	f.a.ServeHTTP(w, r)
	return w
}

func traefik(method, proto, host, uri string) []string {
	return []string{"X-Forwarded-Method", method, "X-Forwarded-Proto", proto, "X-Forwarded-Host", host, "X-Forwarded-Uri", uri}
}

func bearer(name string) []string { return []string{"Authorization", "Bearer token:" + name} }

func join(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

type want struct {
	status   int
	subject  string // Tether-Subject on a 200; "" for an anonymous pass
	errCode  string // the JSON error on 4xx and 5xx
	location string // on a 302
	wwwAuth  string // a substring of WWW-Authenticate
}

func check(t *testing.T, w *httptest.ResponseRecorder, wt want) {
	t.Helper()
	if w.Code != wt.status {
		t.Fatalf("status: got %d %s, want %d", w.Code, w.Body, wt.status)
	}
	if got := w.Header().Get(forwardauth.HeaderSubject); got != wt.subject {
		t.Errorf("Tether-Subject: got %q, want %q", got, wt.subject)
	}
	switch {
	case wt.status == http.StatusOK || wt.status == http.StatusFound:
		if w.Body.Len() != 0 {
			t.Errorf("body: got %q, want none", w.Body)
		}
	default:
		var body struct{ Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != wt.errCode {
			t.Errorf("body: got %s, want error %q", w.Body, wt.errCode)
		}
	}
	if got := w.Header().Get("Location"); got != wt.location {
		t.Errorf("Location: got %q, want %q", got, wt.location)
	}
	if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, wt.wwwAuth) || (wt.wwwAuth == "") != (got == "") {
		t.Errorf("WWW-Authenticate: got %q, want it to contain %q", got, wt.wwwAuth)
	}
}

func TestAuthorizer(t *testing.T) {
	f := newFixture(t, forwardauth.Config{Rules: testRules, LoginURL: "https://auth.example.test/v1/login?x=1"}, tether.Cookies{})
	browser := []string{"Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}
	ok := func(subject string) want { return want{status: 200, subject: subject} }
	unauth := want{status: 401, errCode: "unauthenticated", wwwAuth: "Bearer"}
	forbidden := want{status: 403, errCode: "forbidden"}
	bad := want{status: 400, errCode: "bad_request"}
	login := func(rd string, extra ...string) want {
		q := url.Values{"x": {"1"}, "rd": {rd}}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Set(extra[i], extra[i+1])
		}
		return want{status: 302, location: "https://auth.example.test/v1/login?" + q.Encode()}
	}
	cases := []struct {
		name   string
		target string
		header []string
		want   want
	}{
		{"traefik allowed", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/x?q=1"), bearer("user")), ok("alice")},
		{"no token", "/v1/authz", traefik("GET", "https", "app.example.test", "/x"), unauth},
		{"no token, browser: login", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/x?q=1&r=%2F"), browser), login("https://app.example.test/x?q=1&r=%2F")},
		{"no token, browser HEAD: login", "/v1/authz", join(traefik("HEAD", "https", "app.example.test", "/x"), browser), login("https://app.example.test/x")},
		{"no token, browser POST: 401", "/v1/authz", join(traefik("POST", "https", "app.example.test", "/x"), browser), unauth},
		{"no token, API client: 401", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/x"), []string{"Accept", "application/json"}), unauth},
		{"garbage token", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/x"), []string{"Authorization", "Bearer tts_nope"}), unauth},
		{"other auth scheme", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/x"), []string{"Authorization", "Basic token:user"}), unauth},
		{"role missing", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/admin/users"), bearer("user")), forbidden},
		{"role missing, browser: still 403", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/admin"), bearer("user"), browser), forbidden},
		{"role held", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/admin/users"), bearer("admin")), ok("root")},
		{"rule for another host", "/v1/authz", join(traefik("GET", "https", "other.example.test", "/admin"), bearer("user")), ok("alice")},
		{"host with port and case", "/v1/authz", join(traefik("GET", "https", "APP.example.test:8443", "/admin"), bearer("user")), forbidden},
		{"segment prefix only", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/administrator"), bearer("user")), ok("alice")},
		{"anonymous", "/v1/authz", traefik("GET", "https", "app.example.test", "/public/a.css"), ok("")},
		{"anonymous with a session: identity", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/public"), bearer("user")), ok("alice")},
		{"anonymous with a dead token", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/public"), []string{"Authorization", "Bearer tts_nope"}), ok("")},
		{"fresh sign-in", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/billing"), bearer("billing")), ok("bill")},
		{"stale sign-in: step-up", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/billing"), bearer("stale")),
			want{status: 401, errCode: "insufficient_user_authentication", wwwAuth: `error="insufficient_user_authentication"`}},
		{"stale sign-in: max_age", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/billing"), bearer("stale")),
			want{status: 401, errCode: "insufficient_user_authentication", wwwAuth: "max_age=600"}},
		{"unknown sign-in time: step-up", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/billing"), bearer("noauthtim")),
			want{status: 401, errCode: "insufficient_user_authentication", wwwAuth: "max_age=600"}},
		{"stale sign-in, browser: login with max_age", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/billing"), bearer("stale"), browser),
			login("https://app.example.test/billing", "max_age", "600")},
		{"roles before age", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/billing"), bearer("user")), forbidden},
		{"method rule matches", "/v1/authz", join(traefik("POST", "https", "x.example.test", "/reports"), bearer("user")), forbidden},
		{"method rule: other method", "/v1/authz", join(traefik("GET", "https", "x.example.test", "/reports"), bearer("user")), ok("alice")},
		{"method rule: held", "/v1/authz", join(traefik("POST", "https", "x.example.test", "/reports"), bearer("writer")), ok("wri")},
		{"wildcard is not the apex", "/v1/authz", join(traefik("POST", "https", "example.test", "/reports"), bearer("user")), ok("alice")},

		// nginx: X-Original-*, and the Host header the config passes.
		{"nginx denied", "/v1/authz", join([]string{"X-Original-Method", "GET", "X-Original-URI", "/admin", "X-Forwarded-Host", "app.example.test"}, bearer("user")), forbidden},
		{"nginx allowed", "/v1/authz", join([]string{"X-Original-Method", "GET", "X-Original-URI", "/admin", "X-Forwarded-Host", "app.example.test"}, bearer("admin")), ok("root")},
		{"nginx Host header", "/v1/authz", join([]string{"Host", "app.example.test", "X-Original-URI", "/admin"}, bearer("user")), forbidden},
		// A client's own X-Forwarded-Uri passed on beside nginx's X-Original-URI
		// (a config without the blanking lines) must not pick a friendlier rule.
		{"nginx with a client's X-Forwarded-Uri", "/v1/authz", join([]string{"X-Original-Method", "GET", "X-Original-URI", "/admin",
			"X-Forwarded-Uri", "/public/x", "X-Forwarded-Host", "app.example.test"}, bearer("user")), bad},
		// Envoy: the original path after the prefix.
		{"envoy denied", "/v1/authz/admin/x?y=1", join([]string{"Host", "app.example.test"}, bearer("user")), forbidden},
		{"envoy anonymous", "/v1/authz/public/x", []string{"Host", "app.example.test"}, ok("")},
		{"envoy root", "/v1/authz/", join([]string{"Host", "app.example.test"}, bearer("user")), ok("alice")},

		// The original path is read as the app will read it.
		{"encoded slash", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/admin%2Fusers"), bearer("user")), bad},
		{"dot-dot out of public", "/v1/authz", traefik("GET", "https", "app.example.test", "/public/../admin"), unauth},
		{"encoded dot-dot", "/v1/authz", traefik("GET", "https", "app.example.test", "/public/%2e%2e/admin"), bad},
		{"encoded dot-dot and slash", "/v1/authz", traefik("GET", "https", "app.example.test", "/public/..%2Fadmin"), bad},
		{"dot-dot with parameter", "/v1/authz", traefik("GET", "https", "app.example.test", "/public/..;/admin"), bad},
		{"backslashes", "/v1/authz", traefik("GET", "https", "app.example.test", `/public\..\admin`), bad},
		{"double slash", "/v1/authz", join(traefik("GET", "https", "app.example.test", "//admin"), bearer("user")), forbidden},
		{"path parameter", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/admin;jsessionid=1"), bearer("user")), forbidden},
		{"dot segment", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/./admin"), bearer("user")), forbidden},
		{"envoy dot-dot", "/v1/authz/public/%2e%2e/admin", []string{"Host", "app.example.test"}, bad},
		{"query holds a path", "/v1/authz", traefik("GET", "https", "app.example.test", "/x?next=/public"), unauth},

		// Bad input: 400, never a pass.
		{"relative URI", "/v1/authz", join(traefik("GET", "https", "app.example.test", "admin"), bearer("admin")), bad},
		{"absolute URI", "/v1/authz", join(traefik("GET", "https", "app.example.test", "https://app.example.test/public"), bearer("admin")), bad},
		{"bad escape", "/v1/authz", join(traefik("GET", "https", "app.example.test", "/public/%zz"), bearer("admin")), bad},
		{"double encoding", "/v1/authz", traefik("GET", "https", "app.example.test", "/public/%252e%252e/admin"), bad},
		{"encoded NUL", "/v1/authz", traefik("GET", "https", "app.example.test", "/public/%00/../admin"), bad},
		{"encoded CRLF", "/v1/authz", traefik("GET", "https", "app.example.test", "/public/%0d%0aX:1"), bad},
		{"above the root", "/v1/authz", traefik("GET", "https", "app.example.test", "/public/../../admin"), bad},
		{"space", "/v1/authz", traefik("GET", "https", "app.example.test", "/public /admin"), bad},
		{"fragment", "/v1/authz", traefik("GET", "https", "app.example.test", "/public#/admin"), bad},
		{"non-ASCII", "/v1/authz", traefik("GET", "https", "app.example.test", "/public/é"), bad},
		{"huge URI", "/v1/authz", traefik("GET", "https", "app.example.test", "/public/"+strings.Repeat("a", forwardauth.MaxURILen)), bad},
		{"unknown method", "/v1/authz", join(traefik("BREW", "https", "app.example.test", "/x"), bearer("user")), bad},
		{"lower-case method", "/v1/authz", join(traefik("get", "https", "app.example.test", "/x"), bearer("user")), bad},
		{"bad scheme", "/v1/authz", join(traefik("GET", "ftp", "app.example.test", "/x"), bearer("user")), bad},
		{"bad host", "/v1/authz", join(traefik("GET", "https", "app.example.test/admin", "/x"), bearer("user")), bad},
		{"host with space", "/v1/authz", join(traefik("GET", "https", "app example", "/x"), bearer("user")), bad},
		{"host with bad port", "/v1/authz", join(traefik("GET", "https", "app.example.test:http", "/x"), bearer("user")), bad},
		{"IPv6 host", "/v1/authz", join(traefik("GET", "https", "[::1]:8443", "/x"), bearer("user")), ok("alice")},

		// Headers from a peer that is not a trusted proxy say nothing.
		{"spoofed URI from an untrusted peer", "/v1/authz", join([]string{"RemoteAddr", "192.0.2.7:5000"}, traefik("GET", "https", "app.example.test", "/public")), unauth},
		{"spoofed nginx URI from an untrusted peer", "/v1/authz", []string{"RemoteAddr", "192.0.2.7:5000", "X-Original-URI", "/public"}, unauth},
		{"spoofed host from an untrusted peer", "/v1/authz/admin", join([]string{"RemoteAddr", "192.0.2.7:5000", "Host", "app.example.test", "X-Forwarded-Host", "other.example.test"}, bearer("user")), forbidden},
		{"spoofed bad input from an untrusted peer: ignored", "/v1/authz", join([]string{"RemoteAddr", "[2001:db8::1]:5000"}, traefik("BREW", "ftp", "bad host", "nope"), bearer("user")), ok("alice")},
		{"trusted IPv6 loopback", "/v1/authz", join([]string{"RemoteAddr", "[::1]:5000"}, traefik("GET", "https", "app.example.test", "/admin"), bearer("user")), forbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check(t, f.ask(tc.target, tc.header...), tc.want)
		})
	}
}

func TestAuthorizerIdentityHeaders(t *testing.T) {
	f := newFixture(t, forwardauth.Config{}, tether.Cookies{})
	w := f.ask("/v1/authz", join(traefik("GET", "https", "app.example.test", "/"), bearer("admin"))...)
	sess, err := f.m.Validate(context.Background(), f.tokens["admin"])
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{
		"Tether-Subject":    "root",
		"Tether-Roles":      "admin,ops",
		"Tether-Session-Id": sess.ID,
		"Tether-Auth-Time":  sess.AuthTime.UTC().Format(time.RFC3339),
		"Cache-Control":     "no-store",
	} {
		if got := w.Header().Get(name); got != v {
			t.Errorf("%s: got %q, want %q", name, got, v)
		}
	}
	w = f.ask("/v1/authz", join(traefik("GET", "https", "app.example.test", "/"), bearer("writer"))...)
	if got, ok := w.Header()["Tether-Auth-Time"]; !ok || len(got) != 1 || got[0] != "" {
		t.Errorf("Tether-Auth-Time for a session without a sign-in time: got %q, want one empty value", got)
	}
}

// The next request after a revocation or a role change is refused: no cache
// stands between them.
func TestAuthorizerNextRequest(t *testing.T) {
	f := newFixture(t, forwardauth.Config{Rules: testRules}, tether.Cookies{})
	ctx := context.Background()
	admin := join(traefik("GET", "https", "app.example.test", "/admin"), bearer("admin"))
	check(t, f.ask("/v1/authz", admin...), want{status: 200, subject: "root"})
	if err := f.m.SetRoles(ctx, "root", []string{"ops"}); err != nil {
		t.Fatal(err)
	}
	check(t, f.ask("/v1/authz", admin...), want{status: 403, errCode: "forbidden"})
	if _, err := f.m.RevokeSubject(ctx, "root", ""); err != nil {
		t.Fatal(err)
	}
	check(t, f.ask("/v1/authz", admin...), want{status: 401, errCode: "unauthenticated", wwwAuth: "Bearer"})
}

func TestAuthorizerStoreDown(t *testing.T) {
	f := newFixture(t, forwardauth.Config{Rules: testRules}, tether.Cookies{})
	f.st.Close()
	for _, uri := range []string{"/x", "/public"} {
		w := f.ask("/v1/authz", join(traefik("GET", "https", "app.example.test", uri), bearer("admin"))...)
		check(t, w, want{status: 503, errCode: "unavailable"})
	}
}

func TestAuthorizerCookies(t *testing.T) {
	domain := newFixture(t, forwardauth.Config{}, tether.Cookies{Domain: "example.test"})
	hostOnly := newFixture(t, forwardauth.Config{}, tether.Cookies{})
	domainPublic := newFixture(t, forwardauth.Config{Rules: testRules}, tether.Cookies{Domain: "example.test"})
	cases := []struct {
		name   string
		f      *fixture
		header []string
		want   want
	}{
		{"loopback development cookie", hostOnly, join(traefik("GET", "http", "127.0.0.1:9000", "/"), []string{"Cookie", "tether_session=token:user"}), want{status: 200, subject: "alice"}},
		{"__Host- cookie over https", hostOnly, join(traefik("GET", "https", "app.example.test", "/"), []string{"Cookie", "__Host-tether=token:user"}), want{status: 200, subject: "alice"}},
		{"plain cookie over https: ignored", hostOnly, join(traefik("GET", "https", "app.example.test", "/"), []string{"Cookie", "tether_session=token:user"}), want{status: 401, errCode: "unauthenticated", wwwAuth: "Bearer"}},
		{"domain cookie without a domain: ignored", hostOnly, join(traefik("GET", "https", "app.example.test", "/"), []string{"Cookie", "__Secure-tether=token:user"}), want{status: 401, errCode: "unauthenticated", wwwAuth: "Bearer"}},
		{"domain cookie", domain, join(traefik("GET", "https", "app.example.test", "/"), []string{"Cookie", "__Secure-tether=token:user"}), want{status: 200, subject: "alice"}},
		{"domain cookie over plain-HTTP loopback: ignored", domain, join(traefik("GET", "http", "127.0.0.1:9000", "/"), []string{"Cookie", "__Secure-tether=token:user"}), want{status: 401, errCode: "unauthenticated", wwwAuth: "Bearer"}},
		{"same-origin cookie POST", domain, join(traefik("POST", "https", "app.example.test", "/"), []string{"Cookie", "__Secure-tether=token:user", "Sec-Fetch-Site", "same-origin"}), want{status: 200, subject: "alice"}},
		{"cross-site cookie POST", domain, join(traefik("POST", "https", "app.example.test", "/"), []string{"Cookie", "__Secure-tether=token:user", "Sec-Fetch-Site", "cross-site"}), want{status: 403, errCode: "cross_origin"}},
		{"cross-origin cookie POST", domain, join(traefik("POST", "https", "app.example.test", "/"), []string{"Cookie", "__Secure-tether=token:user", "Origin", "https://evil.example"}), want{status: 403, errCode: "cross_origin"}},
		{"cross-site cookie POST to an anonymous route: no identity", domainPublic, join(traefik("POST", "https", "app.example.test", "/public/form"), []string{"Cookie", "__Secure-tether=token:user", "Sec-Fetch-Site", "cross-site"}), want{status: 200}},
		{"cross-site bearer POST", domain, join(traefik("POST", "https", "app.example.test", "/"), bearer("user"), []string{"Sec-Fetch-Site", "cross-site"}), want{status: 200, subject: "alice"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check(t, tc.f.ask("/v1/authz", tc.header...), tc.want)
		})
	}
}

// SetPolicy swaps the rules between two requests; requests in flight finish
// under the policy they started with.
func TestAuthorizerSetPolicy(t *testing.T) {
	f := newFixture(t, forwardauth.Config{}, tether.Cookies{})
	h := join(traefik("GET", "https", "app.example.test", "/admin"), bearer("user"))
	check(t, f.ask("/v1/authz", h...), want{status: 200, subject: "alice"})
	p, err := forwardauth.NewPolicy(forwardauth.Config{Rules: testRules})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			if w := f.ask("/v1/authz", h...); w.Code != 200 && w.Code != 403 {
				t.Errorf("during the swap: got %d", w.Code)
			}
		}
	}()
	f.a.SetPolicy(p)
	<-done
	check(t, f.ask("/v1/authz", h...), want{status: 403, errCode: "forbidden"})
}

func TestNewPolicyRefuses(t *testing.T) {
	for name, cfg := range map[string]forwardauth.Config{
		"bad CIDR":             {TrustedProxies: []string{"localhost"}},
		"relative login URL":   {LoginURL: "/v1/login"},
		"javascript login URL": {LoginURL: "javascript:alert(1)"},
		"unclean prefix":       {Rules: []forwardauth.Rule{{PathPrefix: "/a/../admin"}}},
		"relative prefix":      {Rules: []forwardauth.Rule{{PathPrefix: "admin"}}},
		"unknown method":       {Rules: []forwardauth.Rule{{Methods: []string{"BREW"}}}},
		"anonymous with roles": {Rules: []forwardauth.Rule{{AllowAnonymous: true, RequireRoles: []string{"a"}}}},
		"negative age":         {Rules: []forwardauth.Rule{{MaxAuthAge: -time.Second}}},
		"sub-second age":       {Rules: []forwardauth.Rule{{MaxAuthAge: time.Millisecond}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := forwardauth.NewPolicy(cfg); err == nil {
				t.Errorf("NewPolicy(%+v): got nil error, want one", cfg)
			}
		})
	}
}
