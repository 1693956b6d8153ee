package adminclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/adminclient"
)

const (
	testKey   = "test-admin-key-0123456789"
	testID    = "0123456789abcdef"
	testToken = "tts_0123456789abcdef0123456789abcdefghjkmnpqrstvwxyz0000000" // shape only
)

// call is one request as the fake admin API saw it.
type call struct {
	Method, Path, ContentType string
	Body                      any // decoded JSON, or the raw string for other bodies
}

// fakeAdmin answers every request with one canned response, after checking
// the admin key the way the server does, and records what it got.
type fakeAdmin struct {
	status int
	body   string
	header http.Header

	mu    sync.Mutex
	calls []call
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	c := call{Method: r.Method, Path: r.URL.EscapedPath(), ContentType: r.Header.Get("Content-Type")}
	if len(raw) > 0 {
		c.Body = string(raw)
		var v any
		if strings.HasPrefix(c.ContentType, "application/json") && json.Unmarshal(raw, &v) == nil {
			c.Body = v
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+testKey {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"unauthenticated"}`)
		return
	}
	for k, v := range f.header {
		w.Header()[k] = v
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(f.status)
	io.WriteString(w, f.body)
}

func (f *fakeAdmin) got() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func newClient(t *testing.T, f http.Handler, key string) *adminclient.Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := adminclient.New(srv.URL, key, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	t0          = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sessionJSON = `{"id":"` + testID + `","subject":"a/b c","roles":["admin"],"created_at":"2026-03-01T12:00:00Z",` +
		`"last_seen_at":"2026-03-01T12:00:00Z","expires_at":"2026-03-02T12:00:00Z","idle_expires_at":"2026-03-01T13:00:00Z","metadata":{"ip":"192.0.2.1"}}`
	wantSession = &tether.Session{
		ID: testID, Subject: "a/b c", Roles: []string{"admin"}, CreatedAt: t0, LastSeenAt: t0,
		ExpiresAt: t0.Add(24 * time.Hour), IdleExpiresAt: t0.Add(time.Hour), Metadata: map[string]string{"ip": "192.0.2.1"},
	}
	keysJSON = `{"keys":[{"kid":"k1","alg":"EdDSA","created_at":"2026-03-01T12:00:00Z","state":"active"}]}`
	wantKeys = []adminclient.Key{{KID: "k1", Alg: "EdDSA", CreatedAt: t0, State: "active"}}
)

func TestMethods(t *testing.T) {
	type result struct {
		Token string
		Value any
	}
	tests := []struct {
		name   string
		status int
		resp   string
		do     func(context.Context, *adminclient.Client) (any, error)
		want   any
		call   call
	}{
		{
			name: "CreateSession all fields", status: 201, resp: `{"token":"` + testToken + `","session":` + sessionJSON + `}`,
			do: func(ctx context.Context, c *adminclient.Client) (any, error) {
				tok, s, err := c.CreateSession(ctx, adminclient.CreateSessionRequest{
					Subject: "alice", Roles: []string{"admin"}, TTL: time.Hour, IdleTTL: 30 * time.Minute,
					Metadata: map[string]string{"device": "cli"},
				})
				return result{tok, s}, err
			},
			want: result{testToken, wantSession},
			call: call{"POST", "/v1/sessions", "application/json", map[string]any{
				"subject": "alice", "roles": []any{"admin"}, "ttl": "1h0m0s", "idle_ttl": "30m0s",
				"metadata": map[string]any{"device": "cli"},
			}},
		},
		{
			name: "CreateSession nil roles are left out", status: 201, resp: `{"token":"` + testToken + `","session":` + sessionJSON + `}`,
			do: func(ctx context.Context, c *adminclient.Client) (any, error) {
				tok, s, err := c.CreateSession(ctx, adminclient.CreateSessionRequest{Subject: "alice"})
				return result{tok, s}, err
			},
			want: result{testToken, wantSession},
			call: call{"POST", "/v1/sessions", "application/json", map[string]any{"subject": "alice"}},
		},
		{
			name: "CreateSession empty roles clear", status: 201, resp: `{"token":"` + testToken + `","session":` + sessionJSON + `}`,
			do: func(ctx context.Context, c *adminclient.Client) (any, error) {
				tok, s, err := c.CreateSession(ctx, adminclient.CreateSessionRequest{Subject: "alice", Roles: []string{}})
				return result{tok, s}, err
			},
			want: result{testToken, wantSession},
			call: call{"POST", "/v1/sessions", "application/json", map[string]any{"subject": "alice", "roles": []any{}}},
		},
		{
			name: "GetSession", status: 200, resp: sessionJSON,
			do:   func(ctx context.Context, c *adminclient.Client) (any, error) { return c.GetSession(ctx, testID) },
			want: wantSession,
			call: call{Method: "GET", Path: "/v1/sessions/" + testID},
		},
		{
			name: "RevokeSession", status: 204,
			do: func(ctx context.Context, c *adminclient.Client) (any, error) {
				return nil, c.RevokeSession(ctx, testID)
			},
			call: call{Method: "DELETE", Path: "/v1/sessions/" + testID},
		},
		{
			name: "ListSessions escapes the subject", status: 200, resp: `{"sessions":[` + sessionJSON + `]}`,
			do:   func(ctx context.Context, c *adminclient.Client) (any, error) { return c.ListSessions(ctx, "a/b c") },
			want: []*tether.Session{wantSession},
			call: call{Method: "GET", Path: "/v1/subjects/a%2Fb%20c/sessions"},
		},
		{
			name: "RevokeSubject", status: 200, resp: `{"revoked":3}`,
			do:   func(ctx context.Context, c *adminclient.Client) (any, error) { return c.RevokeSubject(ctx, "a?b#c") },
			want: 3,
			call: call{Method: "DELETE", Path: "/v1/subjects/a%3Fb%23c/sessions"},
		},
		{
			name: "SetRoles", status: 200, resp: `{"subject":"alice","roles":["admin","editor"]}`,
			do: func(ctx context.Context, c *adminclient.Client) (any, error) {
				return c.SetRoles(ctx, "alice", []string{"admin", "editor"})
			},
			want: []string{"admin", "editor"},
			call: call{"PUT", "/v1/subjects/alice/roles", "application/json", map[string]any{"roles": []any{"admin", "editor"}}},
		},
		{
			name: "SetRoles nil clears with []", status: 200, resp: `{"subject":"alice","roles":[]}`,
			do:   func(ctx context.Context, c *adminclient.Client) (any, error) { return c.SetRoles(ctx, "alice", nil) },
			want: []string{},
			call: call{"PUT", "/v1/subjects/alice/roles", "application/json", map[string]any{"roles": []any{}}},
		},
		{
			name: "Introspect puts the token in the body", status: 200, resp: `{"active":true,"sub":"alice","exp":1772452800}`,
			do:   func(ctx context.Context, c *adminclient.Client) (any, error) { return c.Introspect(ctx, testToken) },
			want: map[string]any{"active": true, "sub": "alice", "exp": json.Number("1772452800")},
			call: call{"POST", "/v1/introspect", "application/x-www-form-urlencoded", "token=" + testToken},
		},
		{
			name: "Keys", status: 200, resp: keysJSON,
			do:   func(ctx context.Context, c *adminclient.Client) (any, error) { return c.Keys(ctx) },
			want: wantKeys,
			call: call{Method: "GET", Path: "/v1/keys"},
		},
		{
			name: "RotateKeys", status: 200, resp: keysJSON,
			do:   func(ctx context.Context, c *adminclient.Client) (any, error) { return c.RotateKeys(ctx) },
			want: wantKeys,
			call: call{Method: "POST", Path: "/v1/keys/rotate"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAdmin{status: tt.status, body: tt.resp}
			got, err := tt.do(t.Context(), newClient(t, f, testKey))
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]call{tt.call}, f.got()); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPathEscapingThroughServeMux checks the escaping against the router the
// server uses, not just against a string.
func TestPathEscapingThroughServeMux(t *testing.T) {
	for _, subject := range []string{"a/b c", "a//b", "/x", "x/", "a/../b", "%2F", "a?b#c", "é", "a+b"} {
		t.Run(subject, func(t *testing.T) {
			var got string
			mux := http.NewServeMux()
			mux.HandleFunc("GET /v1/subjects/{subject}/sessions", func(w http.ResponseWriter, r *http.Request) {
				got = r.PathValue("subject")
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"sessions":[]}`)
			})
			if _, err := newClient(t, mux, testKey).ListSessions(t.Context(), subject); err != nil {
				t.Fatal(err)
			}
			if got != subject {
				t.Errorf("server saw subject %q, want %q", got, subject)
			}
		})
	}
}

