package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSessions is the shared store behind fake nodes: just enough of the
// public and admin APIs for a soak.
type fakeSessions struct {
	mu       sync.Mutex
	sessions map[string]*fakeSession // by token

	down        atomic.Bool // the store is down: every call answers 503
	maxInflight int64       // past it, GET /v1/session is shed; 0: no limit
	inflight    atomic.Int64
}

type fakeSession struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
	revoked bool
}

// node returns a fake node; one that ignores revocations answers 200 for
// every token it ever issued.
func (f *fakeSessions) node(t *testing.T, key string, ignoreRevocations bool) SoakNode {
	mux := http.NewServeMux()
	authed := func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+key }
	mux.HandleFunc("GET /v1/session", func(w http.ResponseWriter, r *http.Request) {
		if n := f.inflight.Add(1); f.maxInflight > 0 && n > f.maxInflight {
			f.inflight.Add(-1)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		defer f.inflight.Add(-1)
		time.Sleep(100 * time.Microsecond) // so that a flood overlaps
		f.mu.Lock()
		s := f.sessions[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		ok := s != nil && (!s.revoked || ignoreRevocations)
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(s)
	})
	mux.HandleFunc("POST /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Subject string }
		if !authed(r) || json.NewDecoder(r.Body).Decode(&req) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		token, s := rand.Text(), &fakeSession{ID: rand.Text(), Subject: req.Subject}
		f.mu.Lock()
		f.sessions[token] = s
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"token": token, "session": s})
	})
	mux.HandleFunc("DELETE /v1/sessions/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, s := range f.sessions {
			if s.ID == r.PathValue("id") && authed(r) {
				s.revoked = true
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
	})
	mux.HandleFunc("PUT /v1/subjects/{subject}/roles", func(w http.ResponseWriter, r *http.Request) {
		if !authed(r) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{}`))
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return SoakNode{Public: srv.URL, Admin: srv.URL, PID: os.Getpid()}
}

func shortSoak(nodes []SoakNode, key string) SoakConfig {
	return SoakConfig{
		Nodes: nodes, AdminKey: key, Rate: 400, Duration: 1500 * time.Millisecond, Sessions: 20,
		RevokeEvery: 20 * time.Millisecond, RolesEvery: 50 * time.Millisecond, Staleness: 5 * time.Millisecond,
		Window: 500 * time.Millisecond, Sample: 200 * time.Millisecond, Workers: 8, RetryRevoked: 3,
	}
}

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs load for a second and a half")
	}
	f := &fakeSessions{sessions: map[string]*fakeSession{}}
	rep, err := Soak(context.Background(), shortSoak([]SoakNode{f.node(t, "k", false), f.node(t, "k", false)}, "k"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 0 {
		t.Errorf("got %d errors (%v), want 0", rep.Errors, rep.ErrorKinds)
	}
	// The rate is held, give or take the scheduling of a loaded test machine
	// (a late timer stretches the run): well under what 8 unpaced workers do.
	if rep.Requests < 400 || rep.Requests > 900 {
		t.Errorf("got %d requests in 1.5 s at 400/s", rep.Requests)
	}
	if rep.Revocations == 0 || rep.RoleChanges == 0 || rep.RevokedRefused == 0 {
		t.Errorf("got %d revocations, %d role changes, %d refused revoked tokens; want each > 0",
			rep.Revocations, rep.RoleChanges, rep.RevokedRefused)
	}
	if len(rep.Windows) < 3 {
		t.Errorf("got %d windows, want 3 of 500 ms", len(rep.Windows))
	}
	if len(rep.Memory) < 5 || rep.Memory[0].RSSBytes[0] <= 0 {
		t.Errorf("memory samples: got %+v, want ≥ 5 with this process's RSS", rep.Memory)
	}
	var b strings.Builder
	WriteSoakReport(&b, rep)
	for _, want := range []string{"errors: 0", "| from |", "node 2 RSS", "MiB", "Resident memory from"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// A node that keeps accepting revoked sessions is caught.
func TestSoakCatchesStaleAccepts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs load for a second and a half")
	}
	f := &fakeSessions{sessions: map[string]*fakeSession{}}
	rep, err := Soak(context.Background(), shortSoak([]SoakNode{f.node(t, "k", false), f.node(t, "k", true)}, "k"))
	if err != nil {
		t.Fatal(err)
	}
	stale := int64(0)
	for kind, n := range rep.ErrorKinds {
		if strings.HasPrefix(kind, "200 for a session revoked") {
			stale += n
		}
	}
	if stale == 0 || stale != rep.Errors {
		t.Errorf("got %d errors (%v), want only, and some, 200s for revoked sessions", rep.Errors, rep.ErrorKinds)
	}
}

func TestSoakRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1:8080", "http://localhost:8080", "http://example.com", "://"} {
		_, err := Soak(context.Background(), SoakConfig{Nodes: []SoakNode{{Public: u, Admin: "http://127.0.0.1:1"}}})
		if err == nil {
			t.Errorf("Soak against %q: no error, want a refusal", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://[::1]:8080"} {
		if err := checkLoopback(u); err != nil {
			t.Errorf("checkLoopback(%q) = %v, want nil", u, err)
		}
	}
}

func TestRSS(t *testing.T) {
	if got := RSS(os.Getpid()); got <= 0 {
		t.Errorf("RSS(self) = %d, want > 0", got)
	}
	if got := RSS(0); got != -1 {
		t.Errorf("RSS(0) = %d, want -1", got)
	}
}

// Faults: errors while the store is down count against that fault, not the
// run; a flood's shed requests are counted; the chart draws it all.
func TestSoakWithFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs load for three seconds")
	}
	f := &fakeSessions{sessions: map[string]*fakeSession{}, maxInflight: 4}
	cfg := shortSoak([]SoakNode{f.node(t, "k", false), f.node(t, "k", false)}, "k")
	cfg.Duration, cfg.Settle = 3*time.Second, 50*time.Millisecond
	cfg.Faults = []SoakFault{
		{Name: "store down", At: 300 * time.Millisecond, Do: func(ctx context.Context) error {
			f.down.Store(true)
			defer f.down.Store(false)
			select {
			case <-time.After(300 * time.Millisecond):
			case <-ctx.Done():
			}
			return nil
		}},
		// Long enough for the flood to pass the fake's limit even when the
		// machine is busy with other tests.
		{Name: "flood", At: 1200 * time.Millisecond, Flood: 32, For: time.Second},
	}
	rep, err := Soak(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 0 {
		t.Errorf("run errors: got %d (%v), want 0: the store-down errors belong to the fault", rep.Errors, rep.ErrorKinds)
	}
	if len(rep.Faults) != 2 {
		t.Fatalf("faults: got %+v, want 2", rep.Faults)
	}
	down, flood := rep.Faults[0], rep.Faults[1]
	if down.Name != "store down" || down.Errors == 0 || down.End-down.Start < 250*time.Millisecond {
		t.Errorf("store-down fault: got %+v, want errors counted over ~300ms", down)
	}
	if rep.FaultErrors < down.Errors {
		t.Errorf("FaultErrors %d < the fault's own %d", rep.FaultErrors, down.Errors)
	}
	if flood.FloodRequests == 0 || flood.FloodShed == 0 {
		t.Errorf("flood: got %+v, want requests and some shed past the fake's in-flight limit", flood)
	}

	var b strings.Builder
	WriteSoakReport(&b, rep)
	for _, want := range []string{"| fault |", "store down", "flood", "fault errors"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	var svg strings.Builder
	if err := SoakChart(&svg, rep); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(svg.String()))
	for {
		if _, err := dec.Token(); err != nil {
			if err != io.EOF {
				t.Fatalf("the chart is not well-formed XML: %v", err)
			}
			break
		}
	}
	for _, want := range []string{"<svg", "store down", "p99 latency", "resident memory", "node 2"} {
		if !strings.Contains(svg.String(), want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}
