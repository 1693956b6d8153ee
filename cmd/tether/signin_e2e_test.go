package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether/internal/servicetest"
)

// signInStack is the real binary with forward auth and OIDC sign-in, real
// Caddy running docs/proxies.md's same-host block in front of an echo app,
// and a real OpenID provider whose user alice is in the group staff.
type signInStack struct {
	site  string // the app's origin, through Caddy: http://localhost:port
	idp   *servicetest.OIDCProvider
	n     *node
	proxy *servicetest.ProxyServer
}

func startSignInStack(t *testing.T) *signInStack {
	t.Helper()
	needBinary(t)
	port := servicetest.FreePort(t)
	site := fmt.Sprintf("http://localhost:%d", port) // a plain-HTTP loopback name: the development cookie
	const secret = "e2e-client-secret-0123456789abcdef"
	idp := servicetest.StartOIDCProvider(t, []servicetest.OIDCClient{{
		ID: "tether", Secret: secret, RedirectURIs: []string{site + "/v1/login/callback"},
	}}, map[string]map[string]any{"alice": {"groups": []string{"staff"}}})

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "oidc.secret"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tether.yaml")
	err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
forward_auth:
  login_url: "%[1]s/v1/login"
  rules:
    - { path_prefix: "/admin", require_roles: [admin] }
oidc:
  issuer: "%[2]s"
  client_id: "tether"
  client_secret_file: "oidc.secret"
  redirect_url: "%[1]s/v1/login/callback"
  scopes: [openid, email, groups]
  roles_claim: "groups"
  subject_prefix: "idp:"
`, site, idp.Issuer)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, nodeSpec{args: []string{"--store", "memory:", "--config", cfg}})
	app := startEchoApp(t)
	block := strings.NewReplacer(docTether, strings.TrimPrefix(n.pub, "http://"), docApp, strings.TrimPrefix(app.URL, "http://"),
		"app.example.test {", site+" {\n\tbind 127.0.0.1").Replace(docBlocks(t, "caddy")[1])
	proxy := servicetest.StartCaddy(t, port, block)
	return &signInStack{site: site, idp: idp, n: n, proxy: proxy}
}

// TestE2ESignInThroughCaddy: the whole browser journey, with the real
// binary, real Caddy (docs/proxies.md's same-host block) and a real OpenID
// provider. Visit the app → the login page → the provider → back at the app
// with the identity headers → sign out everywhere → the app's next request
// is refused (sent to sign in again).
// The client here is Go's; TestE2EBrowserSignIn drives Chromium.
func TestE2ESignInThroughCaddy(t *testing.T) {
	st := startSignInStack(t)
	site, idp, proxy := st.site, st.idp, st.proxy
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	visit := func(path string) (*http.Response, echoed) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, site+path, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e echoed
		if resp.StatusCode == http.StatusOK {
			json.Unmarshal(b, &e)
		}
		return resp, e
	}

	// Not signed in: Caddy passes on Tether's redirect to the login page.
	resp, _ := visit("/hello?x=1")
	login := resp.Header.Get("Location")
	wantLogin := site + "/v1/login?rd=" + url.QueryEscape(site+"/hello?x=1")
	if resp.StatusCode != http.StatusFound || login != wantLogin {
		t.Fatalf("first visit: got %d to %q, want 302 to %q\n%s", resp.StatusCode, login, wantLogin, proxy.Output())
	}
	// The login page sends the browser to the provider; signing in there
	// comes back to Tether's callback, which sets the cookie and returns the
	// browser where it started.
	callback := idp.SignIn(t, c, login, "alice")
	resp, _ = visit(strings.TrimPrefix(callback.String(), site))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != site+"/hello?x=1" {
		t.Fatalf("callback: got %d to %q, want 302 back to the app", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, e := visit("/hello?x=1")
	if resp.StatusCode != http.StatusOK || e.Subject != "idp:alice" || e.Roles != "staff" || e.AuthTime == "" || e.SessionID == "" {
		t.Fatalf("signed in: got %d %+v, want the app to see idp:alice with roles staff", resp.StatusCode, e)
	}
	u, _ := url.Parse(site)
	var stolen string
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "tether_session" {
			stolen = ck.Value
		}
	}
	if resp, _ := visit("/admin"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("/admin without the role: got %d, want 403", resp.StatusCode)
	}

	// Sign out everywhere, from the browser (same-origin, with the cookie).
	req, _ := http.NewRequest(http.MethodDelete, site+"/v1/sessions", nil)
	req.Header.Set("Origin", site)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	out, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	if out.StatusCode != http.StatusOK {
		t.Fatalf("sign out everywhere: got %d, want 200", out.StatusCode)
	}
	// The app's next request is refused, even if the browser kept the
	// cookie (a stolen copy of it).
	jar.SetCookies(u, []*http.Cookie{{Name: "tether_session", Value: stolen, Path: "/"}})
	if resp, _ := visit("/hello"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), site+"/v1/login?") {
		t.Errorf("after sign-out everywhere: got %d to %q, want the login redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
}
