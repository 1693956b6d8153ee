package main

// Forward auth end to end: the real `tether serve`, real nginx and real Caddy
// running the configurations of docs/proxies.md, and a small app behind them
// that echoes the identity headers it receives.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tetherhq/tether/internal/servicetest"
)

// docBlocks returns the fenced blocks of docs/proxies.md in lang, in order.
func docBlocks(t testing.TB, lang string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "proxies.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	rest := string(b)
	for {
		var ok bool
		if _, rest, ok = strings.Cut(rest, "```"+lang+"\n"); !ok {
			break
		}
		var block string
		if block, rest, ok = strings.Cut(rest, "\n```"); !ok {
			t.Fatalf("docs/proxies.md: a ```%s block does not end", lang)
		}
		blocks = append(blocks, block)
	}
	if len(blocks) == 0 {
		t.Fatalf("docs/proxies.md has no ```%s block", lang)
	}
	return blocks
}

// The addresses the docs use, which the tests replace with their own.
const (
	docTether = "127.0.0.1:8080"
	docApp    = "127.0.0.1:3000"
)

const proxyRules = `
forward_auth:
  trusted_proxies: ["127.0.0.1/32"]   # not 127.0.0.3, which the spoofing client dials from
  login_url: "https://auth.example.test/v1/login"
  rules:
    - { path_prefix: "/admin", require_roles: [admin] }
    - { path_prefix: "/public", allow_anonymous: true }
`

type echoed struct {
	Subject, Roles, SessionID, AuthTime, URI string
}

// startEchoApp is the app behind the proxy: it answers every request with
// the identity headers it received.
func startEchoApp(t testing.TB) *httptest.Server {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(echoed{
			Subject: r.Header.Get("Tether-Subject"), Roles: r.Header.Get("Tether-Roles"),
			SessionID: r.Header.Get("Tether-Session-Id"), AuthTime: r.Header.Get("Tether-Auth-Time"),
			URI: r.RequestURI,
		})
	}))
	t.Cleanup(app.Close)
	return app
}

type proxyFixture struct {
	t      *testing.T
	kind   string
	n      *node
	redis  *servicetest.Redis
	cfg    string // the config file path
	proxy  *servicetest.ProxyServer
	host   string // the Host the client sends: app.example.test:port
	client *http.Client
}

