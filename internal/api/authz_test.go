package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tetherhq/tether/forwardauth"
)

// The public listener routes /v1/authz and everything under it, for any
// method, to forward auth, with the path as sent: the mux must not redirect
// a ".." path to its cleaned form.
func TestAuthzRoute(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, `{"subject":"alice","roles":["user"]}`).Token
	loop := []string{"RemoteAddr", "127.0.0.1:40000"}
	cases := []struct {
		name, method, target string
		header               []string
		status               int
		subject              string
	}{
		{"bearer", http.MethodGet, "/v1/authz", []string{"Authorization", "Bearer " + tok}, 200, "alice"},
		{"any method", http.MethodDelete, "/v1/authz", []string{"Authorization", "Bearer " + tok}, 200, "alice"},
		{"envoy path", http.MethodPost, "/v1/authz/app/x?y=1", []string{"Authorization", "Bearer " + tok}, 200, "alice"},
		{"envoy dot-dot: judged, not redirected", http.MethodGet, "/v1/authz/a/../b", []string{"Authorization", "Bearer " + tok}, 200, "alice"},
		{"envoy climbing above the root", http.MethodGet, "/v1/authz/../../x", []string{"Authorization", "Bearer " + tok}, 400, ""},
		{"no token", http.MethodGet, "/v1/authz", nil, 401, ""},
		{"traefik headers from loopback", http.MethodGet, "/v1/authz", append([]string{"X-Forwarded-Uri", "bad", "Authorization", "Bearer " + tok}, loop...), 400, ""},
		{"traefik headers from elsewhere: ignored", http.MethodGet, "/v1/authz", []string{"X-Forwarded-Uri", "bad", "Authorization", "Bearer " + tok}, 200, "alice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := serve(e.pub, req(tc.method, tc.target, nil, tc.header...))
			if w.Code != tc.status || w.Header().Get(forwardauth.HeaderSubject) != tc.subject {
				t.Fatalf("got %d subject %q (%s), want %d subject %q", w.Code, w.Header().Get(forwardauth.HeaderSubject), w.Body, tc.status, tc.subject)
			}
		})
	}
	w := e.admin(http.MethodGet, "/metrics", "")
	if !strings.Contains(w.Body.String(), `route="/v1/authz/{path...}"`) {
		t.Errorf("metrics lack the authz route:\n%s", w.Body)
	}
}

func TestAuthzStoreDown(t *testing.T) {
	e := newEnv(t)
	tok := e.create(t, `{"subject":"alice"}`).Token // never validated, so not cached
	e.store.Close()
	w := serve(e.pub, req(http.MethodGet, "/v1/authz", nil, "Authorization", "Bearer "+tok))
	wantError(t, w, http.StatusServiceUnavailable, "unavailable", "")
	if got := w.Header().Get(forwardauth.HeaderSubject); got != "" {
		t.Errorf("Tether-Subject with the store down: got %q, want none", got)
	}
}
