package servicetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// OIDCClient is a client registered at the test provider.
type OIDCClient struct {
	ID           string
	Secret       string
	RedirectURIs []string
	// BackchannelLogoutURI, if set, is where the provider posts logout tokens.
	BackchannelLogoutURI string
}

// OIDCProvider is a real OpenID provider (the oidc-provider npm package,
// OpenID Certified) on loopback, owned by one test.
type OIDCProvider struct {
	Issuer string // http://127.0.0.1:port
}

// oidcProviderDir holds the provider's script and pinned package-lock.json.
func oidcProviderDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "oidc-provider")
}

// installOIDCProvider runs npm ci in dir unless it has run, under a file
// lock: test binaries of several packages may start at once.
func installOIDCProvider(t testing.TB, dir string) {
	t.Helper()
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--prefix", dir, "--ignore-scripts", "--no-audit", "--no-fund")
	if out, err := cmd.CombinedOutput(); err != nil {
		SkipOrFail(t, "npm ci in %s: %v\n%s", dir, err, out)
	}
}

// StartOIDCProvider installs oidc-provider (npm ci, once per checkout) and
// starts it on a free loopback port with clients and accounts (account id ->
// extra ID-token claims, such as "groups"). Its sign-in page accepts any
// password for the login typed in. It waits until discovery answers;
// t.Cleanup stops it.
func StartOIDCProvider(t testing.TB, clients []OIDCClient, accounts map[string]map[string]any) *OIDCProvider {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			SkipOrFail(t, "%s not on PATH: the OpenID provider runs on Node", tool)
		}
	}
	dir := oidcProviderDir()
	installOIDCProvider(t, dir)
	var meta []map[string]any
	for _, c := range clients {
		m := map[string]any{
			"client_id": c.ID, "client_secret": c.Secret, "redirect_uris": c.RedirectURIs,
			"grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
			"require_auth_time": true,
		}
		if c.BackchannelLogoutURI != "" {
			m["backchannel_logout_uri"] = c.BackchannelLogoutURI
			m["backchannel_logout_session_required"] = true
		}
		meta = append(meta, m)
	}
	clientsJSON, _ := json.Marshal(meta)
	if accounts == nil {
		accounts = map[string]map[string]any{}
	}
	accountsJSON, _ := json.Marshal(accounts)

	port := FreePort(t)
	p := &OIDCProvider{Issuer: "http://127.0.0.1:" + strconv.Itoa(port)}
	cmd := exec.Command("node", filepath.Join(dir, "server.mjs"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "CLIENTS="+string(clientsJSON), "ACCOUNTS="+string(accountsJSON))
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting oidc-provider: %v", err)
	}
	exit := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exit)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exit:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exit
		}
	})
	client := &http.Client{Timeout: time.Second}
	err := poll(20*time.Second, func() error {
		select {
		case <-exit:
			return fmt.Errorf("exited at start (%v)", cmd.ProcessState)
		default:
		}
		resp, err := client.Get(p.Issuer + "/.well-known/openid-configuration")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("discovery: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("oidc-provider not up: %v\n%s", err, out)
	}
	return p
}

var (
	formAction = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	formPrompt = regexp.MustCompile(`name="prompt" value="(\w+)"`)
)

// SignIn plays the browser from start (a relying party's login URL) through
// the provider's sign-in and consent pages as login, and returns the URL the
// provider then sends the browser to (the relying party's callback) without
// visiting it. c must keep cookies and not follow redirects.
func (p *OIDCProvider) SignIn(t testing.TB, c *http.Client, start, login string) *url.URL {
	t.Helper()
	next, method, form := start, http.MethodGet, url.Values(nil)
	for range 20 {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, next, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/html")
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, next, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		atProvider := strings.HasPrefix(next, p.Issuer+"/")
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			if atProvider && !strings.HasPrefix(loc.String(), p.Issuer+"/") {
				return loc
			}
			next, method = loc.String(), http.MethodGet
		case resp.StatusCode == http.StatusOK && atProvider && formAction.Match(b):
			action, err := resp.Request.URL.Parse(string(formAction.FindSubmatch(b)[1]))
			if err != nil {
				t.Fatal(err)
			}
			next, method = action.String(), http.MethodPost
			form = url.Values{"prompt": {"consent"}}
			if m := formPrompt.FindSubmatch(b); m != nil && string(m[1]) == "login" {
				form = url.Values{"prompt": {"login"}, "login": {login}, "password": {"any"}}
			}
		default:
			t.Fatalf("sign-in: %s %s: %d %s", method, next, resp.StatusCode, b)
		}
	}
	t.Fatalf("sign-in from %s never left the provider", start)
	return nil
}

var logoutXSRF = regexp.MustCompile(`name="xsrf" value="([^"]+)"`)

// SignOut ends the browser's session at the provider (RP-initiated logout,
// confirmed on the provider's page), as a user signing out there would.
func (p *OIDCProvider) SignOut(t testing.TB, c *http.Client) {
	t.Helper()
	resp, err := c.Get(p.Issuer + "/session/end")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	action, xsrf := formAction.FindSubmatch(b), logoutXSRF.FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || action == nil || xsrf == nil {
		t.Fatalf("provider logout page: %d %s", resp.StatusCode, b)
	}
	to, err := resp.Request.URL.Parse(string(action[1]))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = c.PostForm(to.String(), url.Values{"xsrf": {string(xsrf[1])}, "logout": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		t.Fatalf("provider logout: %d", resp.StatusCode)
	}
}
