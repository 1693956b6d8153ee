package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/adminauth"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/web"
	"github.com/tetherhq/tether/store/memstore"
)

const testAdminKey = "web-test-admin-key-0123456789abcdef"

// Browser-like user agents, and a hostile one.
const (
	uaChromeLinux  = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaFirefoxWin   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
	uaSafariIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
	uaHostile      = `"><script>alert(1)</script><img src=x onerror=alert(2)>`
)

// env is one node's two handlers, built the way `tether serve` builds them,
// on a fresh memstore and key ring.
type env struct {
	m    *tether.Manager
	keys *handshake.KeyRing
	pub  http.Handler
	adm  http.Handler
}

func newEnv(t testing.TB) *env {
	t.Helper()
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	return newEnvOn(t, st)
}

// newEnvOn is newEnv on a given store: several nodes can share one, as
// nodes behind a load balancer share a database, or a node can restart on it.
func newEnvOn(t testing.TB, st tether.Store) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := tether.NewManager(tether.Config{Store: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := handshake.LoadKeyRing(filepath.Join(t.TempDir(), "keys"), handshake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Manager: m, Admin: newAdmin(t), Logger: log, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &env{m: m, keys: keys, pub: srv.Public(), adm: srv.Admin()}
}

// login starts a session for subject as if from a browser with ua at ip.
func (e *env) login(t testing.TB, subject, ua, ip string) (string, *tether.Session) {
	t.Helper()
	token, sess, err := e.m.Create(context.Background(), tether.CreateParams{
		Subject: subject, Metadata: map[string]string{"user_agent": ua, "ip": ip},
	})
	if err != nil {
		t.Fatal(err)
	}
	return token, sess
}

func (e *env) count(t testing.TB, subject string) int {
	t.Helper()
	list, err := e.m.List(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// call is one request to h. The host is loopback (plain-HTTP cookie names)
// unless a "Host" pair says otherwise; hdr is a list of name, value pairs,
// where "Cookie" adds a cookie "name=value".
func call(h http.Handler, method, target string, form url.Values, hdr ...string) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "http://127.0.0.1:8080"+target, body)
	r.RemoteAddr = "192.0.2.7:4321"
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		switch hdr[i] {
		case "Host":
			r.Host = hdr[i+1]
		case "Remote":
			r.RemoteAddr = hdr[i+1]
		default:
			r.Header.Add(hdr[i], hdr[i+1])
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// sameOrigin is what a browser sends with a form posted from the page itself.
var sameOrigin = []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://127.0.0.1:8080"}

func userCookie(token string) []string { return []string{"Cookie", tether.CookieName + "=" + token} }

func with(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// hiddenField finds the value of the first hidden input named name.
func hiddenField(t testing.TB, body, name string) string {
	t.Helper()
	marker := `name="` + name + `" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no hidden field %q in the page", name)
	}
	rest := body[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

// consoleSignIn signs in to the console and returns its cookie header pair
// and the console's form token.
func (e *env) consoleSignIn(t testing.TB) (cookie []string, csrf string) {
	t.Helper()
	w := call(e.adm, "POST", "/admin/sign-in", url.Values{"key": {testAdminKey}}, sameOrigin...)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in: got %d, want 303:\n%s", w.Code, w.Body)
	}
	var c *http.Cookie
	for _, got := range w.Result().Cookies() {
		if got.Name == web.ConsoleCookieName {
			c = got
		}
	}
	if c == nil {
		t.Fatalf("sign-in set no %s cookie: %v", web.ConsoleCookieName, w.Header()["Set-Cookie"])
	}
	cookie = []string{"Cookie", c.Name + "=" + c.Value}
	page := call(e.adm, "GET", "/admin/", nil, cookie...)
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), "Sign out") {
		t.Fatalf("console after sign-in: got %d:\n%s", page.Code, page.Body)
	}
	return cookie, hiddenField(t, page.Body.String(), "csrf")
}

// demoEnd ends a token's session, as tether demo --web does through the
// public API's sign-out.
func demoEnd(e *env) func(context.Context, string) error {
	return func(ctx context.Context, token string) error {
		sess, err := e.m.Validate(ctx, token)
		if err != nil {
			return err
		}
		return e.m.Revoke(ctx, sess.ID)
	}
}

// newAdmin is an admin authenticator for testAdminKey, fresh per node.
func newAdmin(t testing.TB) *adminauth.Authenticator {
	t.Helper()
	a, err := adminauth.New(testAdminKey)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