func TestAPIErrors(t *testing.T) {
	tests := []struct {
		name   string
		key    string
		status int
		header http.Header
		resp   string
		want   adminclient.APIError
		is     error
	}{
		{name: "401 wrong key", key: "wrong-key-0123456789", want: adminclient.APIError{Status: 401, Code: "unauthenticated", Message: "Unauthorized"}},
		{name: "404", status: 404, resp: `{"error":"not_found","message":"no such session"}`,
			want: adminclient.APIError{Status: 404, Code: "not_found", Message: "no such session"}, is: tether.ErrNotFound},
		{name: "400 with message", status: 400, resp: `{"error":"bad_request","message":"invalid duration \"1y\""}`,
			want: adminclient.APIError{Status: 400, Code: "bad_request", Message: `invalid duration "1y"`}, is: tether.ErrBadInput},
		{name: "503", status: 503, header: http.Header{"Retry-After": {"2"}},
			resp: `{"error":"unavailable","message":"the session store is unavailable; try again"}`,
			want: adminclient.APIError{Status: 503, Code: "unavailable", Message: "the session store is unavailable; try again", RetryAfter: 2 * time.Second},
			is:   tether.ErrUnavailable},
		{name: "429", status: 429, header: http.Header{"Retry-After": {"30"}}, resp: `{"error":"rate_limited","message":"too many failed admin authentications"}`,
			want: adminclient.APIError{Status: 429, Code: "rate_limited", Message: "too many failed admin authentications", RetryAfter: 30 * time.Second}},
		{name: "proxy HTML is not shown", status: 502, header: http.Header{"Content-Type": {"text/html"}}, resp: "<html>bad gateway " + testKey + "</html>",
			want: adminclient.APIError{Status: 502, Message: "Bad Gateway"}},
		{name: "redirect is not followed", status: 307, header: http.Header{"Location": {"http://elsewhere.invalid/"}},
			want: adminclient.APIError{Status: 307, Message: "unexpected redirect (is --server the admin API's address?)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := testKey
			if tt.key != "" {
				key = tt.key
			}
			f := &fakeAdmin{status: tt.status, body: tt.resp, header: tt.header}
			_, err := newClient(t, f, key).ListSessions(t.Context(), "alice")
			var ae *adminclient.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("got error %v (%T), want an *APIError", err, err)
			}
			if diff := cmp.Diff(tt.want, *ae); diff != "" {
				t.Errorf("APIError (-want +got):\n%s", diff)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false, want true", err, tt.is)
			}
			for _, other := range []error{tether.ErrNotFound, tether.ErrBadInput, tether.ErrUnavailable} {
				if other != tt.is && errors.Is(err, other) {
					t.Errorf("errors.Is(%v, %v) = true, want false", err, other)
				}
			}
			if strings.Contains(err.Error(), key) {
				t.Errorf("error %q holds the admin key", err)
			}
		})
	}
}

