package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/adminauth"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/web"
	"github.com/tetherhq/tether/store/memstore"
)

// TestConsoleSessionsInNodeStore: a console sign-in is a session in the
// node's store, so it holds on another node sharing the store (behind a load
// balancer) and on the same node after a restart; signing out on one node
// ends it on all.
func TestConsoleSessionsInNodeStore(t *testing.T) {
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	node1, node2 := newEnvOn(t, st), newEnvOn(t, st)
	cookie, csrf := node1.consoleSignIn(t)

	for name, e := range map[string]*env{"another node": node2, "a restarted node": newEnvOn(t, st)} {
		if w := call(e.adm, "GET", "/admin/", nil, cookie...); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `action="/admin/sign-out"`) {
			t.Errorf("%s: console with node 1's cookie: got %d, want the console", name, w.Code)
		}
	}
	w := call(node2.adm, "POST", "/admin/sign-out", url.Values{"csrf": {csrf}}, with(sameOrigin, cookie)...)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign-out on node 2: got %d", w.Code)
	}
	if w := call(node1.adm, "GET", "/admin/", nil, cookie...); strings.Contains(w.Body.String(), `action="/admin/sign-out"`) {
		t.Error("node 1 still shows the console after signing out on node 2")
	}
}

// TestConsoleEndsWithItsKey: console sessions outlive a restart, but not a
// new admin key: replacing a leaked key signs every console out.
func TestConsoleEndsWithItsKey(t *testing.T) {
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	cookie, _ := newEnvOn(t, st).consoleSignIn(t)
	m, err := tether.NewManager(tether.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rekeyed, err := adminauth.New("a-new-admin-key-after-a-leak-0123")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Manager: m, Admin: rekeyed})
	if err != nil {
		t.Fatal(err)
	}
	w := call(srv.Admin(), "GET", "/admin/", nil, cookie...)
	if strings.Contains(w.Body.String(), `action="/admin/sign-out"`) || !strings.Contains(w.Body.String(), `action="/admin/sign-in"`) {
		t.Errorf("a console session of the old key after the key changed: got %d, want the sign-in form", w.Code)
	}
}

// TestConsoleTokenIsNoSession: the console's session, though in the node's
// store, is worth nothing anywhere but the console, and nobody sees it.
func TestConsoleTokenIsNoSession(t *testing.T) {
	e := newEnv(t)
	cookie, _ := e.consoleSignIn(t)
	_, token, _ := strings.Cut(cookie[1], "=")
	if w := call(e.pub, "GET", "/v1/session", nil, "Authorization", "Bearer "+token); w.Code != http.StatusUnauthorized {
		t.Errorf("console token on the public API: got %d, want 401", w.Code)
	}
	if w := call(e.pub, "GET", "/account/sessions", nil, userCookie(token)...); w.Code != http.StatusUnauthorized {
		t.Errorf("console token as the account cookie: got %d, want 401", w.Code)
	}
	w := call(e.adm, "POST", "/v1/introspect", url.Values{"token": {token}}, "Authorization", "Bearer "+testAdminKey)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"active":false`) {
		t.Errorf("introspection of the console token: got %d %s, want inactive", w.Code, w.Body)
	}
	if w := call(e.adm, "GET", "/v1/subjects/"+url.PathEscape(web.ConsoleSubject)+"/sessions", nil, "Authorization", "Bearer "+testAdminKey); w.Code != http.StatusBadRequest {
		t.Errorf("listing the console's sessions: got %d, want 400", w.Code)
	}
	if w := call(e.adm, "GET", "/admin/?subject="+url.QueryEscape(web.ConsoleSubject), nil, cookie...); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "reserved") {
		t.Errorf("the console searching for its own subject: got %d, want 400 saying it is reserved", w.Code)
	}
}

// TestFavicon: browsers fetch an icon for every page; none of them is a 404,
// and on the admin listener fetching it needs no key.
func TestFavicon(t *testing.T) {
	e := newEnv(t)
	for name, h := range map[string]http.Handler{"public": e.pub, "admin": e.adm} {
		w := call(h, "GET", "/favicon.ico", nil)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "image/svg+xml" {
			t.Errorf("%s /favicon.ico: got %d %q, want 200 image/svg+xml", name, w.Code, w.Header().Get("Content-Type"))
		}
	}
	icon := regexp.MustCompile(`<link rel="icon" href="([^"]+)"`)
	for _, page := range []struct {
		h    http.Handler
		path string
	}{{e.pub, "/account/sessions"}, {e.pub, "/account/signed-out"}, {e.adm, "/admin/"}} {
		m := icon.FindStringSubmatch(call(page.h, "GET", page.path, nil).Body.String())
		if m == nil {
			t.Errorf("%s has no icon link", page.path)
			continue
		}
		if w := call(page.h, "GET", m[1], nil); w.Code != http.StatusOK {
			t.Errorf("%s: its icon %s is %d", page.path, m[1], w.Code)
		}
	}
}

