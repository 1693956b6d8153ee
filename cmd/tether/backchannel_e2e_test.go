package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetherhq/tether/internal/servicetest"
)

// TestE2EBackchannelLogout: sign in at Tether through the real oidc-provider
// (its backchannelLogout feature on), sign out at the provider, and the
// provider's logout token ends the Tether session made from that sign-in;
// another user's session stays, and a token that is not the provider's is
// refused with invalid_request.
func TestE2EBackchannelLogout(t *testing.T) {
	needBinary(t)
	base := "http://127.0.0.1:" + fmt.Sprint(servicetest.FreePort(t))
	const secret = "e2e-client-secret-0123456789abcdef"
	idp := servicetest.StartOIDCProvider(t, []servicetest.OIDCClient{{
		ID: "tether", Secret: secret, RedirectURIs: []string{base + "/v1/login/callback"},
		BackchannelLogoutURI: base + "/v1/oidc/backchannel-logout",
	}}, nil)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "oidc.secret"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, dir, "tether.yaml", fmt.Sprintf(`
oidc:
  issuer: %q
  client_id: "tether"
  client_secret_file: "oidc.secret"
  redirect_url: "%s/v1/login/callback"
  subject_prefix: "idp:"
`, idp.Issuer, base))
	n := startNode(t, nodeSpec{args: []string{"--addr", base[len("http://"):], "--store", "memory:", "--config", cfg}})

	// signIn plays a browser of its own through the provider and returns it
	// with its Tether session token.
	signIn := func(login string) (*http.Client, string) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		callback := idp.SignIn(t, c, base+"/v1/login", login)
		resp, err := c.Get(callback.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		u, _ := url.Parse(base)
		for _, ck := range jar.Cookies(u) {
			if ck.Name == "tether_session" {
				return c, ck.Value
			}
		}
		t.Fatalf("sign-in of %s: no session cookie (callback answered %d)", login, resp.StatusCode)
		return nil, ""
	}
	aliceBrowser, alice := signIn("alice")
	_, bob := signIn("bob")
	code, body := n.bearer(http.MethodGet, "/v1/session", alice)
	var sess struct {
		Subject string
		Origin  map[string]string
	}
	json.Unmarshal(body, &sess)
	if code != http.StatusOK || sess.Subject != "idp:alice" || sess.Origin["iss"] != idp.Issuer || sess.Origin["sub"] != "alice" || sess.Origin["sid"] == "" {
		t.Fatalf("alice's session: got %d %s, want idp:alice with the provider's iss, sub and sid as origin", code, body)
	}

	idp.SignOut(t, aliceBrowser) // at the provider, which posts a logout token to Tether
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tether log:\n%s", n.stderr)
		}
	})
	waitStatus(t, n, alice, http.StatusUnauthorized, time.Now().Add(15*time.Second), "alice's session after she signed out at the provider")
	mustStatus(t, n, bob, http.StatusOK, "bob's session")

	for _, form := range []string{"", "logout_token=not-a-token", "logout_token=eyJhbGciOiJub25lIn0.eyJzdWIiOiJib2IifQ."} {
		code, body := n.mustCall(http.MethodPost, base+"/v1/oidc/backchannel-logout", "", "application/x-www-form-urlencoded", form)
		if code != http.StatusBadRequest || string(body) != "{\"error\":\"invalid_request\"}\n" {
			t.Errorf("POST %q: got %d %s, want 400 invalid_request", form, code, body)
		}
	}
	mustStatus(t, n, bob, http.StatusOK, "bob's session after the refused tokens")
}
