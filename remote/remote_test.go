package remote_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/api/apitest"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/remote"
)

// waitFor bounds how long a test waits for what should happen at once (a
// stream to connect, an event to arrive); it fails the test, it times nothing.
const waitFor = 10 * time.Second

// transport counts introspection calls and can cut the change stream or
// introspection alone, as a network fault between client and server would.
type transport struct {
	introspections atomic.Int64

	mu                       sync.Mutex
	streamCut, introspectCut bool
	streams                  []io.Closer
}

var errCut = errors.New("cut by the test")

func (tr *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	tr.mu.Lock()
	streamCut, introspectCut := tr.streamCut, tr.introspectCut
	tr.mu.Unlock()
	switch r.URL.Path {
	case "/v1/introspect":
		tr.introspections.Add(1)
		if introspectCut {
			return nil, errCut
		}
	case "/v1/changes":
		if streamCut {
			return nil, errCut
		}
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil {
			tr.mu.Lock()
			tr.streams = append(tr.streams, resp.Body)
			tr.mu.Unlock()
		}
		return resp, err
	}
	return http.DefaultTransport.RoundTrip(r)
}

// cutStream ends the open streams and refuses new ones, or lets them through again.
func (tr *transport) cutStream(cut bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.streamCut = cut
	if cut {
		for _, s := range tr.streams {
			s.Close()
		}
		tr.streams = nil
	}
}

func (tr *transport) cutIntrospection(cut bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.introspectCut = cut
}

func newClient(t *testing.T, adminURL string, cfg remote.Config) (*remote.Client, *transport) {
	t.Helper()
	tr := &transport{}
	cfg.AdminURL, cfg.AdminKey, cfg.HTTPClient = adminURL, apitest.AdminKey, &http.Client{Transport: tr}
	c, err := remote.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	waitConnected(t, c, true)
	return c, tr
}

