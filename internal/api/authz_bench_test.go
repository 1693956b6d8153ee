package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/forwardauth"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/store/memstore"
)

// BenchmarkAuthz sets /v1/authz with a cached session beside a bare net/http
// handler that looks the token up in a map and returns the same headers: the
// floor any forward-auth service sits on (issue 11, target ≥ 0.9× its
// throughput). Each runs in-process (ServeHTTP alone) and over loopback HTTP
// with keep-alive clients, which is what a proxy sees. Compare ns/op of the
// pairs: throughput is its inverse.
//
//	go test -run '^$' -bench Authz -benchtime 3s ./internal/api
func BenchmarkAuthz(b *testing.B) {
	// As `tether serve` runs: info-level logs, the default cache.
	st := memstore.New()
	defer st.Close()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	m, err := tether.NewManager(tether.Config{Store: st, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	srv, err := api.New(api.Config{Manager: m, AdminKey: testAdminKey, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	tok, sess, err := m.Create(ctx, tether.CreateParams{Subject: "alice", Roles: []string{"user", "admin"}, AuthTime: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Validate(ctx, tok); err != nil { // into the cache
		b.Fatal(err)
	}
	type identity struct{ subject, roles, id, authTime string }
	sessions := map[string]identity{tok: {"alice", "user,admin", sess.ID, sess.AuthTime.UTC().Format(time.RFC3339)}}
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := sessions[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set(forwardauth.HeaderSubject, id.subject)
		h.Set(forwardauth.HeaderRoles, id.roles)
		h.Set(forwardauth.HeaderSessionID, id.id)
		h.Set(forwardauth.HeaderAuthTime, id.authTime)
		w.WriteHeader(http.StatusOK)
	})
	handlers := []struct {
		name string
		h    http.Handler
	}{{"tether", srv.Public()}, {"bare", bare}}

	for _, hc := range handlers {
		b.Run("inprocess/"+hc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest(http.MethodGet, "/v1/authz", nil)
				r.RemoteAddr = "127.0.0.1:40000"
				r.Header.Set("Authorization", "Bearer "+tok)
				r.Header.Set("X-Forwarded-Method", "GET")
				r.Header.Set("X-Forwarded-Proto", "https")
				r.Header.Set("X-Forwarded-Host", "app.example.test")
				r.Header.Set("X-Forwarded-Uri", "/reports/2026?q=1")
				for pb.Next() {
					w := &discard{h: http.Header{}}
					hc.h.ServeHTTP(w, r)
					if w.status != http.StatusOK {
						b.Fatalf("status %d", w.status)
					}
				}
			})
		})
	}
	for _, hc := range handlers {
		b.Run("loopback/"+hc.name, func(b *testing.B) {
			srv := httptest.NewServer(hc.h)
			defer srv.Close()
			tr := &http.Transport{MaxIdleConnsPerHost: 256}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/authz", nil)
					r.Header.Set("Authorization", "Bearer "+tok)
					r.Header.Set("X-Forwarded-Method", "GET")
					r.Header.Set("X-Forwarded-Proto", "https")
					r.Header.Set("X-Forwarded-Host", "app.example.test")
					r.Header.Set("X-Forwarded-Uri", "/reports/2026?q=1")
					resp, err := client.Do(r)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		})
	}
	if st := m.Stats(); st.CacheHits == 0 {
		b.Errorf("no cache hits: %+v", st)
	}
}

// discard is a ResponseWriter that keeps only the status.
type discard struct {
	h      http.Header
	status int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(code int)        { d.status = code }
