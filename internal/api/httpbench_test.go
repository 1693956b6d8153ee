package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/bench"
	"github.com/tetherhq/tether/internal/server"
	"github.com/tetherhq/tether/store/memstore"
)

// benchConc is how many keep-alive clients load each server, as in
// `tether bench`.
const benchConc = 16

// BenchmarkVsBare loads GET /v1/session and /v1/authz on the public API,
// served as `tether serve` serves it (internal/server's limits, info-level
// logging, metrics, a cached session), each against a bare net/http handler
// that answers the same token with the same body and headers from a map,
// side by side in one run: both take turns, b.N requests each, from the
// same clients. It reports each server's req/s and the process's CPU time
// per request (load generator included, and the same for both), and
// tether÷bare for both.
//
//	go test -run '^$' -bench VsBare -benchtime 40000x ./internal/api/
func BenchmarkVsBare(b *testing.B) {
	st := memstore.New()
	b.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewJSONHandler(io.Discard, nil)) // serve's default level: info
	m, err := tether.NewManager(tether.Config{Store: st, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	srv, err := api.New(api.Config{Manager: m, Admin: newAdmin(b), Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	token, _, err := m.Create(context.Background(), tether.CreateParams{Subject: "bench", Roles: []string{"admin"}})
	if err != nil {
		b.Fatal(err)
	}
	base := serveBench(b, srv.Public(), true)
	for _, route := range []struct{ name, path string }{{"session", "/v1/session"}, {"authz", "/v1/authz/app"}} {
		b.Run(route.name, func(b *testing.B) { sideBySide(b, base+route.path, token) })
	}
}

// sideBySide loads url with token beside a bare handler that answers what
// url answered, byte for byte, from a sync.Map of tokens.
func sideBySide(b *testing.B, url, token string) {
	body, header := getOK(b, url, token)
	sessions := sync.Map{}
	sessions.Store(token, body)
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := sessions.Load(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h := w.Header()
		for k, vs := range header {
			h[k] = vs
		}
		w.Write(v.([]byte))
	})
	bareURL := serveBench(b, bare, false) + "/"
	if got, _ := getOK(b, bareURL, token); !bytes.Equal(got, body) {
		b.Fatalf("the bare handler answers %q, tether %q", got, body)
	}

	b.ResetTimer()
	loads := bench.HTTPRequestLoads(b.Context(), []bench.Target{{URL: url, Token: token}, {URL: bareURL, Token: token}},
		http.StatusOK, benchConc, b.N, 8)
	b.StopTimer()
	t, f := loads[0], loads[1]
	if t.Errors+f.Errors > 0 {
		b.Fatalf("errors: tether %d, bare %d", t.Errors, f.Errors)
	}
	b.ReportMetric(t.RPS, "tether-req/s")
	b.ReportMetric(f.RPS, "bare-req/s")
	b.ReportMetric(t.RPS/f.RPS, "tether/bare-req/s")
	if t.CPUPerRequest > 0 && f.CPUPerRequest > 0 {
		b.ReportMetric(float64(t.CPUPerRequest.Nanoseconds()), "tether-cpu-ns/req")
		b.ReportMetric(float64(f.CPUPerRequest.Nanoseconds()), "bare-cpu-ns/req")
		b.ReportMetric(float64(f.CPUPerRequest)/float64(t.CPUPerRequest), "bare/tether-cpu")
	}
}

// serveBench serves h on loopback, with serve's timeouts, and behind
// internal/server's limits when limited (as serve does for the public API).
func serveBench(b *testing.B, h http.Handler, limited bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 32 << 10}
	if !limited {
		go hs.Serve(ln)
		b.Cleanup(func() { hs.Close() })
		return "http://" + ln.Addr().String()
	}
	s := server.New("public", hs, ln, server.Limits{}, slog.New(slog.DiscardHandler))
	go s.Serve()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

// getOK returns the body and the headers, less those net/http sets itself,
// of a 200 to GET url with token.
func getOK(b *testing.B, url, token string) ([]byte, http.Header) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %s %v", url, resp.StatusCode, body, err)
	}
	h := resp.Header.Clone()
	for _, k := range []string{"Date", "Content-Length"} {
		h.Del(k)
	}
	if len(h) < 4 { // Cache-Control, the three security headers, and the route's own
		b.Fatalf("%s answered only the headers %v", url, h)
	}
	return body, h
}

// GET /v1/session writes its body without encoding/json's Encoder, but must
// answer exactly what it would: the session's JSON and a newline.
func TestWhoamiBodyIsEncoderOutput(t *testing.T) {
	e := newEnv(t)
	for _, body := range []string{
		`{"subject":"alice"}`,
		`{"subject":"bob <b@example.com>","roles":["admin","r&d"],"metadata":{"ip":"192.0.2.1","user_agent":"Mozilla/5.0 \u2028 ü"}}`,
	} {
		c := e.create(t, body)
		w := e.bearer(http.MethodGet, "/v1/session", c.Token)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: got %d %s", body, w.Code, w.Body)
		}
		sess, err := e.m.Validate(context.Background(), c.Token)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		json.NewEncoder(&want).Encode(sess)
		if !bytes.Equal(w.Body.Bytes(), want.Bytes()) {
			t.Errorf("%s:\ngot  %s\nwant %s", body, w.Body, want.Bytes())
		}
		for k, v := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"} {
			if got := w.Header().Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("%s: got %v, want %q", k, got, v)
			}
		}
	}
}

// The request counters are resolved once per route and status, and still
// count each request under its own labels.
func TestRequestCounters(t *testing.T) {
	e := newEnv(t)
	c := e.create(t, `{"subject":"alice"}`)
	for range 3 {
		e.status(c.Token)
	}
	for range 2 {
		e.status("tts_nope")
	}
	serve(e.pub, req(http.MethodGet, "/nowhere", nil))
	// A route seen for the first time from many goroutines at once: its
	// counter is added once and no count is lost.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				serve(e.pub, req(http.MethodGet, "/healthz", nil))
				serve(e.pub, req(http.MethodGet, "/nowhere", nil))
			}
		})
	}
	wg.Wait()
	w := e.admin(http.MethodGet, "/metrics", "")
	for _, want := range []string{
		`tether_http_requests_total{code="200",listener="public",route="GET /v1/session"} 3`,
		`tether_http_requests_total{code="401",listener="public",route="GET /v1/session"} 2`,
		`tether_http_requests_total{code="404",listener="public",route="unmatched"} 81`,
		`tether_http_requests_total{code="200",listener="public",route="GET /healthz"} 80`,
		`tether_http_requests_total{code="201",listener="admin",route="POST /v1/sessions"} 1`,
		`tether_validation_duration_seconds_count{result="ok"} 3`,
		`tether_validation_duration_seconds_count{result="invalid"} 2`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