// TestSecretsNeverInErrors makes a server echo both secrets back.
func TestSecretsNeverInErrors(t *testing.T) {
	f := &fakeAdmin{status: 400, body: `{"error":"bad_request","message":"token ` + testToken + ` with key ` + testKey + `"}`}
	_, err := newClient(t, f, testKey).Introspect(t.Context(), testToken)
	if err == nil {
		t.Fatal("got no error, want one")
	}
	for _, secret := range []string{testKey, testToken} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q holds a secret", err)
		}
	}
	var ae *adminclient.APIError
	if !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("got %v, want a 400 *APIError", err)
	}
}

func TestRefusedBeforeSending(t *testing.T) {
	tests := []struct {
		name string
		do   func(context.Context, *adminclient.Client) error
	}{
		{"token as session ID", func(ctx context.Context, c *adminclient.Client) error {
			_, err := c.GetSession(ctx, testToken)
			return err
		}},
		{"token as ID to revoke", func(ctx context.Context, c *adminclient.Client) error { return c.RevokeSession(ctx, testToken) }},
		{"malformed ID", func(ctx context.Context, c *adminclient.Client) error { return c.RevokeSession(ctx, "../keys/rotate") }},
		{"empty ID", func(ctx context.Context, c *adminclient.Client) error { return c.RevokeSession(ctx, "") }},
		{"empty subject", func(ctx context.Context, c *adminclient.Client) error {
			_, err := c.ListSessions(ctx, "")
			return err
		}},
		{"dot-dot subject", func(ctx context.Context, c *adminclient.Client) error {
			_, err := c.RevokeSubject(ctx, "..")
			return err
		}},
		{"dot subject", func(ctx context.Context, c *adminclient.Client) error {
			_, err := c.SetRoles(ctx, ".", nil)
			return err
		}},
		{"empty token", func(ctx context.Context, c *adminclient.Client) error {
			_, err := c.Introspect(ctx, "")
			return err
		}},
		{"create without subject", func(ctx context.Context, c *adminclient.Client) error {
			_, _, err := c.CreateSession(ctx, adminclient.CreateSessionRequest{})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAdmin{status: 200, body: `{}`}
			err := tt.do(t.Context(), newClient(t, f, testKey))
			if !errors.Is(err, tether.ErrBadInput) {
				t.Errorf("got error %v, want tether.ErrBadInput", err)
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q repeats the token", err)
			}
			if n := len(f.got()); n != 0 {
				t.Errorf("server got %d requests, want 0", n)
			}
		})
	}
}

