package forwardauth_test

import (
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/forwardauth"
)

// FuzzAuthorizer sends arbitrary original requests for a session that may
// not see /admin (nor /billing, for lack of the role) and checks the promise
// of issue 11: whatever the URI, method or host, a request that a Go app
// (net/url, then path.Clean) would route under /admin or /billing is never
// answered 200.
func FuzzAuthorizer(f *testing.F) {
	for _, seed := range []string{
		"/admin", "/public/../admin", "/public/%2e%2e/admin", "/public/..%2Fadmin", "/public/..;/admin",
		`/public\..\admin`, "//admin", "/admin;x", "/./admin", "/public/%252e%252e/admin", "/public/%00",
		"/ADMIN", "/admin%2f", "/public?/admin", "/public#/admin", "/%2fadmin", "/public/.%2e/admin",
		"/billing/../public", "/public/%2e/../admin",
	} {
		f.Add("GET", "app.example.test", seed)
	}
	f.Add("BREW", "app.example.test", "/admin")
	f.Add("GET", "APP.EXAMPLE.TEST:443", "/admin")
	fx := newFixture(f, forwardauth.Config{Rules: testRules}, tether.Cookies{})
	f.Fuzz(func(t *testing.T, method, host, uri string) {
		w := fx.ask("/v1/authz", join(traefik(method, "https", host, uri), bearer("user"))...)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		default:
			t.Fatalf("%s %s %q: status %d, want 200, 400, 401 or 403", method, host, uri, w.Code)
		}
		if w.Code != http.StatusOK {
			return
		}
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !strings.EqualFold(host, "app.example.test") {
			return // the admin rule is for that host only
		}
		u, err := url.ParseRequestURI(uri)
		if err != nil {
			return
		}
		for _, guarded := range []string{"/admin", "/billing"} {
			p := path.Clean(u.Path)
			if p == guarded || strings.HasPrefix(p, guarded+"/") {
				t.Fatalf("%s %q: an app reads %q, under %s, and the answer was 200", method, uri, p, guarded)
			}
		}
	})
}