// waitConnected waits until the client's change stream is up (or down).
func waitConnected(t *testing.T, c *remote.Client, up bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for c.Connected() != up {
		if time.Now().After(deadline) {
			t.Fatalf("the change stream: Connected() stayed %v for %v", !up, waitFor)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventually calls f until it returns nil, failing the test after waitFor.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after %v", what, err, waitFor)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// adminCall calls the node's admin API and returns the status.
func adminCall(t *testing.T, n *apitest.Node, method, path, body string) int {
	t.Helper()
	r, _ := http.NewRequest(method, n.Admin.URL+path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+apitest.AdminKey)
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func create(t *testing.T, n *apitest.Node, subject string, roles ...string) (string, *tether.Session) {
	t.Helper()
	token, s, err := n.Manager.Create(context.Background(), tether.CreateParams{
		Subject: subject, Roles: roles, Metadata: map[string]string{"device": "laptop"},
		AuthTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), AuthMethod: "password",
	})
	if err != nil {
		t.Fatal(err)
	}
	return token, s
}

// TestValidate: the remote client answers as Manager.Validate does, from its
// cache when it may, and a revocation or role change made on the server
// reaches it through the change stream, on every store.
func TestValidate(t *testing.T) {
	ctx := context.Background()
	for _, st := range apitest.Stores() {
		t.Run(st.Name, func(t *testing.T) {
			n := apitest.Start(t, st.URL(t, ""), apitest.Options{})
			// A long staleness bound: only the stream can make the client
			// refuse what it cached.
			// Created before the client connects, so that the creation's own
			// change events (the roles were set) cannot arrive mid-test.
			token, _ := create(t, n, "alice", "admin")
			c, tr := newClient(t, n.Admin.URL, remote.Config{MaxStaleness: time.Hour})

			want, err := n.Manager.Validate(ctx, token)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				got, err := c.Validate(ctx, token)
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if d := cmp.Diff(want, got); d != "" {
					t.Fatalf("call %d: the session differs from Manager.Validate's (-want +got):\n%s", i, d)
				}
			}
			if got := tr.introspections.Load(); got != 1 {
				t.Errorf("3 validations made %d introspections, want 1 (then the cache)", got)
			}

			t.Run("refusals", func(t *testing.T) {
				before := tr.introspections.Load()
				for _, tok := range []string{"", "garbage", tether.TokenPrefix + "x"} {
					if _, err := c.Validate(ctx, tok); !errors.Is(err, tether.ErrInvalidToken) {
						t.Errorf("malformed %q: got %v, want ErrInvalidToken", tok, err)
					}
				}
				if got := tr.introspections.Load() - before; got != 0 {
					t.Errorf("malformed tokens made %d introspections, want none", got)
				}
				forged := token[:len(token)-12] + "AAAAAAAAAAAA" // live ID, wrong secret
				if _, err := c.Validate(ctx, forged); !errors.Is(err, tether.ErrInvalidToken) {
					t.Errorf("wrong secret for a cached session: got %v, want ErrInvalidToken", err)
				}
			})

			t.Run("role change", func(t *testing.T) {
				if st := adminCall(t, n, http.MethodPut, "/v1/subjects/alice/roles", `{"roles":["ops"]}`); st != http.StatusOK {
					t.Fatalf("set roles: got %d", st)
				}
				eventually(t, "new roles", func() error {
					s, err := c.Validate(ctx, token)
					if err != nil || !slices.Equal(s.Roles, []string{"ops"}) {
						return errors.New("old roles")
					}
					return nil
				})
			})

			t.Run("admin revoke", func(t *testing.T) {
				if st := adminCall(t, n, http.MethodDelete, "/v1/sessions/"+want.ID, ""); st != http.StatusNoContent {
					t.Fatalf("revoke: got %d", st)
				}
				eventually(t, "refusal after revoke", func() error {
					if _, err := c.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) {
						return errors.New("still accepted")
					}
					return nil
				})
			})

			t.Run("RFC 7009 revoke", func(t *testing.T) {
				tok, _ := create(t, n, "bob")
				if _, err := c.Validate(ctx, tok); err != nil {
					t.Fatal(err)
				}
				resp, err := http.PostForm(n.Public.URL+"/oauth2/revoke", url.Values{"token": {tok}})
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				eventually(t, "refusal after RFC 7009 revoke", func() error {
					if _, err := c.Validate(ctx, tok); !errors.Is(err, tether.ErrInvalidToken) {
						return errors.New("still accepted")
					}
					return nil
				})
			})
		})
	}
}

// TestStreamCut: while the change stream is down the client answers nothing
// from its cache; every validation asks the server. Once the stream is back,
// it caches again.
func TestStreamCut(t *testing.T) {
	ctx := context.Background()
	for _, st := range apitest.Stores() {
		t.Run(st.Name, func(t *testing.T) {
			n := apitest.Start(t, st.URL(t, ""), apitest.Options{})
			token, _ := create(t, n, "alice")
			c, tr := newClient(t, n.Admin.URL, remote.Config{MaxStaleness: time.Hour})
			if _, err := c.Validate(ctx, token); err != nil {
				t.Fatal(err)
			}

			tr.cutStream(true)
			waitConnected(t, c, false)
			before := tr.introspections.Load()
			for range 3 {
				if _, err := c.Validate(ctx, token); err != nil {
					t.Fatal(err)
				}
			}
			if got := tr.introspections.Load() - before; got != 3 {
				t.Errorf("stream down: 3 validations made %d introspections, want 3 (no cached answers)", got)
			}

			tr.cutStream(false)
			waitConnected(t, c, true)
			before = tr.introspections.Load()
			for range 3 {
				if _, err := c.Validate(ctx, token); err != nil {
					t.Fatal(err)
				}
			}
			if got := tr.introspections.Load() - before; got != 1 {
				t.Errorf("stream back: 3 validations made %d introspections, want 1 (then the cache)", got)
			}
		})
	}
}

// TestStalenessBound: a cached answer is never served past MaxStaleness,
// stream or no stream: then the server must answer, and if it cannot, the
// answer is ErrUnavailable.
func TestStalenessBound(t *testing.T) {
	ctx := context.Background()
	n := apitest.Start(t, "memory:", apitest.Options{})
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	c, tr := newClient(t, n.Admin.URL, remote.Config{
		MaxStaleness: time.Second, Now: func() time.Time { return time.Unix(0, now.Load()) },
	})
	token, _ := create(t, n, "alice")
	if _, err := c.Validate(ctx, token); err != nil {
		t.Fatal(err)
	}
	tr.cutIntrospection(true)
	if _, err := c.Validate(ctx, token); err != nil {
		t.Errorf("within the bound, introspection down: got %v, want the cached answer", err)
	}
	now.Add(int64(time.Second))
	if _, err := c.Validate(ctx, token); !errors.Is(err, tether.ErrUnavailable) {
		t.Errorf("past the bound, introspection down: got %v, want ErrUnavailable", err)
	}
	tr.cutIntrospection(false)
	if _, err := c.Validate(ctx, token); err != nil {
		t.Errorf("introspection back: got %v", err)
	}
}

// TestServerDown: with the server unreachable the client fails closed with
// ErrUnavailable, and recovers when the server is back.
func TestServerDown(t *testing.T) {
	ctx := context.Background()
	n := apitest.Start(t, "memory:", apitest.Options{})
	proxy := servicetest.NewProxy(t, n.Admin.Listener.Addr().String())
	c, _ := newClient(t, "http://"+proxy.Addr, remote.Config{MaxStaleness: time.Hour})
	token, _ := create(t, n, "alice")
	if _, err := c.Validate(ctx, token); err != nil {
		t.Fatal(err)
	}
	proxy.Stop()
	waitConnected(t, c, false)
	for i := range 5 {
		if s, err := c.Validate(ctx, token); !errors.Is(err, tether.ErrUnavailable) {
			t.Fatalf("server down, call %d: got %v %v, want ErrUnavailable", i, s, err)
		}
	}
	proxy.Start(t)
	eventually(t, "validation once the server is back", func() error {
		_, err := c.Validate(ctx, token)
		return err
	})
}

// TestStoreLost: when the server loses its store, its stream ends with an
// error event, the client stops serving from its cache, and validation fails
// closed.
func TestStoreLost(t *testing.T) {
	ctx := context.Background()
	for _, st := range apitest.Stores() {
		if st.Target == nil {
			continue // an in-process store cannot be cut off
		}
		t.Run(st.Name, func(t *testing.T) {
			proxy := servicetest.NewProxy(t, st.Target(t))
			// The node itself caches nothing: its own cache may still hold the
			// session for its staleness bound after its store's channel is lost,
			// and this is about what the client serves.
			n := apitest.Start(t, st.URL(t, proxy.Addr), apitest.Options{MaxStaleness: -1})
			c, _ := newClient(t, n.Admin.URL, remote.Config{MaxStaleness: time.Hour})
			token, _ := create(t, n, "alice")
			if _, err := c.Validate(ctx, token); err != nil {
				t.Fatal(err)
			}
			proxy.Stop()
			waitConnected(t, c, false)
			if s, err := c.Validate(ctx, token); !errors.Is(err, tether.ErrUnavailable) {
				t.Errorf("store down: got %v %v, want ErrUnavailable", s, err)
			}
		})
	}
}

// TestMiddleware: the library's middleware takes the remote client as it
// takes a Manager.
func TestMiddleware(t *testing.T) {
	n := apitest.Start(t, "memory:", apitest.Options{})
	proxy := servicetest.NewProxy(t, n.Admin.Listener.Addr().String())
	c, _ := newClient(t, "http://"+proxy.Addr, remote.Config{})
	token, _ := create(t, n, "alice", "admin")
	// A session bound to a DPoP key: the remote path sees no proof, so it
	// must refuse it however it is presented.
	bound, _, err := n.Manager.Create(context.Background(), tether.CreateParams{Subject: "bob", JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})
	if err != nil {
		t.Fatal(err)
	}
	app := tether.RequireSession(c)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := tether.FromContext(r.Context())
		io.WriteString(w, s.Subject+" "+strings.Join(s.Roles, ","))
	}))
	call := func(header ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/", nil) // state-changing: the CSRF check applies
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		app.ServeHTTP(w, r)
		return w
	}
	tests := []struct {
		name   string
		header []string
		want   int
		body   string
	}{
		{"bearer", []string{"Authorization", "Bearer " + token}, 200, "alice admin"},
		{"cookie, same origin", []string{"Cookie", tether.SecureCookieName + "=" + token, "Sec-Fetch-Site", "same-origin"}, 200, "alice admin"},
		{"cookie, cross-site", []string{"Cookie", tether.SecureCookieName + "=" + token, "Sec-Fetch-Site", "cross-site"}, 403, `{"error":"cross_origin"}`},
		{"no token", nil, 401, `{"error":"unauthenticated"}`},
		{"bad token", []string{"Authorization", "Bearer garbage"}, 401, `{"error":"unauthenticated"}`},
		{"DPoP-bound session as Bearer", []string{"Authorization", "Bearer " + bound}, 401, `{"error":"unauthenticated"}`},
		{"DPoP-bound session as DPoP", []string{"Authorization", "DPoP " + bound, "DPoP", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.sig"}, 401, `{"error":"unauthenticated"}`},
		{"bearer session as DPoP", []string{"Authorization", "DPoP " + token}, 401, `{"error":"unauthenticated"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := call(tt.header...)
			if w.Code != tt.want || strings.TrimSpace(w.Body.String()) != tt.body {
				t.Errorf("got %d %q, want %d %q", w.Code, w.Body, tt.want, tt.body)
			}
		})
	}
	t.Run("server down", func(t *testing.T) {
		proxy.Stop()
		waitConnected(t, c, false)
		if w := call("Authorization", "Bearer "+token); w.Code != http.StatusServiceUnavailable {
			t.Errorf("got %d %s, want 503", w.Code, w.Body)
		}
	})
}

func TestNewBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  remote.Config
		want string
	}{
		{"no URL", remote.Config{AdminKey: "k"}, "AdminURL"},
		{"not http", remote.Config{AdminURL: "ftp://x", AdminKey: "k"}, "AdminURL"},
		{"no key", remote.Config{AdminURL: "http://127.0.0.1:1"}, "AdminKey"},
		{"client timeout", remote.Config{AdminURL: "http://127.0.0.1:1", AdminKey: "k", HTTPClient: &http.Client{Timeout: time.Second}}, "Timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := remote.New(tt.cfg)
			if err == nil {
				c.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want it to mention %s", err, tt.want)
			}
		})
	}
}
