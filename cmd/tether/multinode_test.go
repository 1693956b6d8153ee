package main

// Multi-node end-to-end tests (issue 3, item 6): two real `tether serve`
// processes share one store, as two servers behind a load balancer would.
// Every backend runs the same checks: Redis, a Redis Cluster the test starts,
// and PostgreSQL.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/bench"
	"github.com/tetherhq/tether/internal/servicetest"
)

// propagationBound is the documented bound on how long another node may still
// accept a revoked session: the default max staleness. With the change
// channel up it is one pub/sub or NOTIFY hop, which the tests log.
const propagationBound = time.Second

// sharedBackend is a store that several nodes share.
type sharedBackend struct {
	name string
	url  func(t *testing.T) string // starts or creates what it needs; cleaned up with t
}

var sharedBackends = []sharedBackend{
	{"redis", func(t *testing.T) string {
		addr := servicetest.SharedRedis(t)
		return "redis://" + addr + "/0?prefix=" + servicetest.RedisPrefix(t, addr)
	}},
	{"redis-cluster", func(t *testing.T) string {
		return "redis+cluster://" + strings.Join(servicetest.StartRedisCluster(t), ",")
	}},
	{"postgres", func(t *testing.T) string { return servicetest.FreshPostgres(t) }},
}

// Handshake identities: the test mints as issuerA for audience nodeIssuer,
// which both nodes are.
const (
	issuerA    = "https://a.example"
	nodeIssuer = "https://b.example"
)

// handshakeSetup writes a shared HS256 key and a --config file that makes a
// node (identity nodeIssuer) trust issuerA with that key, and returns the
// config path and a Minter holding the same key.
func handshakeSetup(t *testing.T) (configPath string, minter *handshake.Minter) {
	t.Helper()
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	keyFile := filepath.Join(dir, "a-to-b.key")
	if err := os.WriteFile(keyFile, []byte(base64.RawURLEncoding.EncodeToString(secret)), 0o600); err != nil {
		t.Fatal(err)
	}
	configPath = filepath.Join(dir, "tether.yaml")
	yaml := fmt.Sprintf(`issuer: %q
handshake:
  trusted_issuers:
    - { issuer: %q, format: jwt, alg: HS256, key_file: %q }
`, nodeIssuer, issuerA, keyFile)
	if err := os.WriteFile(configPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	minter, err := handshake.NewMinter(issuerA, handshake.Config{
		Audiences: map[string]handshake.AudienceSpec{
			nodeIssuer: {Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: keyFile},
		},
	}, nil, dir, handshake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return configPath, minter
}

// whoami is GET /v1/session with token: the status, and the session on 200.
// It never fails the test, so goroutines may call it.
func whoami(n *node, token string) (int, *sessionJSON, error) {
	code, b, err := n.call(http.MethodGet, n.pub+"/v1/session", "Bearer "+token, "", "")
	if err != nil || code != http.StatusOK {
		return code, nil, err
	}
	var s sessionJSON
	if err := json.Unmarshal(b, &s); err != nil {
		return code, nil, err
	}
	return code, &s, nil
}

type sessionJSON struct {
	ID      string   `json:"id"`
	Subject string   `json:"subject"`
	Roles   []string `json:"roles"`
}

// metric reads one sample from the node's /metrics, by its full name with
// labels as printed (`tether_cache_lookups_total{outcome="hit"}`).
func metric(t *testing.T, n *node, series string) float64 {
	t.Helper()
	code, b := n.admin(http.MethodGet, "/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("metrics: got %d", code)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", series)
	return 0
}

const cacheHits = `tether_cache_lookups_total{outcome="hit"}`

// waitCached validates token on n until n serves it from its cache, which
// also proves that n's change channel is up (the cache fills only then).
// After that, only an invalidation (or the staleness bound) makes n refuse it.
func waitCached(t *testing.T, n *node, token string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		before := metric(t, n, cacheHits)
		if code, _ := n.bearer(http.MethodGet, "/v1/session", token); code != http.StatusOK {
			t.Fatalf("GET /v1/session: got %d, want 200", code)
		}
		if metric(t, n, cacheHits) > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the node never served the session from its cache (change channel down?)")
		}
		time.Sleep(5 * time.Millisecond) // waiting for the watch to come up
	}
}

