package handshake

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/jwtcore"
)

// liveClock is real time plus a settable offset: it moves on its own, as
// the JWKS rate limit and the waits behind it need, and jumps when a test
// skips ahead (past a key's overlap).
type liveClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *liveClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *liveClock) Skip(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// jwtKid returns the kid in a compact JWS header ("?" if it has none).
func jwtKid(tok string) string {
	u, err := jwtcore.Parse(tok)
	if err != nil || u.Header.Kid == "" {
		return "?"
	}
	return u.Header.Kid
}

// TestRotationUnderLoad: issuer A signs EdDSA and ES256 JWTs with its key
// ring while the ring rotates; B verifies through A's JWKS (an httptest
// server serving the ring's current set). No validly minted token may fail,
// however soon after a rotation it arrives at B: B refetches the JWKS on the
// unknown kid. After the overlap, a fresh token signed with a retired key is
// refused as an unknown kid, and the active keys still verify.
func TestRotationUnderLoad(t *testing.T) {
	clk := &liveClock{}
	dir := t.TempDir()
	ring, err := LoadKeyRing(filepath.Join(dir, "ring-a"), Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var jwksFetches atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		jwksFetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(ring.JWKS())
	}))
	t.Cleanup(srv.Close)

	algs := []string{AlgEdDSA, AlgES256}
	minters := make(map[string]*Minter)
	var trust []IssuerSpec
	for _, alg := range algs {
		m, err := NewMinter(issuerA, Config{Audiences: map[string]AudienceSpec{audB: {Format: FormatJWT, Alg: alg}}}, ring, dir, Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		minters[alg] = m
		trust = append(trust, IssuerSpec{Issuer: issuerA, Format: FormatJWT, Alg: alg, JWKSURL: srv.URL + "/.well-known/jwks.json"})
	}
	v, err := NewVerifier(audB, Config{TrustedIssuers: trust}, dir, Options{Now: clk.Now, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	guard := &rotationGuard{used: make(map[string]bool)}

	const workers, rotations, pairsPerPhase = 8, 3, 40
	var (
		pairs    atomic.Int64
		progress = make(chan struct{}, 1)
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		kidsMu   sync.Mutex
		kidsSeen = make(map[string]bool)
		failures atomic.Int64
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			alg := algs[w%len(algs)]
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, _, _, err := minters[alg].Mint(audB, "alice")
				if err != nil {
					failures.Add(1)
					t.Errorf("mint %s: %v", alg, err)
					return
				}
				if _, err := v.Exchange(ctx, tok, guard); err != nil {
					failures.Add(1)
					t.Errorf("exchange of a freshly minted %s token (kid %s): %v (reason %s)", alg, jwtKid(tok), err, Reason(err))
					return
				}
				kidsMu.Lock()
				kidsSeen[jwtKid(tok)] = true
				kidsMu.Unlock()
				pairs.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}()
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); <-allDone }
	t.Cleanup(halt)
	// waitPairs blocks until n more pairs have completed since it was called,
	// or every worker gave up.
	waitPairs := func(n int64) {
		t.Helper()
		target := pairs.Load() + n
		for pairs.Load() < target {
			select {
			case <-progress:
			case <-allDone:
				t.FailNow()
			case <-time.After(30 * time.Second):
				t.Fatalf("no progress: %d of %d pairs", pairs.Load(), target)
			}
		}
	}

	waitPairs(pairsPerPhase)
	retired := map[string]string{} // alg -> the first signing kid
	for _, alg := range algs {
		retired[alg], _ = ringPrivate(t, ring, alg)
	}
	for range rotations {
		if err := ring.Rotate(); err != nil {
			t.Fatal(err)
		}
		waitPairs(pairsPerPhase)
	}
	halt()
	if failures.Load() > 0 {
		t.FailNow()
	}
	// Every generation of both algorithms signed, and B verified each.
	if want := len(algs) * (rotations + 1); len(kidsSeen) < want {
		t.Errorf("kids verified: got %d, want %d (each rotation's keys in use)", len(kidsSeen), want)
	}
	t.Logf("%d mint+exchange pairs across %d rotations, %d JWKS fetches", pairs.Load(), rotations, jwksFetches.Load())

	// Past the overlap the retired keys leave A's JWKS; B refetches its stale
	// set and refuses a token signed with one, even a freshly signed one.
	clk.Skip(DefaultOverlap + time.Minute)
	for _, alg := range algs {
		kid := retired[alg]
		now := clk.Now()
		c := &Claims{Issuer: issuerA, Subject: "alice", Audience: audB, ID: rand.Text(), IssuedAt: now, ExpiresAt: now.Add(time.Minute)}
		tok := signJWTWith(t, alg, ringKeyByKid(t, ring, kid), kid, c)
		if _, err := v.Verify(ctx, tok); Reason(err) != "unknown_kid" {
			t.Errorf("%s token with the retired kid %s after the overlap: got %v, want unknown_kid", alg, kid, err)
		}
		fresh, _, _, err := minters[alg].Mint(audB, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(ctx, fresh); err != nil {
			t.Errorf("%s token with the active kid after the overlap: %v", alg, err)
		}
	}
	var set struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal(ring.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if slices.Contains([]string{retired[AlgEdDSA], retired[AlgES256]}, k.Kid) {
			t.Errorf("JWKS after the overlap still lists retired kid %s", k.Kid)
		}
	}
}

// rotationGuard is a minimal ReplayGuard for this test: every token is
// exchanged once, so any replay refusal would be a bug in the test.
type rotationGuard struct {
	mu   sync.Mutex
	used map[string]bool
}

func (g *rotationGuard) Consume(_ context.Context, key string, _ time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.used[key] {
		return tether.ErrReplayed
	}
	g.used[key] = true
	return nil
}
