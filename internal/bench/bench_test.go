package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
)

// HTTPLoads gives every target its share in turn, round after round, and
// counts what each one answered.
func TestHTTPLoads(t *testing.T) {
	var mu sync.Mutex
	var order []int // target of each request, as the servers saw them
	var targets []Target
	for i, status := range []int{http.StatusOK, http.StatusOK, http.StatusTeapot} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			w.WriteHeader(status)
		}))
		t.Cleanup(srv.Close)
		targets = append(targets, Target{URL: srv.URL, Token: "tok"})
	}
	// 200 ms a slice: long enough that every slice gets requests even on a
	// machine busy with other tests.
	const rounds = 3
	loads := HTTPLoads(context.Background(), targets, http.StatusOK, 2, 600*time.Millisecond, rounds, nil)
	if len(loads) != len(targets) {
		t.Fatalf("got %d loads, want %d", len(loads), len(targets))
	}
	for i, l := range loads {
		if l.Requests == 0 || l.RPS <= 0 || l.P50 <= 0 || l.P99 < l.P50 || l.Elapsed < 500*time.Millisecond {
			t.Errorf("target %d: got %+v, want requests over about 600ms, 0 < p50 ≤ p99", i, l)
		}
		if runtime.GOOS == "linux" && l.CPUPerRequest <= 0 {
			t.Errorf("target %d: CPU per request %v, want it measured", i, l.CPUPerRequest)
		}
		wantErrs := i == 2 // the teapot answers what nobody wants
		if (l.Errors == l.Requests) != wantErrs || (l.Errors == 0) == wantErrs {
			t.Errorf("target %d: %d errors in %d requests, want all errors: %v", i, l.Errors, l.Requests, wantErrs)
		}
	}
	// Collapsed into runs, the order the servers saw shows each target
	// loaded once per round (a request cut off at the end of a slice may
	// arrive late and add a run, never take one away).
	mu.Lock()
	seen := append([]int(nil), order...)
	mu.Unlock()
	runs := map[int]int{}
	for j, target := range seen {
		if j == 0 || seen[j-1] != target {
			runs[target]++
		}
	}
	for i := range targets {
		if runs[i] < rounds {
			t.Errorf("target %d was loaded in %d runs, want %d rounds", i, runs[i], rounds)
		}
	}
}

// HTTPRequestLoads gives every target exactly n requests, however they split
// into rounds and clients.
func TestHTTPRequestLoads(t *testing.T) {
	for _, tc := range []struct{ n, conc, rounds int }{
		{n: 1, conc: 4, rounds: 3}, // fewer requests than rounds or clients
		{n: 100, conc: 3, rounds: 4},
		{n: 101, conc: 16, rounds: 1},
	} {
		var mu sync.Mutex
		seen := map[int]int{}
		var targets []Target
		for i := range 2 {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen[i]++
				mu.Unlock()
			}))
			t.Cleanup(srv.Close)
			targets = append(targets, Target{URL: srv.URL, Token: "tok"})
		}
		loads := HTTPRequestLoads(context.Background(), targets, http.StatusOK, tc.conc, tc.n, tc.rounds)
		for i, l := range loads {
			mu.Lock()
			got := seen[i]
			mu.Unlock()
			if l.Requests != tc.n || got != tc.n || l.Errors != 0 || l.RPS <= 0 {
				t.Errorf("%+v, target %d: load %+v, server saw %d; want %d requests, no errors", tc, i, l, got, tc.n)
			}
		}
	}
}
