package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tetherhq/tether/internal/servicetest"
)

// BenchmarkNginxForwardAuth measures the app's throughput through real
// nginx, side by side in one run (issue 11 item 5):
//
//   - nginx: proxying to the app without auth, the floor;
//   - nginx+tether: docs/proxies.md's auth_request block, Tether in process
//     on the embedded default store with its cache;
//   - nginx+oauth2-proxy: oauth2-proxy v7 with its Redis session store
//     answering the same auth_request, signed in through a real OpenID
//     provider. It runs when OAUTH2_PROXY_BIN names the binary
//     (GOBIN=/tmp/o2p go install github.com/oauth2-proxy/oauth2-proxy/v7@v7.15.6).
//
// After the runs it revokes the session at both, as an administrator would
// (Tether: DELETE /v1/subjects/S/sessions; oauth2-proxy has no revocation
// API, so the provider signs the user out), and reports whether the next
// request through nginx still reached the app: metric next-after-revoke,
// 1 = let through.
//
//	OAUTH2_PROXY_BIN=/tmp/o2p/oauth2-proxy go test -run '^$' -bench NginxForwardAuth -benchtime 5s ./cmd/tether
func BenchmarkNginxForwardAuth(b *testing.B) {
	if tetherBin == "" {
		b.Skip("builds the binary: not in -short mode")
	}
	ctx := context.Background()
	n, err := startLocalNode(ctx, localConfig(b.TempDir(), ""))
	if err != nil {
		b.Fatal(err)
	}
	defer n.stop()
	token, err := n.createSession(ctx, "alice")
	if err != nil {
		b.Fatal(err)
	}
	app := startEchoApp(b)
	appAddr := strings.TrimPrefix(app.URL, "http://")
	tetherAddr := strings.TrimPrefix(n.public, "http://")

	plainPort, tetherPort := servicetest.FreePort(b), servicetest.FreePort(b)
	servers := fmt.Sprintf(`
upstream plain_app { server %s; keepalive 32; }
server {
    listen 127.0.0.1:%d;
    location / {
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://plain_app;
    }
}
`, appAddr, plainPort)
	servers += strings.NewReplacer(docTether, tetherAddr, docApp, appAddr,
		"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", tetherPort)).Replace(docBlocks(b, "nginx")[0])

	var o2p *oauth2Proxy
	o2pPort := 0
	if bin := os.Getenv("OAUTH2_PROXY_BIN"); bin != "" {
		o2p = startOAuth2Proxy(b, bin)
		o2pPort = servicetest.FreePort(b)
		servers += fmt.Sprintf(`
upstream o2p { server %s; keepalive 32; }
upstream o2p_app { server %s; keepalive 32; }
server {
    listen 127.0.0.1:%d;
    location / {
        auth_request /oauth2/auth;
        auth_request_set $user $upstream_http_x_auth_request_user;
        proxy_set_header X-User $user;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://o2p_app;
    }
    location = /oauth2/auth {
        internal;
        proxy_pass http://o2p;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
    }
}
`, o2p.addr, appAddr, o2pPort)
	}
	nginx := servicetest.StartNginx(b, plainPort, servers)

	type target struct {
		name   string
		port   int
		header [2]string
	}
	targets := []target{
		{"nginx", plainPort, [2]string{}},
		{"nginx+tether", tetherPort, [2]string{"Authorization", "Bearer " + token}},
	}
	if o2p != nil {
		targets = append(targets, target{"nginx+oauth2-proxy", o2pPort, [2]string{"Cookie", o2p.cookie}})
	}
	get := func(c *http.Client, tg target) int {
		r, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/hello", tg.port), nil)
		if tg.header[0] != "" {
			r.Header.Set(tg.header[0], tg.header[1])
		}
		resp, err := c.Do(r)
		if err != nil {
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			if code := get(c, tg); code != http.StatusOK {
				b.Fatalf("%s: got %d, want 200\n%s", tg.name, code, nginx.Output())
			}
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if code := get(c, tg); code != http.StatusOK {
						b.Errorf("%s: got %d", tg.name, code)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}

	// Revoke, then the next request.
	c := &http.Client{Timeout: 10 * time.Second}
	if _, err := n.adminAPI.RevokeSubject(ctx, "alice"); err != nil {
		b.Fatal(err)
	}
	b.Run("tether-next-after-revoke", func(b *testing.B) {
		b.ReportMetric(boolMetric(get(c, targets[1]) == http.StatusOK), "next-after-revoke")
	})
	if o2p != nil {
		o2p.signOutAtProvider(b)
		b.Run("oauth2-proxy-next-after-revoke", func(b *testing.B) {
			b.ReportMetric(boolMetric(get(c, targets[2]) == http.StatusOK), "next-after-revoke")
		})
	}
}

func boolMetric(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

// oauth2Proxy is oauth2-proxy v7 on loopback, with its Redis session store,
// signed in through a real OpenID provider.
type oauth2Proxy struct {
	addr   string
	cookie string // the session cookie, "name=value"
	idp    *servicetest.OIDCProvider
	jar    *http.Client
}

func startOAuth2Proxy(b *testing.B, bin string) *oauth2Proxy {
	b.Helper()
	redis := servicetest.SharedRedis(b)
	port := servicetest.FreePort(b)
	o := &oauth2Proxy{addr: "127.0.0.1:" + strconv.Itoa(port)}
	const secret = "o2p-client-secret-0123456789abcdef"
	o.idp = servicetest.StartOIDCProvider(b, []servicetest.OIDCClient{{
		ID: "oauth2-proxy", Secret: secret, RedirectURIs: []string{"http://" + o.addr + "/oauth2/callback"},
	}}, nil)
	cmd := exec.Command(bin,
		"--http-address="+o.addr, "--provider=oidc", "--oidc-issuer-url="+o.idp.Issuer,
		"--client-id=oauth2-proxy", "--client-secret="+secret, "--redirect-url=http://"+o.addr+"/oauth2/callback",
		"--cookie-secret=0123456789abcdef0123456789abcdef", "--cookie-secure=false", "--email-domain=*",
		"--session-store-type=redis", "--redis-connection-url=redis://"+redis,
		"--upstream=static://202", "--skip-provider-button", "--set-xauthrequest", "--code-challenge-method=S256",
		"--insecure-oidc-allow-unverified-email", "--scope=openid email", "--request-logging=false", "--auth-logging=false",
	)
	if err := cmd.Start(); err != nil {
		b.Fatalf("oauth2-proxy: %v", err)
	}
	b.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + o.addr + "/ping")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("oauth2-proxy not up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	jar, _ := cookiejar.New(nil)
	o.jar = &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	callback := o.idp.SignIn(b, o.jar, "http://"+o.addr+"/oauth2/start?rd=/", "alice")
	resp, err := o.jar.Get(callback.String())
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse("http://" + o.addr)
	for _, ck := range jar.Cookies(u) {
		if strings.HasPrefix(ck.Name, "_oauth2_proxy") {
			o.cookie = ck.Name + "=" + ck.Value
		}
	}
	if o.cookie == "" {
		b.Fatalf("oauth2-proxy sign-in: no session cookie (callback answered %d)", resp.StatusCode)
	}
	return o
}

// signOutAtProvider ends the user's session at the OpenID provider, the
// nearest thing to revoking it that oauth2-proxy's operator has.
func (o *oauth2Proxy) signOutAtProvider(b *testing.B) {
	b.Helper()
	o.idp.SignOut(b, o.jar)
}