func startProxyFixture(t *testing.T, kind string) *proxyFixture {
	t.Helper()
	needBinary(t)
	f := &proxyFixture{t: t, kind: kind}
	f.redis = servicetest.StartRedis(t)
	f.cfg = filepath.Join(t.TempDir(), "tether.yaml")
	if err := os.WriteFile(f.cfg, []byte(proxyRules), 0o600); err != nil {
		t.Fatal(err)
	}
	// No cache, so that the store going away shows on the next request.
	f.n = startNode(t, nodeSpec{args: []string{"--store", "redis://" + f.redis.Addr() + "/0", "--config", f.cfg, "--max-staleness", "0"}})

	app := startEchoApp(t)

	port := servicetest.FreePort(t)
	f.host = fmt.Sprintf("app.example.test:%d", port)
	addrs := strings.NewReplacer(docTether, strings.TrimPrefix(f.n.pub, "http://"), docApp, strings.TrimPrefix(app.URL, "http://"))
	switch kind {
	case "nginx":
		conf := strings.Replace(addrs.Replace(docBlocks(t, "nginx")[0]), "listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port), 1)
		f.proxy = servicetest.StartNginx(t, port, conf)
	case "caddy":
		site := strings.Replace(addrs.Replace(docBlocks(t, "caddy")[0]), "app.example.test {",
			fmt.Sprintf("http://%s {\n\tbind 127.0.0.1", f.host), 1)
		f.proxy = servicetest.StartCaddy(t, port, site)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	f.client = &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return f
}

// get sends GET path through the proxy; header is name, value pairs.
func (f *proxyFixture) get(path string, header ...string) (*http.Response, echoed) {
	f.t.Helper()
	r, err := http.NewRequest(http.MethodGet, f.proxy.URL()+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	r.Host = f.host
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	resp, err := f.client.Do(r)
	if err != nil {
		f.t.Fatalf("GET %s through %s: %v", path, f.kind, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e echoed
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &e); err != nil {
			f.t.Fatalf("GET %s: the app's answer %q: %v", path, body, err)
		}
	}
	return resp, e
}

// expect checks status and, on a 200, the subject the app saw.
func (f *proxyFixture) expect(what, path string, status int, subject string, header ...string) *http.Response {
	f.t.Helper()
	resp, e := f.get(path, header...)
	if resp.StatusCode != status || e.Subject != subject {
		f.t.Fatalf("%s (%s, GET %s): got %d subject %q, want %d subject %q\n%s", what, f.kind, path, resp.StatusCode, e.Subject, status, subject, f.proxy.Output())
	}
	return resp
}

func TestE2EProxies(t *testing.T) {
	for _, kind := range []string{"nginx", "caddy"} {
		t.Run(kind, func(t *testing.T) { testProxy(t, kind) })
	}
}

func testProxy(t *testing.T, kind string) {
	f := startProxyFixture(t, kind)
	n := f.n
	user, userID := n.create(`{"subject":"alice","roles":["user"]}`)
	admin, _ := n.create(`{"subject":"root","roles":["admin"]}`)
	browser := []string{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"}

	// Allowed: the app sees the identity.
	resp, e := f.get("/hello?x=1", "Authorization", "Bearer "+user)
	want := echoed{Subject: "alice", Roles: "user", SessionID: userID, URI: "/hello?x=1"}
	if resp.StatusCode != http.StatusOK || e != want {
		t.Fatalf("allowed: got %d %+v, want 200 %+v\n%s", resp.StatusCode, e, want, f.proxy.Output())
	}
	f.expect("the session cookie", "/hello", 200, "alice", "Cookie", "__Host-tether="+user)
	f.expect("role held", "/admin/x", 200, "root", "Authorization", "Bearer "+admin)
	f.expect("role missing", "/admin/x", 403, "", "Authorization", "Bearer "+user)
	f.expect("dot-dot into /admin", "/public/../admin/x", 403, "", "Authorization", "Bearer "+user)

	// No session: 401 for an API client; a browser goes to the login page
	// through Caddy, and gets the 401 through nginx, which cannot redirect.
	resp = f.expect("no session", "/hello", 401, "", "Accept", "application/json")
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("no session: WWW-Authenticate %q, want Bearer", got)
	}
	if kind == "caddy" {
		resp = f.expect("no session, browser", "/hello?a=b", 302, "", browser...)
		wantLoc := "https://auth.example.test/v1/login?rd=" + url.QueryEscape("http://"+f.host+"/hello?a=b")
		if got := resp.Header.Get("Location"); got != wantLoc {
			t.Errorf("login redirect: got %q, want %q", got, wantLoc)
		}
	} else {
		f.expect("no session, browser", "/hello", 401, "", browser...)
	}

	// Anonymous route: through, and a client's own identity headers never
	// reach the app.
	f.expect("anonymous", "/public/a.css", 200, "", "Tether-Subject", "root", "Tether-Roles", "admin")

	// Spoofed original-request headers sent through the proxy never open a
	// door. nginx (as configured) blanks the X-Forwarded forms and sets its
	// own X-Original ones: the spoof changes nothing. Caddy sets X-Forwarded
	// and passes the client's X-Original on: both forms at once is refused
	// as ambiguous (400) rather than guessed.
	spoof := []string{"X-Forwarded-Uri", "/public", "X-Original-URI", "/public", "X-Forwarded-Method", "GET",
		"X-Original-Method", "GET", "X-Forwarded-Host", "other.example.test", "X-Forwarded-Proto", "https", "Accept", "application/json"}
	noSession, withSession := 401, 403
	if kind == "caddy" {
		noSession, withSession = 400, 400
	}
	f.expect("spoofed /public", "/admin/x", noSession, "", spoof...)
	f.expect("spoofed /public with a session", "/admin/x", withSession, "", append(spoof, "Authorization", "Bearer "+user)...)

	// ...and sent straight to Tether from a peer that is not a trusted proxy,
	// they are ignored, while the same from a trusted one count.
	direct := func(local string) int {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).DialContext}}
		r, _ := http.NewRequest(http.MethodGet, n.pub+"/v1/authz", nil)
		r.Header.Set("X-Forwarded-Uri", "/public")
		resp, err := c.Do(r)
		if err != nil {
			t.Fatalf("from %s: %v", local, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := direct("127.0.0.3"); got != http.StatusUnauthorized {
		t.Errorf("X-Forwarded-Uri /public from an untrusted peer: got %d, want 401", got)
	}
	if got := direct("127.0.0.1"); got != http.StatusOK {
		t.Errorf("X-Forwarded-Uri /public from a trusted proxy: got %d, want 200", got)
	}

	// The next request after a role change or a revocation is refused.
	if code, b := n.admin(http.MethodPut, "/v1/subjects/root/roles", `{"roles":["ops"]}`); code != 200 {
		t.Fatalf("roles: %d %s", code, b)
	}
	f.expect("role removed", "/admin/x", 403, "", "Authorization", "Bearer "+admin)
	if code, b := n.admin(http.MethodDelete, "/v1/sessions/"+userID, ""); code != 204 {
		t.Fatalf("revoke: %d %s", code, b)
	}
	f.expect("session revoked", "/hello", 401, "", "Authorization", "Bearer "+user, "Accept", "application/json")

	// SIGHUP swaps in new rules without dropping a request.
	reader, _ := n.create(`{"subject":"rita","roles":["reader"]}`)
	f.expect("before the reload", "/reports/1", 200, "rita", "Authorization", "Bearer "+reader)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad []string
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, e := f.get("/hello", "Authorization", "Bearer "+reader)
			if resp.StatusCode != 200 || e.Subject != "rita" {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%d %q", resp.StatusCode, e.Subject))
				mu.Unlock()
			}
		}
	}()
	rules := proxyRules + "    - { path_prefix: \"/reports\", require_roles: [auditor] }\n"
	if err := os.WriteFile(f.cfg, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	n.waitLog("forward_auth rules reloaded", 10*time.Second)
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("requests during the reload were refused: %v", bad)
	}
	f.expect("after the reload", "/reports/1", 403, "", "Authorization", "Bearer "+reader)

	// The store goes away: 503 through the proxy, never the app.
	f.redis.Kill()
	f.expect("store down", "/hello", 503, "", "Authorization", "Bearer "+reader)
	f.expect("store down, anonymous route with a token", "/public/x", 503, "", "Authorization", "Bearer "+reader)
}

// TestE2EExtAuthzGRPC: `tether serve` with forward_auth.grpc_addr answers
// Envoy's gRPC ext_authz on that listener, with a real gRPC client using
// Envoy's own types.
func TestE2EExtAuthzGRPC(t *testing.T) {
	needBinary(t)
	addr := fmt.Sprintf("127.0.0.1:%d", servicetest.FreePort(t))
	cfg := filepath.Join(t.TempDir(), "tether.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("forward_auth:\n  grpc_addr: %q\n  rules:\n    - { path_prefix: \"/admin\", require_roles: [admin] }\n", addr)), 0o600)
	n := startNode(t, nodeSpec{args: []string{"--store", "memory:", "--config", cfg}})
	n.waitLog("ext_authz gRPC ready", 5*time.Second)
	token, _ := n.create(`{"subject":"alice","roles":["user"]}`)

	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := authv3.NewAuthorizationClient(conn)
	ask := func(path string) *authv3.CheckResponse {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := c.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: path, Host: "app.example.test", Scheme: "https",
				Headers: map[string]string{"authorization": "Bearer " + token},
			}},
		}})
		if err != nil {
			t.Fatalf("Check %s: %v", path, err)
		}
		return resp
	}
	if resp := ask("/x"); resp.GetOkResponse() == nil {
		t.Errorf("allowed: got %v, want OK", resp)
	}
	if resp := ask("/admin"); resp.GetDeniedResponse().GetStatus().GetCode() != http.StatusForbidden {
		t.Errorf("role missing: got %v, want 403", resp)
	}
	if code, b := n.admin(http.MethodDelete, "/v1/subjects/alice/sessions", ""); code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, b)
	}
	if resp := ask("/x"); resp.GetDeniedResponse().GetStatus().GetCode() != http.StatusUnauthorized {
		t.Errorf("after revocation: got %v, want 401", resp)
	}
}