// waitStatus polls GET /v1/session on n until it answers want, and returns
// when it did. It fails the test if deadline passes first.
func waitStatus(t *testing.T, n *node, token string, want int, deadline time.Time, what string) time.Time {
	t.Helper()
	for {
		code, _, err := whoami(n, token)
		now := time.Now()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if code == want {
			return now
		}
		if code != http.StatusOK {
			t.Fatalf("%s: got %d, want %d or 200 until then", what, code, want)
		}
		if now.After(deadline) {
			t.Fatalf("%s: still %d at the deadline", what, code)
		}
	}
}

// startPair starts two nodes on storeURL. Node 1 keeps the default cache
// (1 s staleness); node 2 would serve a cached entry for an hour, so that only
// the store's change channel can make it refuse a session in time.
func startPair(t *testing.T, storeURL string, extra ...string) (n1, n2 *node) {
	t.Helper()
	n1 = startNode(t, nodeSpec{args: append([]string{"--store", storeURL}, extra...)})
	n2 = startNode(t, nodeSpec{args: append([]string{"--store", storeURL, "--max-staleness", "1h"}, extra...)})
	return n1, n2
}

func TestMultiNode(t *testing.T) {
	for _, b := range sharedBackends {
		t.Run(b.name, func(t *testing.T) {
			needBinary(t)
			cfg, minter := handshakeSetup(t)
			n1, n2 := startPair(t, b.url(t), "--config", cfg)
			if got := n1.ready["store"]; !strings.HasPrefix(fmt.Sprint(got), strings.Split(b.name, "-")[0]) {
				t.Fatalf("ready line store: got %v, want %s", got, b.name)
			}
			testMultiNode(t, n1, n2, minter)
		})
	}
}

