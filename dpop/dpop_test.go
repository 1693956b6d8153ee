package dpop_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/dpop"
	"github.com/tetherhq/tether/dpop/dpoptest"
)

const (
	testURL   = "https://api.example.test/v1/session"
	testToken = "tth_example-token"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func mustKey(t testing.TB, alg jose.SignatureAlgorithm) *dpoptest.Key {
	t.Helper()
	k, err := dpoptest.NewKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newVerifier(t testing.TB, cfg dpop.Config) *dpop.Verifier {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	v, err := dpop.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// raw signs header and claims with an Ed25519 key by hand, for the proofs
// that no JOSE library would make: alg none, HS256, a private jwk.
func raw(t *testing.T, header, claims map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

func TestVerify(t *testing.T) {
	es, ed, other := mustKey(t, jose.ES256), mustKey(t, jose.EdDSA), mustKey(t, jose.EdDSA)
	claims := func(mod func(map[string]any)) map[string]any {
		c := dpoptest.Claims("GET", testURL, testToken, "", t0)
		if mod != nil {
			mod(c)
		}
		return c
	}
	edPub, edPriv, _ := ed25519.GenerateKey(nil)
	pubJWK := jose.JSONWebKey{Key: edPub}
	privJWK := jose.JSONWebKey{Key: edPriv}
	header := func(alg string, jwk jose.JSONWebKey) map[string]any {
		return map[string]any{"typ": "dpop+jwt", "alg": alg, "jwk": jwk}
	}
	edSign := func(in []byte) []byte { return ed25519.Sign(edPriv, in) }
	req := dpop.Request{Method: "GET", URL: testURL, AccessToken: testToken}

	cases := []struct {
		name  string
		proof string
		req   dpop.Request
		want  error // nil: accepted
	}{
		{"ES256", es.Sign(claims(nil)), req, nil},
		{"EdDSA", ed.Sign(claims(nil)), req, nil},
		{"bound key", ed.Sign(claims(nil)), dpop.Request{Method: "GET", URL: testURL, AccessToken: testToken, JKT: ed.JKT}, nil},
		{"hand-made EdDSA", raw(t, header("EdDSA", pubJWK), claims(nil), edSign), req, nil},
		{"htu normalised", ed.Sign(claims(func(c map[string]any) { c["htu"] = "HTTPS://API.example.test:443/v1/%73ession?q=1#f" })), req, nil},
		{"iat 59s early", ed.Sign(claims(func(c map[string]any) { c["iat"] = t0.Add(-59 * time.Second).Unix() })), req, nil},
		{"iat 59s ahead", ed.Sign(claims(func(c map[string]any) { c["iat"] = t0.Add(59 * time.Second).Unix() })), req, nil},
		{"token request, no ath", ed.Sign(claims(func(c map[string]any) { delete(c, "ath") })), dpop.Request{Method: "GET", URL: testURL}, nil},

		{"empty", "", req, dpop.ErrInvalidProof},
		{"garbage", "not.a.jwt", req, dpop.ErrInvalidProof},
		{"JSON serialisation", `{"payload":"e30","protected":"e30","signature":""}`, req, dpop.ErrInvalidProof},
		{"oversize", strings.Repeat("a", dpop.MaxProofLen+1), req, dpop.ErrInvalidProof},
		{"typ JWT", raw(t, map[string]any{"typ": "JWT", "alg": "EdDSA", "jwk": pubJWK}, claims(nil), edSign), req, dpop.ErrInvalidProof},
		{"no typ", raw(t, map[string]any{"alg": "EdDSA", "jwk": pubJWK}, claims(nil), edSign), req, dpop.ErrInvalidProof},
		{"alg none", raw(t, header("none", pubJWK), claims(nil), func([]byte) []byte { return nil }), req, dpop.ErrInvalidProof},
		{"alg HS256", raw(t, header("HS256", pubJWK), claims(nil), func(in []byte) []byte {
			m := hmac.New(sha256.New, edPub) // the classic confusion: the public key as an HMAC secret
			m.Write(in)
			return m.Sum(nil)
		}), req, dpop.ErrInvalidProof},
		{"alg ES384", raw(t, header("ES384", pubJWK), claims(nil), edSign), req, dpop.ErrInvalidProof},
		{"private key in jwk", raw(t, header("EdDSA", privJWK), claims(nil), edSign), req, dpop.ErrInvalidProof},
		{"no jwk", raw(t, map[string]any{"typ": "dpop+jwt", "alg": "EdDSA"}, claims(nil), edSign), req, dpop.ErrInvalidProof},
		{"bad signature", raw(t, header("EdDSA", pubJWK), claims(nil), func(in []byte) []byte { return ed25519.Sign(edPriv, append(in, 'x')) }), req, dpop.ErrInvalidProof},
		{"jwk of another key", raw(t, header("EdDSA", jose.JSONWebKey{Key: other.Private.Public()}), claims(nil), edSign), req, dpop.ErrInvalidProof},
		{"another key than bound", other.Sign(claims(nil)), dpop.Request{Method: "GET", URL: testURL, AccessToken: testToken, JKT: ed.JKT}, dpop.ErrWrongKey},
		{"htm mismatch", ed.Sign(claims(func(c map[string]any) { c["htm"] = "POST" })), req, dpop.ErrInvalidProof},
		{"htm lower case", ed.Sign(claims(func(c map[string]any) { c["htm"] = "get" })), req, dpop.ErrInvalidProof},
		{"htu other path", ed.Sign(claims(func(c map[string]any) { c["htu"] = "https://api.example.test/v1/sessions" })), req, dpop.ErrInvalidProof},
		{"htu other host", ed.Sign(claims(func(c map[string]any) { c["htu"] = "https://evil.example.test/v1/session" })), req, dpop.ErrInvalidProof},
		{"htu other scheme", ed.Sign(claims(func(c map[string]any) { c["htu"] = "http://api.example.test/v1/session" })), req, dpop.ErrInvalidProof},
		{"htu other port", ed.Sign(claims(func(c map[string]any) { c["htu"] = "https://api.example.test:8443/v1/session" })), req, dpop.ErrInvalidProof},
		{"htu relative", ed.Sign(claims(func(c map[string]any) { c["htu"] = "/v1/session" })), req, dpop.ErrInvalidProof},
		{"iat 61s old", ed.Sign(claims(func(c map[string]any) { c["iat"] = t0.Add(-61 * time.Second).Unix() })), req, dpop.ErrInvalidProof},
		{"iat 61s ahead", ed.Sign(claims(func(c map[string]any) { c["iat"] = t0.Add(61 * time.Second).Unix() })), req, dpop.ErrInvalidProof},
		{"iat a string", ed.Sign(claims(func(c map[string]any) { c["iat"] = "now" })), req, dpop.ErrInvalidProof},
		{"no iat", ed.Sign(claims(func(c map[string]any) { delete(c, "iat") })), req, dpop.ErrInvalidProof},
		{"no jti", ed.Sign(claims(func(c map[string]any) { delete(c, "jti") })), req, dpop.ErrInvalidProof},
		{"no htm", ed.Sign(claims(func(c map[string]any) { delete(c, "htm") })), req, dpop.ErrInvalidProof},
		{"no ath", ed.Sign(claims(func(c map[string]any) { delete(c, "ath") })), req, dpop.ErrInvalidProof},
		{"ath of another token", ed.Sign(claims(func(c map[string]any) { c["ath"] = dpop.TokenHash("tth_other") })), req, dpop.ErrInvalidProof},
		{"ath padded", ed.Sign(claims(func(c map[string]any) { c["ath"] = dpop.TokenHash(testToken) + "=" })), req, dpop.ErrInvalidProof},
		{"ath without a token", ed.Sign(claims(nil)), dpop.Request{Method: "GET", URL: testURL}, dpop.ErrInvalidProof},
		{"request without a host", ed.Sign(claims(func(c map[string]any) { c["htu"] = "https:///v1/session" })), dpop.Request{Method: "GET", URL: "https:///v1/session", AccessToken: testToken}, dpop.ErrInvalidProof},
	}
	v := newVerifier(t, dpop.Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), c.proof, c.req)
			switch {
			case c.want == nil && err != nil:
				t.Fatalf("Verify = %v, want accepted", err)
			case c.want == nil && p.JKT == "":
				t.Fatal("accepted without a thumbprint")
			case c.want != nil && !errors.Is(err, c.want):
				t.Fatalf("Verify = %v, %v; want %v", p, err, c.want)
			case c.want != nil && p != nil:
				t.Fatal("a refusal returned a proof too")
			}
		})
	}
}

