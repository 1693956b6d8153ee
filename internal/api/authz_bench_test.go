package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
// throughput). In process (ServeHTTP alone: compare ns/op) and over loopback
// HTTP with 16 keep-alive clients, which is what a proxy sees (the ratio
// metric is tether's throughput over bare's).
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
	srv, err := api.New(api.Config{Manager: m, Admin: newAdmin(b), Logger: log})
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
	// Over loopback, the two servers take turns in small batches within each
	// iteration, so that load from elsewhere on a shared machine falls on both
	// alike; the metrics are each one's throughput and their ratio.
	b.Run("loopback", func(b *testing.B) {
		const workers, perWorker = 16, 25
		servers := make([]*httptest.Server, len(handlers))
		clients := make([]*http.Client, len(handlers))
		for i, hc := range handlers {
			servers[i] = httptest.NewServer(hc.h)
			defer servers[i].Close()
			tr := &http.Transport{MaxIdleConnsPerHost: workers}
			defer tr.CloseIdleConnections()
			clients[i] = &http.Client{Transport: tr}
		}
		busy := make([]time.Duration, len(handlers))
		for range b.N {
			for i := range handlers {
				start := time.Now()
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						for range perWorker {
							r, _ := http.NewRequest(http.MethodGet, servers[i].URL+"/v1/authz", nil)
							r.Header.Set("Authorization", "Bearer "+tok)
							r.Header.Set("X-Forwarded-Method", "GET")
							r.Header.Set("X-Forwarded-Proto", "https")
							r.Header.Set("X-Forwarded-Host", "app.example.test")
							r.Header.Set("X-Forwarded-Uri", "/reports/2026?q=1")
							resp, err := clients[i].Do(r)
							if err != nil {
								b.Error(err)
								return
							}
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							if resp.StatusCode != http.StatusOK {
								b.Errorf("%s: status %d", handlers[i].name, resp.StatusCode)
								return
							}
						}
					})
				}
				wg.Wait()
				busy[i] += time.Since(start)
			}
		}
		reqs := float64(b.N * workers * perWorker)
		tether, bare := reqs/busy[0].Seconds(), reqs/busy[1].Seconds()
		b.ReportMetric(tether, "tether-req/s")
		b.ReportMetric(bare, "bare-req/s")
		b.ReportMetric(tether/bare, "ratio")
	})
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