func TestBadResponses(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header http.Header
		resp   string
		do     func(context.Context, *adminclient.Client) error
		want   string
	}{
		{name: "too large", status: 200, resp: `{"sessions":[` + strings.Repeat(" ", adminclient.MaxResponseBytes) + `]}`,
			do: func(ctx context.Context, c *adminclient.Client) error {
				_, err := c.ListSessions(ctx, "alice")
				return err
			}, want: "larger than"},
		{name: "not JSON", status: 200, header: http.Header{"Content-Type": {"text/html"}}, resp: "<html></html>",
			do: func(ctx context.Context, c *adminclient.Client) error {
				_, err := c.Keys(ctx)
				return err
			}, want: "want application/json"},
		{name: "malformed JSON", status: 200, resp: `{"keys":[`,
			do: func(ctx context.Context, c *adminclient.Client) error {
				_, err := c.Keys(ctx)
				return err
			}, want: "malformed response"},
		{name: "create without token", status: 201, resp: `{"session":` + sessionJSON + `}`,
			do: func(ctx context.Context, c *adminclient.Client) error {
				_, _, err := c.CreateSession(ctx, adminclient.CreateSessionRequest{Subject: "alice"})
				return err
			}, want: "no token or session"},
		{name: "revoke-all without count", status: 200, resp: `{}`,
			do: func(ctx context.Context, c *adminclient.Client) error {
				_, err := c.RevokeSubject(ctx, "alice")
				return err
			}, want: `no "revoked" count`},
		{name: "introspect without active", status: 200, resp: `{"sub":"alice"}`,
			do: func(ctx context.Context, c *adminclient.Client) error {
				_, err := c.Introspect(ctx, testToken)
				return err
			}, want: `no "active" flag`},
		{name: "unexpected success status", status: 200, resp: `{}`,
			do:   func(ctx context.Context, c *adminclient.Client) error { return c.RevokeSession(ctx, testID) },
			want: "admin API: 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAdmin{status: tt.status, body: tt.resp, header: tt.header}
			err := tt.do(t.Context(), newClient(t, f, testKey))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	}))
	defer srv.Close()
	c, err := adminclient.New(srv.URL, testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-started; cancel() }()
	_, err = c.Keys(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got error %v, want context.Canceled", err)
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	c, err := adminclient.New(url, testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Introspect(t.Context(), testToken)
	if err == nil {
		t.Fatal("got no error, want one")
	}
	if strings.Contains(err.Error(), testKey) || strings.Contains(err.Error(), testToken) {
		t.Errorf("error %q holds a secret", err)
	}
}

func TestBaseURLPrefix(t *testing.T) {
	f := &fakeAdmin{status: 200, body: keysJSON}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := adminclient.New(srv.URL+"/admin/", testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Keys(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := f.got()[0].Path; got != "/admin/v1/keys" {
		t.Errorf("path %q, want /admin/v1/keys", got)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name, url, key string
		ok             bool
	}{
		{"ok", "http://127.0.0.1:8081", testKey, true},
		{"https with prefix", "https://admin.example/tether/", testKey, true},
		{"no scheme", "127.0.0.1:8081", testKey, false},
		{"ftp", "ftp://127.0.0.1", testKey, false},
		{"no host", "http://", testKey, false},
		{"credentials in URL", "http://user:" + testKey + "@127.0.0.1", testKey, false},
		{"query", "http://127.0.0.1?x=1", testKey, false},
		{"unparsable", "http://[::1", testKey, false},
		{"empty key", "http://127.0.0.1", "", false},
		{"key with newline", "http://127.0.0.1", testKey + "\n", false},
		{"key with space", "http://127.0.0.1", "a b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := adminclient.New(tt.url, tt.key, nil)
			if (err == nil) != tt.ok {
				t.Fatalf("New(%q) error = %v, want ok=%v", tt.url, err, tt.ok)
			}
			if err != nil && (c != nil || strings.Contains(err.Error(), testKey)) {
				t.Errorf("New: got client %v and error %q, want nil and no key in the error", c, err)
			}
		})
	}
}