func testMultiNode(t *testing.T, n1, n2 *node, minter *handshake.Minter) {
	t.Run("session made on node 1 validates on node 2", func(t *testing.T) {
		token, id := n1.create(`{"subject":"alice","roles":["admin"]}`)
		code, s, err := whoami(n2, token)
		if err != nil || code != http.StatusOK || s.ID != id || s.Subject != "alice" || !slices.Equal(s.Roles, []string{"admin"}) {
			t.Fatalf("node 2: got %d %+v (%v), want 200 alice [admin] %s", code, s, err, id)
		}
	})

	t.Run("revoke on node 1 is refused by node 2", func(t *testing.T) {
		token, id := n1.create(`{"subject":"bob"}`)
		waitCached(t, n2, token)
		start := time.Now()
		if code, b := n1.admin(http.MethodDelete, "/v1/sessions/"+id, ""); code != http.StatusNoContent {
			t.Fatalf("revoke: got %d %s", code, b)
		}
		returned := time.Now()
		if code, _, _ := whoami(n1, token); code != http.StatusUnauthorized {
			t.Errorf("node 1 right after its own revoke: got %d, want 401", code)
		}
		refused := waitStatus(t, n2, token, http.StatusUnauthorized, returned.Add(propagationBound), "node 2 after the revoke")
		t.Logf("node 2 refused the revoked session %v after the revoke began, %v after it returned (bound %v)",
			refused.Sub(start), refused.Sub(returned), propagationBound)
	})

	t.Run("role change on node 1 shows on node 2", func(t *testing.T) {
		token, _ := n1.create(`{"subject":"carol","roles":["admin"]}`)
		waitCached(t, n2, token)
		if code, b := n1.admin(http.MethodPut, "/v1/subjects/carol/roles", `{"roles":["viewer"]}`); code != http.StatusOK {
			t.Fatalf("set roles: got %d %s", code, b)
		}
		returned := time.Now()
		deadline := returned.Add(propagationBound)
		for {
			code, s, err := whoami(n2, token)
			if err != nil || code != http.StatusOK {
				t.Fatalf("node 2: got %d (%v), want 200", code, err)
			}
			if slices.Equal(s.Roles, []string{"viewer"}) {
				t.Logf("node 2 saw the new roles %v after the change returned", time.Since(returned))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node 2 still shows roles %v %v after the change", s.Roles, propagationBound)
			}
		}
	})

	t.Run("revoke-all on node 2 kills node 1's sessions", func(t *testing.T) {
		var tokens []string
		for range 3 {
			token, _ := n1.create(`{"subject":"dave"}`)
			waitCached(t, n1, token)
			waitCached(t, n2, token)
			tokens = append(tokens, token)
		}
		code, b := n2.admin(http.MethodDelete, "/v1/subjects/dave/sessions", "")
		var r struct{ Revoked int }
		mustJSON(t, b, &r)
		if code != http.StatusOK || r.Revoked != 3 {
			t.Fatalf("revoke-all on node 2: got %d %s, want 200 with revoked 3", code, b)
		}
		returned := time.Now()
		for _, token := range tokens {
			if code, _, _ := whoami(n2, token); code != http.StatusUnauthorized {
				t.Errorf("node 2 right after its own revoke-all: got %d, want 401", code)
			}
			refused := waitStatus(t, n1, token, http.StatusUnauthorized, returned.Add(propagationBound), "node 1 after revoke-all on node 2")
			t.Logf("node 1 refused %v after the revoke-all returned", refused.Sub(returned))
		}
	})

	t.Run("handshake replay guard is shared", func(t *testing.T) {
		const rounds, presentations = 5, 20
		for round := range rounds {
			raw, _, _, err := minter.Mint(nodeIssuer, fmt.Sprintf("svc-%d", round))
			if err != nil {
				t.Fatal(err)
			}
			body := fmt.Sprintf(`{"token":%q}`, raw)
			codes := make([]int, presentations)
			tokens := make([]string, presentations)
			errs := make([]error, presentations)
			var wg sync.WaitGroup
			startGun := make(chan struct{})
			for i := range presentations {
				n := []*node{n1, n2}[i%2]
				wg.Go(func() {
					<-startGun
					code, b, err := n.call(http.MethodPost, n.pub+"/v1/handshakes/exchange", "", "application/json", body)
					codes[i], errs[i] = code, err
					if code == http.StatusCreated {
						var c struct{ Token string }
						if json.Unmarshal(b, &c) == nil {
							tokens[i] = c.Token
						}
					}
				})
			}
			close(startGun)
			wg.Wait()
			won := -1
			for i, code := range codes {
				switch {
				case errs[i] != nil:
					t.Errorf("round %d, presentation %d: %v", round, i, errs[i])
				case code == http.StatusCreated && won < 0:
					won = i
				case code == http.StatusCreated:
					t.Errorf("round %d: presentations %d and %d both got 201: the token was replayed", round, won, i)
				case code != http.StatusUnauthorized:
					t.Errorf("round %d, presentation %d: got %d, want 401", round, i, code)
				}
			}
			if won < 0 {
				t.Fatalf("round %d: no presentation got 201: %v", round, codes)
			}
			// The session it bought is an ordinary one, valid on both nodes.
			for _, n := range []*node{n1, n2} {
				if code, s, err := whoami(n, tokens[won]); code != http.StatusOK || s.Subject != fmt.Sprintf("svc-%d", round) {
					t.Errorf("round %d: the exchanged session: got %d %+v (%v), want 200", round, code, s, err)
				}
			}
			t.Logf("round %d: one 201 (node %d), %d × 401", round, won%2+1, presentations-1)
		}
	})
}

