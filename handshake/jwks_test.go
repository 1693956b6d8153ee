package handshake

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether/internal/jwtcore"
)

// jwksIssuer is issuer Y signing with its key ring, published by an
// httptest JWKS server that can be made to hang, and B's verifier trusting
// Y through it.
type jwksIssuer struct {
	clock    *clock
	ring     *KeyRing
	verifier *Verifier
	requests atomic.Int32 // JWKS requests received
	finished atomic.Int32 // JWKS requests answered or abandoned
	hang     atomic.Bool  // requests block until release is closed
	release  chan struct{}
	unblock  func()        // closes release, once
	arrived  chan struct{} // one value per request
	answered chan struct{} // one value per request answered or abandoned
}

func newJWKSIssuer(t *testing.T) *jwksIssuer {
	t.Helper()
	j := &jwksIssuer{clock: newClock(), release: make(chan struct{}),
		arrived: make(chan struct{}, 1024), answered: make(chan struct{}, 1024)}
	j.unblock = sync.OnceFunc(func() { close(j.release) })
	dir := t.TempDir()
	var err error
	if j.ring, err = LoadKeyRing(filepath.Join(dir, "ring-y"), Options{Now: j.clock.Now}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { j.finished.Add(1); j.answered <- struct{}{} }()
		j.requests.Add(1)
		j.arrived <- struct{}{}
		if j.hang.Load() {
			select {
			case <-j.release:
			case <-r.Context().Done():
				return
			}
		}
		w.Write(j.ring.JWKS())
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(j.unblock)
	cfg := Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerY, Format: FormatJWT, Alg: AlgEdDSA, JWKSURL: srv.URL + "/jwks"}}}
	if j.verifier, err = NewVerifier(audB, cfg, dir, Options{Now: j.clock.Now, HTTPClient: srv.Client()}); err != nil {
		t.Fatal(err)
	}
	return j
}

// token signs a fresh token for B with Y's active key.
func (j *jwksIssuer) token(t *testing.T) string {
	t.Helper()
	kid, priv := ringPrivate(t, j.ring, AlgEdDSA)
	now := j.clock.Now()
	return signJWTWith(t, AlgEdDSA, priv, kid, &Claims{Issuer: issuerY, Subject: "alice", Audience: audB,
		ID: rand.Text(), IssuedAt: now, ExpiresAt: now.Add(time.Minute)})
}

// verifyAll verifies n tokens at once, each under its own deadline, and
// returns their errors and whether each caller's context had ended when
// Verify returned.
func (j *jwksIssuer) verifyAll(t *testing.T, toks []string, deadline time.Duration) (errs []error, ctxDone []bool) {
	errs, ctxDone = make([]error, len(toks)), make([]bool, len(toks))
	var wg sync.WaitGroup
	for i, tok := range toks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			_, errs[i] = j.verifier.Verify(ctx, tok)
			ctxDone[i] = ctx.Err() != nil
		})
	}
	wg.Wait()
	return errs, ctxDone
}

// wait waits for one value on ch: a JWKS request arriving or ending.
func wait(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the JWKS server saw nothing")
	}
}

// TestJWKSHangingServeKnownKeys: while the issuer's JWKS endpoint hangs,
// six concurrent tokens signed with a known key are answered from the keys
// already held, not one after another behind the refresh; the refresh runs
// once, in the background.
func TestJWKSHangingServeKnownKeys(t *testing.T) {
	j := newJWKSIssuer(t)
	if _, err := j.verifier.Verify(context.Background(), j.token(t)); err != nil {
		t.Fatal(err)
	}
	wait(t, j.arrived)
	j.hang.Store(true)
	j.clock.Add(jwtcore.JWKSRefreshAfter) // stale: the next token starts a refresh
	toks := make([]string, 6)
	for i := range toks {
		toks[i] = j.token(t)
	}
	errs, _ := j.verifyAll(t, toks, 2*time.Second)
	for i, err := range errs {
		if err != nil {
			t.Errorf("token %d: got %v, want accepted from the held keys", i, err)
		}
	}
	wait(t, j.arrived) // the background refresh reached the server ...
	if got := j.finished.Load(); got != 1 {
		t.Errorf("answered JWKS requests: got %d, want 1: the refresh must still hang while tokens are served", got)
	}
	if got := j.requests.Load(); got != 2 {
		t.Errorf("JWKS requests: got %d, want 2 (the first fetch and one shared refresh)", got)
	}
}

