package jwtcore

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// TestJWKSCache: unknown kids refetch at most once per interval and are
// then refused at once; keys of another type are not served for the pinned
// alg; a failed background refresh keeps the known keys; a set too old to
// serve is refused when it cannot be refreshed.
func TestJWKSCache(t *testing.T) {
	clk := &fakeClock{t: testNow}
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: ed, KeyID: "ed", Algorithm: "EdDSA", Use: "sig"},
		{Key: &ec.PublicKey, KeyID: "ec", Algorithm: "ES256", Use: "sig"},
	}})
	var body atomic.Value
	body.Store(good)
	var fetches atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		w.Write(body.Load().([]byte))
	}))
	defer srv.Close()
	set := NewJWKS(srv.URL, srv.Client(), clk.Now)
	ctx := context.Background()
	// settle waits for a refresh in flight: joining it waits for it.
	settle := func() { <-set.sf.DoChan("", func() (any, error) { return nil, nil }) }
	key := func(ctx context.Context, kid, alg string) string {
		_, err := set.Key(ctx, kid, alg)
		return Reason(err)
	}
	want := func(step string, got, reason string, n int32) {
		t.Helper()
		if got != reason || fetches.Load() != n {
			t.Errorf("%s: got %q after %d fetches, want %q after %d", step, got, fetches.Load(), reason, n)
		}
	}

	want("known kid", key(ctx, "ed", "EdDSA"), "", 1)
	want("ES256 key under EdDSA", key(ctx, "ec", "EdDSA"), "unknown_kid", 1)
	want("empty kid", key(ctx, "", "EdDSA"), "unknown_kid", 1)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	want("unknown kid in the same interval, short deadline", key(short, "new", "EdDSA"), "unknown_kid", 1)
	cancel()
	clk.Add(JWKSMinInterval)
	want("unknown kid, next interval", key(ctx, "garbage", "EdDSA"), "unknown_kid", 2)
	for range 10 {
		want("the same unknown kid again", key(ctx, "garbage", "EdDSA"), "unknown_kid", 2)
	}

	body.Store([]byte(`{"keys":[` + strings.Repeat(" ", jwksMaxBytes) + `]}`))
	clk.Add(JWKSRefreshAfter)
	if got := key(ctx, "ed", "EdDSA"); got != "" {
		t.Errorf("stale set: got %q, want the key served during the refresh", got)
	}
	settle()
	want("the known key kept after the refresh failed", key(ctx, "ed", "EdDSA"), "", 3)
	settle()

	clk.Add(JWKSMaxAge)
	want("set too old, refresh fails", key(ctx, "ed", "EdDSA"), "unknown_kid", 4)
	body.Store(good)
	clk.Add(JWKSMinInterval)
	want("set too old, refresh succeeds", key(ctx, "ed", "EdDSA"), "", 5)
}

func TestParseJWKS(t *testing.T) {
	ed, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	entry := func(k jose.JSONWebKey) string { b, _ := json.Marshal(k); return string(b) }
	body := `{"keys":[` + strings.Join([]string{
		entry(jose.JSONWebKey{Key: ed, KeyID: "ok", Use: "sig"}),
		entry(jose.JSONWebKey{Key: ed, KeyID: "ok-no-use"}),
		entry(jose.JSONWebKey{Key: ed}),
		entry(jose.JSONWebKey{Key: ed, KeyID: "enc", Use: "enc"}),
		entry(jose.JSONWebKey{Key: edPriv, KeyID: "private"}),
		`{"kty":"nope","kid":"junk"}`,
	}, ",") + `]}`
	keys, err := ParseJWKS([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys["ok"].Key == nil || keys["ok-no-use"].Key == nil {
		t.Errorf("got %v, want the two public signing keys with a kid", keys)
	}
	if _, err := ParseJWKS([]byte(`[`)); err == nil {
		t.Error("malformed set: got no error")
	}
}

func TestNewJWKSDefaults(t *testing.T) {
	s := NewJWKS("https://127.0.0.1:1/jwks", nil, nil)
	if s.client.CheckRedirect == nil || s.now == nil {
		t.Error("defaults: want a clock and a client that refuses redirects")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := s.Key(ctx, "k", "EdDSA"); Reason(err) != "unknown_kid" {
		t.Errorf("unreachable set: got %v, want unknown_kid", err)
	}
}
