package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/tracing"
	"github.com/tetherhq/tether/store/memstore"
)

// TestTracing: with tracing on, a request through either API is one span
// named by its route, and the store calls it made are its children.
func TestTracing(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := tracing.With(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	// No cache, so that every validation reads the store.
	m, err := tether.NewManager(tether.Config{Store: tether.TraceStore(st, tr.Tracer()), MaxStaleness: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	srv, err := api.New(api.Config{Manager: m, Admin: newAdmin(t), Tracing: tr})
	if err != nil {
		t.Fatal(err)
	}
	pub, adm := srv.Public(), srv.Admin()
	token, sess, err := m.Create(t.Context(), tether.CreateParams{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + token

	tests := []struct {
		name      string
		h         http.Handler
		r         *http.Request
		wantSpan  string
		wantStore []string // among its children
	}{
		{"validation", pub, req(http.MethodGet, "/v1/session", nil, "Authorization", bearer),
			"GET /v1/session", []string{"store.Get", "store.Roles"}},
		{"admin create", adm, req(http.MethodPost, "/v1/sessions", strings.NewReader(`{"subject":"bob"}`), "Authorization", "Bearer "+testAdminKey),
			"POST /v1/sessions", []string{"store.Create"}},
		{"admin revoke", adm, req(http.MethodDelete, "/v1/sessions/"+sess.ID, nil, "Authorization", "Bearer "+testAdminKey),
			"DELETE /v1/sessions/{id}", []string{"store.Delete"}},
		{"events", adm, req(http.MethodGet, "/v1/events?subject=alice", nil, "Authorization", "Bearer "+testAdminKey),
			"GET /v1/events", []string{"store.Events"}},
		{"no such route", pub, req(http.MethodGet, "/nope", nil), "GET", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(rec.Ended())
			if w := serve(tt.h, tt.r); w.Code >= 500 {
				t.Fatalf("%s %s: %d %s", tt.r.Method, tt.r.URL, w.Code, w.Body)
			}
			spans := rec.Ended()[before:]
			i := slices.IndexFunc(spans, func(s sdktrace.ReadOnlySpan) bool { return !s.Parent().IsValid() })
			if i < 0 {
				t.Fatalf("no root span among %d", len(spans))
			}
			root := spans[i]
			if root.Name() != tt.wantSpan {
				t.Errorf("route span %q, want %q", root.Name(), tt.wantSpan)
			}
			var children []string
			for _, s := range spans {
				if s.Parent().SpanID() == root.SpanContext().SpanID() {
					children = append(children, s.Name())
				}
			}
			for _, want := range tt.wantStore {
				if !slices.Contains(children, want) {
					t.Errorf("children %v lack %s", children, want)
				}
			}
		})
	}
}