// TestJWKSHangingDeadline: tokens signed with a key the verifier has not
// seen wait for one shared refresh, each only until its own 2 s deadline,
// even though the fetch goes on; when the endpoint answers, the keys it
// brought serve without another fetch.
func TestJWKSHangingDeadline(t *testing.T) {
	j := newJWKSIssuer(t)
	if _, err := j.verifier.Verify(context.Background(), j.token(t)); err != nil {
		t.Fatal(err)
	}
	wait(t, j.arrived)
	if err := j.ring.Rotate(); err != nil { // a kid the verifier does not know
		t.Fatal(err)
	}
	j.clock.Add(jwtcore.JWKSMinInterval)
	j.hang.Store(true)
	toks := make([]string, 6)
	for i := range toks {
		toks[i] = j.token(t)
	}
	errs, ctxDone := j.verifyAll(t, toks, 2*time.Second)
	for i, err := range errs {
		if Reason(err) != "unknown_kid" || !ctxDone[i] {
			t.Errorf("token %d: got %v (deadline passed: %v), want unknown_kid at the deadline", i, err, ctxDone[i])
		}
	}
	if got := j.finished.Load(); got != 1 {
		t.Errorf("answered JWKS requests: got %d, want 1: the callers must return while the fetch hangs", got)
	}
	if got := j.requests.Load(); got != 2 {
		t.Errorf("JWKS requests: got %d, want 2 (one shared refresh for six tokens)", got)
	}
	wait(t, j.answered) // the first fetch
	j.unblock()         // the fetch the callers left completes and its keys are kept
	wait(t, j.answered)
	errs, _ = j.verifyAll(t, toks, 2*time.Second)
	for i, err := range errs {
		if err != nil {
			t.Errorf("token %d after the endpoint answered: %v", i, err)
		}
	}
	if got := j.requests.Load(); got != 2 {
		t.Errorf("JWKS requests: got %d, want still 2", got)
	}
}

// TestJWKSJunkKids: 100 tokens with unknown kids and signatures that could
// never verify cost at most one JWKS fetch per rate window, however many
// arrive; junk whose claims are already wrong costs none.
func TestJWKSJunkKids(t *testing.T) {
	j := newJWKSIssuer(t)
	if _, err := j.verifier.Verify(context.Background(), j.token(t)); err != nil {
		t.Fatal(err)
	}
	now := j.clock.Now()
	junk := func(aud string) []string {
		toks := make([]string, 100)
		for i := range toks {
			toks[i] = craftJWT(`{"alg":"EdDSA","typ":"handshake+jwt","kid":"`+rand.Text()+`"}`,
				claimsJSON(now, map[string]string{"iss": `"` + issuerY + `"`, "aud": `"` + aud + `"`}),
				func([]byte) []byte { return make([]byte, ed25519.SignatureSize) })
		}
		return toks
	}
	batch := func(name, aud string, wantFetches int32) {
		t.Helper()
		before := j.requests.Load()
		errs, _ := j.verifyAll(t, junk(aud), 10*time.Second)
		for i, err := range errs {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%s: token %d: got %v, want refused", name, i, err)
			}
		}
		if got := j.requests.Load() - before; got > wantFetches {
			t.Errorf("%s: got %d JWKS fetches, want at most %d", name, got, wantFetches)
		}
	}
	batch("same window as the last fetch", audB, 0)
	j.clock.Add(jwtcore.JWKSMinInterval)
	batch("next window", audB, 1)
	batch("still that window", audB, 0)
	j.clock.Add(jwtcore.JWKSMinInterval)
	batch("next window, claims for another audience", "https://c.example", 0)
}

// TestJWKSRedirectsRefused: a JWKS endpoint that redirects, to plain http
// or to another host, is not followed and the key at the target is not
// trusted. The client resolves other.example.com to the target, so a
// followed redirect would fetch it (the control shows the target works).
func TestJWKSRedirectsRefused(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	ring, err := LoadKeyRing(filepath.Join(dir, "ring-y"), Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	var targetHits atomic.Int32
	serveKeys := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		targetHits.Add(1)
		w.Write(ring.JWKS())
	})
	plain := httptest.NewServer(serveKeys)
	defer plain.Close()
	other := httptest.NewTLSServer(serveKeys)
	defer other.Close()
	_, otherPort, _ := net.SplitHostPort(other.Listener.Addr().String())

	kid, priv := ringPrivate(t, ring, AlgEdDSA)
	now := c.Now()
	tok := signJWTWith(t, AlgEdDSA, priv, kid, &Claims{Issuer: issuerY, Subject: "alice", Audience: audB,
		ID: rand.Text(), IssuedAt: now, ExpiresAt: now.Add(time.Minute)})

	for _, tt := range []struct{ name, target string }{
		{"to plain http", plain.URL + "/jwks"},
		{"to another host", "https://other.example.com:" + otherPort + "/jwks"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			redirect := httptest.NewTLSServer(http.RedirectHandler(tt.target, http.StatusFound))
			defer redirect.Close()
			client := redirect.Client()
			tr := client.Transport.(*http.Transport).Clone()
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				if host, port, _ := net.SplitHostPort(addr); host == "other.example.com" {
					addr = net.JoinHostPort("127.0.0.1", port)
				}
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}
			client.Transport = tr
			verifier := func(url string) *Verifier {
				cfg := Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerY, Format: FormatJWT, Alg: AlgEdDSA, JWKSURL: url}}}
				v, err := NewVerifier(audB, cfg, dir, Options{Now: c.Now, HTTPClient: client})
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			targetHits.Store(0)
			if _, err := verifier(redirect.URL+"/jwks").Verify(context.Background(), tok); Reason(err) != "unknown_kid" {
				t.Errorf("through the redirect: got %v, want unknown_kid", err)
			}
			if got := targetHits.Load(); got != 0 {
				t.Errorf("redirect target fetched %d times, want 0", got)
			}
			if client.CheckRedirect != nil {
				t.Error("the caller's client was changed")
			}
			if _, err := verifier(tt.target).Verify(context.Background(), tok); err != nil {
				t.Errorf("control, the target as jwks_url: %v", err)
			}
		})
	}
}