// TestThumbprint signs a proof with the Ed25519 key of RFC 8037 §A.1, whose
// RFC 7638 thumbprint §A.3 gives.
func TestThumbprint(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(mustB64(t, "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"))
	header := map[string]any{"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jose.JSONWebKey{Key: priv.Public()}}
	proof := raw(t, header, dpoptest.Claims("GET", testURL, "", "", t0), func(in []byte) []byte { return ed25519.Sign(priv, in) })
	p, err := newVerifier(t, dpop.Config{}).Verify(context.Background(), proof, dpop.Request{Method: "GET", URL: testURL})
	if err != nil {
		t.Fatal(err)
	}
	if want := "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; p.JKT != want || !dpop.ValidThumbprint(p.JKT) {
		t.Fatalf("JKT = %q, want %q", p.JKT, want)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// guard is a shared replay guard, as a store's Consume would be.
type guard struct {
	mu   sync.Mutex
	seen map[string]time.Time
	err  error // when set, the guard is unreachable
}

func (g *guard) consume(_ context.Context, key string, until time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return g.err
	}
	if _, ok := g.seen[key]; ok {
		return dpop.ErrReplayed
	}
	g.seen[key] = until
	return nil
}

func TestReplay(t *testing.T) {
	k := mustKey(t, jose.ES256)
	req := dpop.Request{Method: "GET", URL: testURL, AccessToken: testToken, JKT: k.JKT}
	ctx := context.Background()
	shared := &guard{seen: map[string]time.Time{}}
	cases := []struct {
		name    string
		a, b    dpop.Config // two nodes
		nonce   bool        // the proof carries node a's nonce
		atB     error       // the proof replayed at node b
		onlyOne bool
	}{
		// Without a shared guard or nonces, node b has not seen the proof:
		// the residual risk SECURITY.md states, pinned here.
		{name: "memory only", atB: nil},
		{name: "shared guard", a: dpop.Config{Consume: shared.consume}, b: dpop.Config{Consume: shared.consume}, atB: dpop.ErrReplayed},
		{name: "nonces", a: dpop.Config{RequireNonce: true}, b: dpop.Config{RequireNonce: true}, nonce: true, atB: dpop.ErrUseNonce},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := newVerifier(t, c.a), newVerifier(t, c.b)
			nonce := ""
			if c.nonce {
				nonce = a.Nonce()
			}
			proof := k.Sign(dpoptest.Claims("GET", testURL, testToken, nonce, t0))
			if _, err := a.Verify(ctx, proof, req); err != nil {
				t.Fatalf("first use at a: %v", err)
			}
			if _, err := a.Verify(ctx, proof, req); !errors.Is(err, dpop.ErrReplayed) {
				t.Fatalf("replay at a = %v, want ErrReplayed", err)
			}
			if _, err := b.Verify(ctx, proof, req); !errors.Is(err, c.atB) || (c.atB == nil && err != nil) {
				t.Fatalf("replay at b = %v, want %v", err, c.atB)
			}
		})
	}
}

