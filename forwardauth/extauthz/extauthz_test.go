package extauthz_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/forwardauth"
	"github.com/tetherhq/tether/forwardauth/extauthz"
	"github.com/tetherhq/tether/store/memstore"
)

type fixture struct {
	st    *memstore.Store
	m     *tether.Manager
	addr  string
	users map[string]string // subject -> token
}

// newFixture serves ext_authz on a loopback listener of its own, trusting
// only 127.0.0.1 as a proxy.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{st: memstore.New(), users: map[string]string{}}
	var err error
	f.m, err = tether.NewManager(tether.Config{Store: f.st, MaxStaleness: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.m.Close() })
	p, err := forwardauth.NewPolicy(forwardauth.Config{
		TrustedProxies: []string{"127.0.0.1/32"},
		LoginURL:       "https://auth.example.test/v1/login",
		Rules: []forwardauth.Rule{
			{PathPrefix: "/admin", RequireRoles: []string{"admin"}},
			{PathPrefix: "/public", AllowAnonymous: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := forwardauth.New(forwardauth.Options{Validator: f.m, Logger: slog.New(slog.DiscardHandler)}, p)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(srv, extauthz.New(a))
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	f.addr = ln.Addr().String()
	for subject, roles := range map[string][]string{"alice": {"user"}, "root": {"admin"}} {
		tok, _, err := f.m.Create(context.Background(), tether.CreateParams{Subject: subject, Roles: roles})
		if err != nil {
			t.Fatal(err)
		}
		f.users[subject] = tok
	}
	return f
}

// client dials the server from local (a loopback address), as Envoy would.
func (f *fixture) client(t *testing.T, local string) authv3.AuthorizationClient {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := grpc.NewClient("passthrough:///"+f.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func check(t *testing.T, c authv3.AuthorizationClient, method, path string, headers map[string]string) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "203.0.113.9"}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "app.example.test", Scheme: "https", Headers: headers,
		}},
	}})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

func header(opts []*corev3.HeaderValueOption, name string) (string, bool) {
	for _, o := range opts {
		if o.GetHeader().GetKey() == name {
			return o.GetHeader().GetValue(), true
		}
	}
	return "", false
}

func TestCheck(t *testing.T) {
	f := newFixture(t)
	envoy := f.client(t, "127.0.0.1")
	bearer := func(subject string) map[string]string {
		return map[string]string{"authorization": "Bearer " + f.users[subject]}
	}
	type want struct {
		rpc     code.Code
		http    int // the denied status; 0 for OK
		subject string
		header  [2]string // a header of the denied answer and its value
	}
	cases := []struct {
		name, method, path string
		headers            map[string]string
		want               want
	}{
		{"allowed", "GET", "/x?y=1", bearer("alice"), want{rpc: code.Code_OK, subject: "alice"}},
		{"role held", "POST", "/admin/x", bearer("root"), want{rpc: code.Code_OK, subject: "root"}},
		{"role missing", "GET", "/admin/x", bearer("alice"), want{rpc: code.Code_PERMISSION_DENIED, http: 403}},
		{"no session", "GET", "/x", nil, want{rpc: code.Code_UNAUTHENTICATED, http: 401, header: [2]string{"Www-Authenticate", `Bearer realm="tether"`}}},
		{"no session, browser", "GET", "/x?a=b", map[string]string{"accept": "text/html"},
			want{rpc: code.Code_UNAUTHENTICATED, http: 302, header: [2]string{"Location", "https://auth.example.test/v1/login?rd=https%3A%2F%2Fapp.example.test%2Fx%3Fa%3Db"}}},
		{"anonymous", "GET", "/public/a", nil, want{rpc: code.Code_OK}},
		{"dot-dot", "GET", "/public/../admin", bearer("alice"), want{rpc: code.Code_PERMISSION_DENIED, http: 403}},
		{"encoded slash", "GET", "/admin%2Fx", bearer("alice"), want{rpc: code.Code_INVALID_ARGUMENT, http: 400}},
		{"client's own X-Forwarded-Uri is ignored", "GET", "/admin", map[string]string{"x-forwarded-uri": "/public", "x-original-uri": "/public"},
			want{rpc: code.Code_UNAUTHENTICATED, http: 401, header: [2]string{"Www-Authenticate", `Bearer realm="tether"`}}},
		{"session cookie", "GET", "/x", map[string]string{"cookie": "a=b; __Host-tether=" + f.users["alice"]}, want{rpc: code.Code_OK, subject: "alice"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := check(t, envoy, tc.method, tc.path, tc.headers)
			if got := code.Code(resp.GetStatus().GetCode()); got != tc.want.rpc {
				t.Fatalf("status: got %v, want %v (%v)", got, tc.want.rpc, resp)
			}
			if tc.want.http == 0 {
				ok := resp.GetOkResponse()
				if ok == nil {
					t.Fatalf("got %v, want an OkResponse", resp)
				}
				for _, name := range []string{"Tether-Subject", "Tether-Roles", "Tether-Session-Id", "Tether-Auth-Time"} {
					if _, set := header(ok.GetHeaders(), name); !set {
						t.Errorf("%s not set: a client's own copy would reach the app", name)
					}
				}
				if got, _ := header(ok.GetHeaders(), "Tether-Subject"); got != tc.want.subject {
					t.Errorf("Tether-Subject: got %q, want %q", got, tc.want.subject)
				}
				return
			}
			d := resp.GetDeniedResponse()
			if got := int(d.GetStatus().GetCode()); got != tc.want.http {
				t.Fatalf("denied status: got %d, want %d (%v)", got, tc.want.http, resp)
			}
			if tc.want.header[0] != "" {
				if got, _ := header(d.GetHeaders(), tc.want.header[0]); got != tc.want.header[1] {
					t.Errorf("%s: got %q, want %q", tc.want.header[0], got, tc.want.header[1])
				}
			}
		})
	}

	// From a peer that is not a trusted proxy, the attributes say nothing:
	// the request is taken as "/" on the given host.
	stranger := f.client(t, "127.0.0.2")
	if resp := check(t, stranger, "GET", "/public/x", nil); code.Code(resp.GetStatus().GetCode()) != code.Code_UNAUTHENTICATED {
		t.Errorf("anonymous path from an untrusted peer: got %v, want UNAUTHENTICATED", resp.GetStatus())
	}

	// Revocation applies to the next check; the store down fails closed.
	if _, err := f.m.RevokeSubject(context.Background(), "alice", ""); err != nil {
		t.Fatal(err)
	}
	if resp := check(t, envoy, "GET", "/x", bearer("alice")); resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Errorf("after revocation: got %v, want 401", resp)
	}
	f.st.Close()
	resp := check(t, envoy, "GET", "/x", bearer("root"))
	if code.Code(resp.GetStatus().GetCode()) != code.Code_UNAVAILABLE || resp.GetDeniedResponse().GetStatus().GetCode() != 503 {
		t.Errorf("store down: got %v, want UNAVAILABLE and 503", resp)
	}
}
