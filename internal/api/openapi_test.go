package api_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/api/apitest"
)

// notAPI are the patterns that route to something other than JSON API
// operations, and why. Any other pattern must be documented.
var notAPI = map[string]string{
	"/account/": "the account pages (HTML)",
	"/admin/":   "the admin console (HTML)",
	"/":         "the admin listener's key check, in front of its API mux",
}

// TestOpenAPIServed: each listener serves its own document, without
// credentials, and it is a valid OpenAPI 3.1 document.
func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		listener string
		h        http.Handler
	}{{"public", e.pub}, {"admin", e.adm}} {
		t.Run(tt.listener, func(t *testing.T) {
			w := serve(tt.h, req(http.MethodGet, "/openapi.json", nil))
			if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("GET /openapi.json: got %d %s", w.Code, w.Header().Get("Content-Type"))
			}
			want, _ := api.OpenAPI(tt.listener)
			if !bytes.Equal(w.Body.Bytes(), want) {
				t.Error("the served document is not the embedded one")
			}
			doc := apitest.OpenAPISpec(t, tt.listener).Doc
			if doc.OpenAPI != "3.1.0" {
				t.Errorf("openapi: got %q, want 3.1.0", doc.OpenAPI)
			}
		})
	}
}

// TestOpenAPIMatchesRoutes: every pattern a listener registers is an operation
// of its document, and every operation of the document is routed. Routes are
// read from the real muxes, so a route added without documenting it fails here.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	srv, err := api.New(api.Config{Manager: newEnv(t).m, Admin: newAdmin(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv.Public()
	srv.Admin()
	for _, l := range apitest.Listeners {
		t.Run(l, func(t *testing.T) {
			doc := apitest.OpenAPISpec(t, l).Doc
			documented := map[string]bool{} // "METHOD /path"
			for path, item := range doc.Paths.Map() {
				for method := range item.Operations() {
					documented[method+" "+path] = true
				}
			}
			routed := map[string]bool{}
			for _, p := range srv.Routes(l) {
				method, path, ok := strings.Cut(p, " ")
				if !ok {
					method, path = "", p
				}
				if _, skip := notAPI[path]; skip && method == "" {
					continue
				}
				// Go's {name...} wildcard is OpenAPI's {name}.
				path = strings.ReplaceAll(path, "...}", "}")
				if method == "" { // any method: the path must be documented, with the methods it serves
					found := false
					for op := range documented {
						if strings.HasSuffix(op, " "+path) {
							routed[op], found = true, true
						}
					}
					if !found {
						t.Errorf("%s routes %q (any method), which its OpenAPI document lacks", l, p)
					}
					continue
				}
				routed[method+" "+path] = true
				if !documented[method+" "+path] {
					t.Errorf("%s routes %s %s, which its OpenAPI document lacks", l, method, path)
				}
			}
			for op := range documented {
				if !routed[op] {
					t.Errorf("the %s OpenAPI document has %s, which is not routed", l, op)
				}
			}
			if len(routed) < 5 {
				t.Fatalf("only %d routes recorded: %v", len(routed), srv.Routes(l))
			}
		})
	}
}

// validated wraps a listener's handler so that every response it gives to a
// request of a documented operation is checked against the document: status,
// headers and body. It is how the handler tests keep the documents true. The
// checks run when the test ends, so that they do not slow the test down (some
// count requests against rate limits). A fuzz target cannot report through
// its F, so its answers go unchecked here; they are the handler tests' shapes.
func validated(t testing.TB, listener string, h http.Handler) http.Handler {
	apitest.OpenAPISpec(t, listener)
	if _, fuzz := t.(*testing.F); fuzz {
		return h
	}
	type answer struct {
		r      *http.Request
		status int
		header http.Header
		body   []byte
	}
	var mu sync.Mutex
	var answers []answer
	t.Cleanup(func() {
		for _, a := range answers {
			checkResponse(t, listener, a.r, a.status, a.header, a.body)
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		mu.Lock()
		answers = append(answers, answer{r.Clone(context.Background()), rec.Code, rec.Header().Clone(), rec.Body.Bytes()})
		mu.Unlock()
	})
}

// checkResponse is apitest.CheckResponse, for the handler tests.
var checkResponse = apitest.CheckResponse

// TestOpenAPIValidatesResponses: the validator does reject what the document
// does not allow, so that a silent pass above means something.
func TestOpenAPIValidatesResponses(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/v1/session", nil)
	tests := []struct {
		name   string
		status int
		body   string
		ok     bool
	}{
		{"a session", 200, `{"id":"x","subject":"a","roles":[],"created_at":"2026-01-01T00:00:00Z","last_seen_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:00:00Z","idle_expires_at":"2026-01-01T00:00:00Z","metadata":{}}`, true},
		{"a session without roles", 200, `{"id":"x","subject":"a","created_at":"2026-01-01T00:00:00Z","last_seen_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:00:00Z","idle_expires_at":"2026-01-01T00:00:00Z","metadata":{}}`, false},
		{"a session with a token field", 200, `{"token":"t","id":"x","subject":"a","roles":[],"created_at":"2026-01-01T00:00:00Z","last_seen_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:00:00Z","idle_expires_at":"2026-01-01T00:00:00Z","metadata":{}}`, false},
		{"an error", 401, `{"error":"unauthenticated"}`, true},
		{"an error without its code", 503, `{"message":"x"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {"application/json"}}
			err := apitest.ResponseError(t, "public", r, tt.status, h, []byte(tt.body))
			if (err == nil) != tt.ok {
				t.Errorf("got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