func TestConcurrentReplay(t *testing.T) {
	k := mustKey(t, jose.EdDSA)
	shared := &guard{seen: map[string]time.Time{}}
	nodes := []*dpop.Verifier{newVerifier(t, dpop.Config{Consume: shared.consume}), newVerifier(t, dpop.Config{Consume: shared.consume})}
	proof := k.Sign(dpoptest.Claims("GET", testURL, "", "", t0))
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for i := range 64 {
		wg.Go(func() {
			_, err := nodes[i%2].Verify(context.Background(), proof, dpop.Request{Method: "GET", URL: testURL})
			if err == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
			} else if !errors.Is(err, dpop.ErrReplayed) {
				t.Errorf("Verify = %v, want ErrReplayed", err)
			}
		})
	}
	wg.Wait()
	if accepted != 1 {
		t.Fatalf("%d of 64 concurrent uses accepted, want 1", accepted)
	}
}

func TestNonce(t *testing.T) {
	k := mustKey(t, jose.EdDSA)
	now := t0
	clock := func() time.Time { return now }
	v := newVerifier(t, dpop.Config{RequireNonce: true, NonceLifetime: time.Minute, Now: clock})
	other := newVerifier(t, dpop.Config{RequireNonce: true, Now: clock})
	fresh := v.Nonce()
	if v.Nonce() != fresh {
		t.Fatal("the nonce changed within its epoch")
	}
	now = now.Add(time.Minute)
	previous, current := fresh, v.Nonce()
	if previous == current {
		t.Fatal("the nonce did not rotate")
	}
	forged := []byte(current)
	forged[len(forged)-1] ^= 1
	cases := []struct {
		name, nonce string
		want        error
	}{
		{"current", current, nil},
		{"previous epoch", previous, nil},
		{"missing", "", dpop.ErrUseNonce},
		{"another node's", other.Nonce(), dpop.ErrUseNonce},
		{"forged", string(forged), dpop.ErrUseNonce},
		{"not base64", "!!!", dpop.ErrUseNonce},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proof := k.Sign(dpoptest.Claims("GET", testURL, "", c.nonce, now))
			_, err := v.Verify(context.Background(), proof, dpop.Request{Method: "GET", URL: testURL})
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
	now = now.Add(2 * time.Minute)
	proof := k.Sign(dpoptest.Claims("GET", testURL, "", current, now))
	if _, err := v.Verify(context.Background(), proof, dpop.Request{Method: "GET", URL: testURL}); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("a nonce two epochs old: Verify = %v, want ErrUseNonce", err)
	}
	if got := dpop.ErrorCode(dpop.ErrUseNonce); got != "use_dpop_nonce" {
		t.Fatalf("ErrorCode = %q", got)
	}
}

