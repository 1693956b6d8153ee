package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/adminauth"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/store/memstore"
)

const testAdminKey = "api-test-admin-key-0123456789abcdef"

// env is one server on a fresh memstore: its own store, Manager, limiters and
// log, so that no test sees another's rate-limit buckets or sessions.
type env struct {
	store *memstore.Store
	m     *tether.Manager
	pub   http.Handler
	adm   http.Handler
	log   *lockedBuffer
}

func newEnv(t testing.TB) *env {
	t.Helper()
	st := memstore.New()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := tether.NewManager(tether.Config{Store: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	admin := newAdmin(t)
	admin.RecordFailures(m) // as serve does
	srv, err := api.New(api.Config{Manager: m, Admin: admin, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// Every response of every handler test is checked against the OpenAPI documents.
	e := &env{store: st, m: m, pub: validated(t, "public", srv.Public()), adm: validated(t, "admin", srv.Admin()), log: logs}
	t.Cleanup(func() {
		m.Close()
		st.Close()
		// Every request of every test runs at debug level, so this is the
		// widest view of what the server logs: never a token or the admin key.
		out := logs.String()
		for _, secret := range []string{tether.TokenPrefix, testAdminKey} {
			if strings.Contains(out, secret) {
				t.Errorf("the log contains %q:\n%s", secret, out)
			}
		}
	})
	return e
}

// newAdmin is the admin authenticator for testAdminKey, fresh per test.
func newAdmin(t testing.TB) *adminauth.Authenticator {
	t.Helper()
	a, err := adminauth.New(testAdminKey)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// lockedBuffer is a bytes.Buffer that the server's goroutines and the test
// may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// req builds a request; header is a list of name, value pairs. The remote
// address is httptest's default (192.0.2.1) unless a "RemoteAddr" pair sets it.
func req(method, target string, body io.Reader, header ...string) *http.Request {
	r := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(header); i += 2 {
		switch header[i] {
		case "RemoteAddr":
			r.RemoteAddr = header[i+1]
		case "Host":
			r.Host = header[i+1]
		default:
			r.Header.Add(header[i], header[i+1])
		}
	}
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// admin calls the admin API with the admin key and a JSON body.
func (e *env) admin(method, target, body string, header ...string) *httptest.ResponseRecorder {
	h := append([]string{"Authorization", "Bearer " + testAdminKey, "Content-Type", "application/json"}, header...)
	return serve(e.adm, req(method, target, strings.NewReader(body), h...))
}

// bearer calls the public API with a token.
func (e *env) bearer(method, target, token string, header ...string) *httptest.ResponseRecorder {
	return serve(e.pub, req(method, target, nil, append([]string{"Authorization", "Bearer " + token}, header...)...))
}

// introspect posts an RFC 7662 form.
func (e *env) introspect(form url.Values) *httptest.ResponseRecorder {
	return serve(e.adm, req(http.MethodPost, "/v1/introspect", strings.NewReader(form.Encode()),
		"Authorization", "Bearer "+testAdminKey, "Content-Type", "application/x-www-form-urlencoded"))
}

type created struct {
	Token   string         `json:"token"`
	Session tether.Session `json:"session"`
}

// create makes a session through the admin API and fails the test otherwise.
func (e *env) create(t *testing.T, body string) created {
	t.Helper()
	w := e.admin(http.MethodPost, "/v1/sessions", body)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST /v1/sessions %s: got %d %s, want 201", body, w.Code, w.Body)
	}
	return decode[created](t, w)
}

// status returns the status whoami gives token.
func (e *env) status(token string) int {
	return e.bearer(http.MethodGet, "/v1/session", token).Code
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", w.Body, err)
	}
	return v
}

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// wantError checks an error response: status, JSON code and, when msg is not
// empty, that the message mentions it.
func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, code, msg string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("got status %d (%s), want %d", w.Code, w.Body, status)
	}
	got := decode[errorBody](t, w)
	if got.Error != code {
		t.Errorf("error code: got %q, want %q", got.Error, code)
	}
	if !strings.Contains(got.Message, msg) {
		t.Errorf("message: got %q, want it to mention %q", got.Message, msg)
	}
}