// TestPagesLinkOnward: "not signed in" and "signed out" are not dead ends.
func TestPagesLinkOnward(t *testing.T) {
	e := newEnv(t)
	_, csrf := e.consoleSignIn(t)
	tests := []struct {
		name     string
		h        http.Handler
		method   string
		path     string
		form     url.Values
		wantLink string
	}{
		{"account: not signed in", e.pub, "GET", "/account/sessions", nil, `href="/account/sessions"`},
		{"account: signed out", e.pub, "GET", "/account/signed-out", nil, `href="/account/sessions"`},
		{"console: signed out", e.adm, "POST", "/admin/sign-out", url.Values{"csrf": {csrf}}, `href="/admin/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.form != nil {
				hdr = sameOrigin
			}
			body := call(tt.h, tt.method, tt.path, tt.form, hdr...).Body.String()
			main := body[strings.Index(body, "<main"):]
			if !strings.Contains(main, tt.wantLink) {
				t.Errorf("no onward link %s in\n%s", tt.wantLink, main)
			}
		})
	}
}

// TestPagesSignInURL: with a sign-in page configured, the account pages link
// to it.
func TestPagesSignInURL(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	m, err := tether.NewManager(tether.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := web.New(web.Config{Manager: m, Admin: newAdmin(t), SignInURL: "https://app.example/login"})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/account/sessions", "/account/signed-out"} {
		if body := call(p.Account(), "GET", path, nil).Body.String(); !strings.Contains(body, `href="https://app.example/login"`) {
			t.Errorf("%s does not link to the sign-in page:\n%s", path, body)
		}
	}
}

// deadlineStore answers every List with context.DeadlineExceeded, as a store
// does that cannot answer in time.
type deadlineStore struct{ tether.Store }

func (deadlineStore) List(context.Context, string) ([]*tether.Record, error) {
	return nil, context.DeadlineExceeded
}

// TestPageDeadlineIsUnavailable: the pages classify errors as the API does: a
// store that cannot answer in time is a 503 page, not a 500.
func TestPageDeadlineIsUnavailable(t *testing.T) {
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	e := newEnvOn(t, deadlineStore{st})
	token, _ := e.login(t, "alice", uaChromeLinux, "192.0.2.7")
	w := call(e.pub, "GET", "/account/sessions", nil, userCookie(token)...)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "cannot be reached") {
		t.Errorf("got %d, want 503 saying the store cannot be reached:\n%s", w.Code, w.Body)
	}
}

// TestCellsLabelled: every data cell of the sessions tables carries the
// label that narrow screens show in place of the hidden header row.
func TestCellsLabelled(t *testing.T) {
	e := newEnv(t)
	token, _ := e.login(t, "alice", uaChromeLinux, "192.0.2.7")
	e.login(t, "alice", uaFirefoxWin, "192.0.2.8")
	cookie, _ := e.consoleSignIn(t)
	cells := regexp.MustCompile(`<(td|th scope="row")([^>]*)>`)
	for name, body := range map[string]string{
		"account": call(e.pub, "GET", "/account/sessions", nil, userCookie(token)...).Body.String(),
		"console": call(e.adm, "GET", "/admin/?subject=alice", nil, cookie...).Body.String(),
	} {
		table := body[strings.Index(body, `<table class="sessions"`):]
		table = table[:strings.Index(table, "</table>")]
		n := 0
		for _, m := range cells.FindAllStringSubmatch(table, -1) {
			if strings.Contains(table, "<form") && m[2] == "" {
				continue // the action cell: its button says what it does
			}
			n++
			if !strings.Contains(m[2], `data-label="`) {
				t.Errorf("%s: a cell without a label: %s", name, m[0])
			}
		}
		if n < 8 {
			t.Errorf("%s: %d labelled cells, want at least 4 per row", name, n)
		}
	}
}

// TestConsoleCounterNamed: the console's cache counter says what it counts,
// so it is not read as the number of live sessions.
func TestConsoleCounterNamed(t *testing.T) {
	e := newEnv(t)
	cookie, _ := e.consoleSignIn(t)
	body := call(e.adm, "GET", "/admin/", nil, cookie...).Body.String()
	if strings.Contains(body, "Active sessions") || !strings.Contains(body, "Validation cache entries") || !strings.Contains(body, "not a count of live sessions") {
		t.Errorf("the counter is not named for what it is:\n%s", body)
	}
}