// TestFailClosed: when the replay guard cannot answer, or memory is full, a
// proof is refused with an error that is not a refusal of the proof, so the
// caller answers 503 rather than 401 or 200.
func TestFailClosed(t *testing.T) {
	k := mustKey(t, jose.EdDSA)
	down := &guard{seen: map[string]time.Time{}, err: errors.New("store unreachable")}
	cases := []struct {
		name string
		cfg  dpop.Config
		uses int
	}{
		{"guard down", dpop.Config{Consume: down.consume}, 1},
		{"memory full", dpop.Config{MaxSeen: 2}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newVerifier(t, c.cfg)
			var err error
			for range c.uses {
				_, err = v.Verify(context.Background(), k.Sign(dpoptest.Claims("GET", testURL, "", "", t0)), dpop.Request{Method: "GET", URL: testURL})
			}
			if err == nil || errors.Is(err, dpop.ErrInvalidProof) || errors.Is(err, dpop.ErrUseNonce) {
				t.Fatalf("Verify = %v, want an error that is no refusal", err)
			}
		})
	}
}

func TestNormalizeURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"https://Example.COM/a/b", "https://example.com/a/b"},
		{"HTTPS://example.com:443/a?x=1#y", "https://example.com/a"},
		{"http://example.com:80", "http://example.com/"},
		{"http://example.com:8080/", "http://example.com:8080/"},
		{"https://example.com:80/", "https://example.com:80/"},
		{"https://[::1]:443/x", "https://[::1]/x"},
		{"https://[::1]:8443/x", "https://[::1]:8443/x"},
		{"https://example.com/%7euser/%c3%a9", "https://example.com/~user/%C3%A9"},
		{"ftp://example.com/", ""},
		{"https://user@example.com/", ""},
		{"/relative", ""},
		{"https:///nohost", ""},
		{"https://example.com/%zz", ""},
	}
	for _, c := range cases {
		got, err := dpop.NormalizeURL(c.in)
		if (err != nil) != (c.want == "") || got != c.want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	k, err := dpoptest.NewKey(jose.ES256)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k.Sign(dpoptest.Claims("GET", testURL, testToken, "", t0)), "GET", testURL)
	f.Add("eyJhbGciOiJub25lIn0.e30.", "POST", "https://x/")
	f.Add(`{"payload":"e30"}`, "GET", "http://[::1]:80/%41")
	v := newVerifier(f, dpop.Config{MaxSeen: 1 << 16})
	f.Fuzz(func(t *testing.T, proof, method, url string) {
		p, err := v.Verify(context.Background(), proof, dpop.Request{Method: method, URL: url, AccessToken: testToken})
		if (p == nil) == (err == nil) {
			t.Fatalf("Verify = %v, %v: want exactly one of proof and error", p, err)
		}
		if err == nil && (p.JKT == "" || p.ID == "") {
			t.Fatalf("accepted %+v", p)
		}
		dpop.NormalizeURL(url)
	})
}

// TestMemoryFreedAfterWindow: a full replay memory refuses new proofs only
// until the proofs it holds are too old to be accepted anyway.
func TestMemoryFreedAfterWindow(t *testing.T) {
	k := mustKey(t, jose.EdDSA)
	now := t0
	v := newVerifier(t, dpop.Config{MaxSeen: 2, Now: func() time.Time { return now }})
	use := func() error {
		_, err := v.Verify(context.Background(), k.Sign(dpoptest.Claims("GET", testURL, "", "", now)), dpop.Request{Method: "GET", URL: testURL})
		return err
	}
	for i := range 2 {
		if err := use(); err != nil {
			t.Fatalf("use %d: %v", i, err)
		}
	}
	if err := use(); err == nil {
		t.Fatal("a full memory took another proof")
	}
	now = now.Add(61 * time.Second)
	if err := use(); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}