// TestMultiNodeRevocationHTTP measures revocation propagation over HTTP, the
// way an operator would see it: revoke through node 1's admin API, then poll
// node 2 (which holds the session in its cache and would keep it for an hour)
// until it answers 401. It runs ≥ 1,000 trials per backend with
// TETHER_BENCH=1 and a quick 100 otherwise; skipped under -short.
//
//	TETHER_BENCH=1 go test -run TestMultiNodeRevocationHTTP -v ./cmd/tether/
func TestMultiNodeRevocationHTTP(t *testing.T) {
	trials := 100
	if os.Getenv("TETHER_BENCH") == "1" {
		trials = 1000
	}
	for _, b := range sharedBackends {
		t.Run(b.name, func(t *testing.T) {
			needBinary(t)
			n1, n2 := startPair(t, b.url(t))
			token, _ := n1.create(`{"subject":"warm-up"}`)
			waitCached(t, n2, token) // the channel is up

			hits := metric(t, n2, cacheHits)
			fromStart := make([]time.Duration, 0, trials)
			fromReturn := make([]time.Duration, 0, trials)
			for i := range trials {
				token, id := n1.create(fmt.Sprintf(`{"subject":"prop-%d"}`, i))
				for range 2 { // the first fills node 2's cache, the second hits it
					if code, _, err := whoami(n2, token); code != http.StatusOK {
						t.Fatalf("trial %d: node 2 before the revoke: got %d (%v)", i, code, err)
					}
				}
				start := time.Now()
				if code, b := n1.admin(http.MethodDelete, "/v1/sessions/"+id, ""); code != http.StatusNoContent {
					t.Fatalf("trial %d: revoke: got %d %s", i, code, b)
				}
				returned := time.Now()
				refused := waitStatus(t, n2, token, http.StatusUnauthorized, returned.Add(propagationBound), "node 2 after the revoke")
				fromStart = append(fromStart, refused.Sub(start))
				fromReturn = append(fromReturn, refused.Sub(returned))
			}
			if got := metric(t, n2, cacheHits) - hits; got < float64(trials) {
				t.Fatalf("node 2 had %v cache hits in %d trials; want every trial's session cached", got, trials)
			}
			slices.Sort(fromStart)
			slices.Sort(fromReturn)
			t.Logf("%s, HTTP, %d trials: revoke start → node 2 refuses: p50 %v p99 %v max %v; revoke return → refuses: p50 %v p99 %v max %v",
				b.name, trials, pct(fromStart, 50), pct(fromStart, 99), fromStart[len(fromStart)-1],
				pct(fromReturn, 50), pct(fromReturn, 99), fromReturn[len(fromReturn)-1])
		})
	}
}

// pct is the p-th percentile of sorted durations, rounded to the µs.
func pct(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)-1)*p/100].Round(time.Microsecond)
}

// TestMultiNodeThroughput loads GET /v1/session on one node per backend, with
// the cache on (default 1 s staleness) and off (--max-staleness -1ns), using
// the same load generator as `tether bench`. Only with TETHER_BENCH=1, and
// without -race for meaningful numbers:
//
//	TETHER_BENCH=1 go test -run TestMultiNodeThroughput -v ./cmd/tether/
func TestMultiNodeThroughput(t *testing.T) {
	if os.Getenv("TETHER_BENCH") != "1" {
		t.Skip("set TETHER_BENCH=1 to measure throughput")
	}
	backends := append([]sharedBackend{{"bolt", func(t *testing.T) string {
		return "bolt://" + filepath.Join(t.TempDir(), "tether.db")
	}}}, sharedBackends...)
	conc, d := 16, 5*time.Second
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			needBinary(t)
			url := b.url(t)
			for _, c := range []struct{ name, staleness string }{{"cache on", "1s"}, {"cache off", "-1ns"}} {
				n := startNode(t, nodeSpec{args: []string{"--store", url, "--max-staleness", c.staleness}})
				token, _ := n.create(`{"subject":"load","roles":["admin"]}`)
				l := bench.HTTPLoad(context.Background(), n.pub+"/v1/session", token, http.StatusOK, conc, d, nil)
				t.Logf("%-14s %-9s %8.0f req/s  p50 %-9v p99 %-9v errors %d (%d clients, %v)",
					b.name, c.name, l.RPS, l.P50.Round(time.Microsecond), l.P99.Round(time.Microsecond), l.Errors, conc, d)
				if l.Errors > 0 {
					t.Errorf("%d errors under load", l.Errors)
				}
				n.stop() // before the next node: bolt is one process's, and the CPU is shared
				n.killed = true
			}
		})
	}
}
