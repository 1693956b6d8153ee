package api_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/store/memstore"
)

const (
	issA = "https://a.example" // mints; publishes its JWKS
	issB = "https://b.example" // exchanges A's tokens
)

// Token-type URNs of RFC 8693 and Tether's own for PASETO.
const (
	urnTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	urnJWT           = "urn:ietf:params:oauth:token-type:jwt"
	urnPASETO        = "urn:tether:params:oauth:token-type:paseto"
	urnAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
)

// hsClock is real time plus a settable offset. Only the handshake Minter and
// Verifier read it: sessions and the memstore keep real time, so skipping
// ahead expires handshake tokens and nothing else.
type hsClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *hsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *hsClock) Skip(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// flakyStore is a memstore whose replay guard can be taken down and brought
// back, to show that a failed Consume consumes nothing.
type flakyStore struct {
	*memstore.Store
	down atomic.Bool
}

func (f *flakyStore) Consume(ctx context.Context, key string, until time.Time) error {
	if f.down.Load() {
		return tether.ErrUnavailable
	}
	return f.Store.Consume(ctx, key, until)
}

// hsFixture is issuer A and receiver B, each a full API server on its own
// memstore, with handshake keys in a temporary directory: A mints for B over
// HTTP (HS256) and publishes its JWKS on a loopback server; B trusts A's
// HS256 key, A's EdDSA and ES256 keys through that JWKS, A's Ed25519 key for
// PASETO v4.public, and a shared v4.local key. Minters for every format let
// tests make tokens for B directly.
type hsFixture struct {
	dir     string
	clock   *hsClock
	ringA   *handshake.KeyRing
	a, b    *env
	bStore  *flakyStore
	jwksURL string
	minters map[string]*handshake.Minter // alg -> A's minter for B
}

func newHSFixture(t *testing.T) *hsFixture {
	t.Helper()
	f := &hsFixture{dir: t.TempDir(), clock: &hsClock{}, minters: make(map[string]*handshake.Minter)}
	writeKey := func(name string) {
		k := make([]byte, 32)
		rand.Read(k)
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(base64.RawURLEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKey("hs.key")
	writeKey("local.key")
	var err error
	if f.ringA, err = handshake.LoadKeyRing(filepath.Join(f.dir, "keys-a"), handshake.Options{Now: f.clock.Now}); err != nil {
		t.Fatal(err)
	}

	audiences := map[string]handshake.AudienceSpec{issB: {Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: "hs.key"}}
	minter, err := handshake.NewMinter(issA, handshake.Config{Audiences: audiences}, f.ringA, f.dir, handshake.Options{Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.a = newHSEnv(t, memstore.New(), api.Config{Keys: f.ringA, Minter: minter})
	jwks := httptest.NewServer(f.a.pub) // loopback: plain http is allowed there
	t.Cleanup(jwks.Close)
	f.jwksURL = jwks.URL + "/.well-known/jwks.json"

	for _, alg := range []string{handshake.AlgHS256, handshake.AlgEdDSA, handshake.AlgES256, handshake.AlgV4Public, handshake.AlgV4Local} {
		spec := handshake.AudienceSpec{Format: handshake.FormatJWT, Alg: alg}
		switch alg {
		case handshake.AlgHS256:
			spec.KeyFile = "hs.key"
		case handshake.AlgV4Local:
			spec.Format, spec.KeyFile = handshake.FormatPASETO, "local.key"
		case handshake.AlgV4Public:
			spec.Format = handshake.FormatPASETO
		}
		m, err := handshake.NewMinter(issA, handshake.Config{Audiences: map[string]handshake.AudienceSpec{issB: spec}}, f.ringA, f.dir, handshake.Options{Now: f.clock.Now})
		if err != nil {
			t.Fatalf("minter %s: %v", alg, err)
		}
		f.minters[alg] = m
	}
	writePEM(t, filepath.Join(f.dir, "a-ed25519.pem"), f.ringA, handshake.AlgEdDSA)

	trust := handshake.Config{TrustedIssuers: []handshake.IssuerSpec{
		{Issuer: issA, Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: "hs.key"},
		{Issuer: issA, Format: handshake.FormatJWT, Alg: handshake.AlgEdDSA, JWKSURL: f.jwksURL},
		{Issuer: issA, Format: handshake.FormatJWT, Alg: handshake.AlgES256, JWKSURL: f.jwksURL},
		{Issuer: issA, Format: handshake.FormatPASETO, Alg: handshake.AlgV4Public, PublicKeyFile: "a-ed25519.pem"},
		{Issuer: issA, Format: handshake.FormatPASETO, Alg: handshake.AlgV4Local, KeyFile: "local.key"},
	}}
	verifier, err := handshake.NewVerifier(issB, trust, f.dir, handshake.Options{Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.bStore = &flakyStore{Store: memstore.New()}
	f.b = newHSEnv(t, f.bStore, api.Config{Verifier: verifier})
	return f
}

// newHSEnv is newEnv with handshake parts in cfg, and the same log checks:
// neither a session token nor a handshake token (JWT "eyJ…", PASETO
// "v4.…") ever reaches the log.
func newHSEnv(t *testing.T, st tether.Store, cfg api.Config) *env {
	t.Helper()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := tether.NewManager(tether.Config{Store: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Manager, cfg.Admin, cfg.Logger = m, newAdmin(t), log
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{m: m, pub: srv.Public(), adm: srv.Admin(), log: logs}
	if ms, ok := st.(*memstore.Store); ok {
		e.store = ms
	}
	t.Cleanup(func() {
		m.Close()
		st.Close()
		out := logs.String()
		for _, secret := range []string{tether.TokenPrefix, testAdminKey, "eyJ", `"v4.`} {
			if strings.Contains(out, secret) {
				t.Errorf("the log contains %q:\n%s", secret, out)
			}
		}
	})
	return e
}

// writePEM saves the ring's public key for alg, as its JWKS publishes it.
func writePEM(t *testing.T, path string, ring *handshake.KeyRing, alg string) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(ring.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k.Algorithm == alg {
			der, err := x509.MarshalPKIXPublicKey(k.Key)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no %s key in the JWKS", alg)
}

// mintFor mints a token for B with one of A's minters.
func (f *hsFixture) mintFor(t *testing.T, alg, subject string) string {
	t.Helper()
	tok, _, _, err := f.minters[alg].Mint(issB, subject)
	if err != nil {
		t.Fatalf("mint %s: %v", alg, err)
	}
	return tok
}

// mintHTTP asks A's public API for a token for audience, as holder of session.
func (f *hsFixture) mintHTTP(t *testing.T, session, audience string) *httptest.ResponseRecorder {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"audience": audience})
	return serve(f.a.pub, req(http.MethodPost, "/v1/handshakes", strings.NewReader(string(body)),
		"Authorization", "Bearer "+session, "Content-Type", "application/json"))
}

// exchange posts a token to B's exchange route from a loopback client, as a
// service would; header adds or overrides name, value pairs.
func (f *hsFixture) exchange(raw string, header ...string) *httptest.ResponseRecorder {
	body, _ := json.Marshal(map[string]string{"token": raw})
	h := append([]string{"Content-Type", "application/json", "Host", "127.0.0.1:8080", "RemoteAddr", "127.0.0.1:40000"}, header...)
	r := req(http.MethodPost, "/v1/handshakes/exchange", strings.NewReader(string(body)), h...)
	if ct := headerValue(h, "Content-Type"); ct != "" {
		r.Header.Set("Content-Type", ct) // the last one given wins
	}
	return serve(f.b.pub, r)
}

func headerValue(h []string, name string) string {
	v := ""
	for i := 0; i+1 < len(h); i += 2 {
		if h[i] == name {
			v = h[i+1]
		}
	}
	return v
}

// token posts an RFC 8693 form to B's token endpoint.
func (f *hsFixture) token(form url.Values, header ...string) *httptest.ResponseRecorder {
	h := append([]string{"Content-Type", "application/x-www-form-urlencoded", "RemoteAddr", "127.0.0.1:40001"}, header...)
	return serve(f.b.pub, req(http.MethodPost, "/oauth2/token", strings.NewReader(form.Encode()), h...))
}

func grant(raw, typ string) url.Values {
	return url.Values{"grant_type": {urnTokenExchange}, "subject_token": {raw}, "subject_token_type": {typ}}
}

// exchangeFailures reads tether_handshake_exchange_failures_total by reason
// from e's admin /metrics.
func exchangeFailures(t *testing.T, e *env) map[string]int {
	t.Helper()
	w := e.admin(http.MethodGet, "/metrics", "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /metrics: got %d", w.Code)
	}
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(w.Body.String()))
	const prefix = `tether_handshake_exchange_failures_total{reason="`
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		reason, value, _ := strings.Cut(rest, `"} `)
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[reason] = int(n)
	}
	return out
}

type exchanged struct {
	Token   string         `json:"token"`
	Session tether.Session `json:"session"`
}

// TestHandshakeMint: POST /v1/handshakes for a session holder.
func TestHandshakeMint(t *testing.T) {
	f := newHSFixture(t)
	alice := f.a.create(t, `{"subject":"alice"}`)

	w := f.mintHTTP(t, alice.Token, issB)
	if w.Code != http.StatusCreated {
		t.Fatalf("mint: got %d %s, want 201", w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", cc)
	}
	raw := decode[map[string]any](t, w)
	if len(raw) != 3 {
		t.Errorf("mint response: got %v, want exactly token, format and expires_at", raw)
	}
	got := decode[struct {
		Token     string    `json:"token"`
		Format    string    `json:"format"`
		ExpiresAt time.Time `json:"expires_at"`
	}](t, w)
	if got.Token == "" || got.Format != handshake.FormatJWT {
		t.Errorf("mint: got format %q and token %q, want a jwt", got.Format, got.Token)
	}
	if d := time.Until(got.ExpiresAt); d <= 0 || d > handshake.DefaultTTL {
		t.Errorf("expires_at: %v from now, want within the 60 s default", d)
	}

	t.Run("unknown audience", func(t *testing.T) {
		wantError(t, f.mintHTTP(t, alice.Token, "https://nobody.example"), http.StatusBadRequest, "bad_request", "unknown audience")
	})
	t.Run("no session", func(t *testing.T) {
		w := serve(f.a.pub, req(http.MethodPost, "/v1/handshakes", strings.NewReader(`{"audience":"`+issB+`"}`), "Content-Type", "application/json"))
		wantError(t, w, http.StatusUnauthorized, "unauthenticated", "")
	})
	t.Run("revoked session", func(t *testing.T) {
		bob := f.a.create(t, `{"subject":"bob"}`)
		if w := f.a.admin(http.MethodDelete, "/v1/sessions/"+bob.Session.ID, ""); w.Code != http.StatusNoContent {
			t.Fatalf("revoke: got %d", w.Code)
		}
		wantError(t, f.mintHTTP(t, bob.Token, issB), http.StatusUnauthorized, "unauthenticated", "")
	})
	t.Run("bad body", func(t *testing.T) {
		w := serve(f.a.pub, req(http.MethodPost, "/v1/handshakes", strings.NewReader(`{"audience":"x","extra":1}`),
			"Authorization", "Bearer "+alice.Token, "Content-Type", "application/json"))
		wantError(t, w, http.StatusBadRequest, "bad_request", "unknown field")
	})
	t.Run("node that mints nothing", func(t *testing.T) {
		bob := f.b.create(t, `{"subject":"bob"}`)
		w := serve(f.b.pub, req(http.MethodPost, "/v1/handshakes", strings.NewReader(`{"audience":"`+issA+`"}`),
			"Authorization", "Bearer "+bob.Token, "Content-Type", "application/json"))
		wantError(t, w, http.StatusBadRequest, "bad_request", "unknown audience")
	})
}

// TestHandshakeExchange: a token A minted over HTTP is exchanged once at B
// for B's own session, with the session cookie; every other format B trusts
// is exchanged the same way.
func TestHandshakeExchange(t *testing.T) {
	f := newHSFixture(t)
	alice := f.a.create(t, `{"subject":"alice","roles":["admin"]}`)
	w := f.mintHTTP(t, alice.Token, issB)
	if w.Code != http.StatusCreated {
		t.Fatalf("mint: got %d %s", w.Code, w.Body)
	}
	minted := decode[struct{ Token string }](t, w)

	w = f.exchange(minted.Token, "User-Agent", "svc-a/1.0")
	if w.Code != http.StatusCreated {
		t.Fatalf("exchange: got %d %s, want 201", w.Code, w.Body)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", cc)
	}
	if keys := slices.Sorted(maps.Keys(decode[map[string]json.RawMessage](t, w))); !slices.Equal(keys, []string{"session", "token"}) {
		t.Errorf("exchange response keys: got %v, want [session token]", keys)
	}
	got := decode[exchanged](t, w)
	s := got.Session
	if s.Subject != "alice" || s.AuthMethod != "handshake" || s.Metadata["handshake_issuer"] != issA ||
		s.Metadata["ip"] != "127.0.0.1" || s.Metadata["user_agent"] != "svc-a/1.0" || s.AuthTime.IsZero() {
		t.Errorf("exchanged session: got %+v, want alice by handshake from %s with ip, user agent and auth time", s, issA)
	}
	if !strings.HasPrefix(got.Token, tether.TokenPrefix) || got.Token == alice.Token {
		t.Errorf("exchanged token: got %q, want a fresh opaque token of B", got.Token)
	}

	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("Set-Cookie: got %d cookies, want 1", len(cookies))
	}
	c := cookies[0]
	if c.Name != tether.CookieName || c.Value != got.Token || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure || c.Domain != "" {
		t.Errorf("cookie on plain-HTTP loopback: got %+v, want %s, HttpOnly, SameSite=Lax, Path=/, host-only", c, tether.CookieName)
	}

	// B's token is B's session: it works at B, and B, not the token, says
	// which roles alice holds (none at B).
	if w := f.b.bearer(http.MethodGet, "/v1/session", got.Token); w.Code != http.StatusOK {
		t.Errorf("B's session at B: got %d", w.Code)
	} else if roles := decode[tether.Session](t, w).Roles; len(roles) != 0 {
		t.Errorf("roles at B: got %v, want none (roles are B's, not carried by the handshake)", roles)
	}
	if code := f.a.status(got.Token); code != http.StatusUnauthorized {
		t.Errorf("B's token at A: got %d, want 401", code)
	}
	if code := f.b.status(minted.Token); code != http.StatusUnauthorized {
		t.Errorf("the handshake token as a session token at B: got %d, want 401", code)
	}

	t.Run("cookie under TLS", func(t *testing.T) {
		tok := f.mintFor(t, handshake.AlgHS256, "carol")
		w := f.exchange(tok, "Host", "b.example")
		if w.Code != http.StatusCreated {
			t.Fatalf("exchange: got %d %s", w.Code, w.Body)
		}
		c := w.Result().Cookies()
		if len(c) != 1 || c[0].Name != tether.SecureCookieName || !c[0].Secure || !c[0].HttpOnly || c[0].SameSite != http.SameSiteLaxMode {
			t.Errorf("cookie off loopback: got %+v, want %s, Secure, HttpOnly, SameSite=Lax", c, tether.SecureCookieName)
		}
	})

	for _, alg := range []string{handshake.AlgHS256, handshake.AlgEdDSA, handshake.AlgES256, handshake.AlgV4Public, handshake.AlgV4Local} {
		t.Run(alg, func(t *testing.T) {
			w := f.exchange(f.mintFor(t, alg, "dave-"+alg))
			if w.Code != http.StatusCreated {
				t.Fatalf("exchange %s: got %d %s, want 201", alg, w.Code, w.Body)
			}
			// Public-key issuers are external: their subjects are namespaced
			// by issuer, so they can never speak for a local user.
			want := "dave-" + alg
			if alg != handshake.AlgHS256 && alg != handshake.AlgV4Local {
				want = issA + "|" + want
			}
			if s := decode[exchanged](t, w).Session; s.Subject != want || s.AuthMethod != "handshake" {
				t.Errorf("session: got %s by %q, want %s by handshake", s.Subject, s.AuthMethod, want)
			}
		})
	}
}

// TestHandshakeExchangeFailures: every refusal, whatever the cause, is the
// same 401 with the same body; the cause shows only in the metric and log.
func TestHandshakeExchangeFailures(t *testing.T) {
	f := newHSFixture(t)

	otherMinter := func(issuer, audience string) *handshake.Minter {
		t.Helper()
		m, err := handshake.NewMinter(issuer, handshake.Config{Audiences: map[string]handshake.AudienceSpec{
			audience: {Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: "hs.key"},
		}}, nil, f.dir, handshake.Options{Now: f.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	mintWith := func(m *handshake.Minter, audience string) string {
		t.Helper()
		tok, _, _, err := m.Mint(audience, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// tamper rewrites the payload's sub and keeps the signature.
	tamper := func(tok string) string {
		parts := strings.Split(tok, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"alice"`, `"admin"`, 1)))
		return strings.Join(parts, ".")
	}
	used := f.mintFor(t, handshake.AlgHS256, "alice")
	if w := f.exchange(used); w.Code != http.StatusCreated {
		t.Fatalf("first exchange: got %d %s", w.Code, w.Body)
	}

	tests := []struct {
		name   string
		token  func() string
		reason string
	}{
		{"garbage", func() string { return "not.a.token" }, "malformed"},
		{"empty", func() string { return "" }, "malformed"},
		{"expired", func() string {
			// Minted as long ago as its lifetime plus the leeway.
			past := handshake.DefaultTTL + handshake.DefaultLeeway + time.Second
			f.clock.Skip(-past)
			defer f.clock.Skip(past)
			return f.mintFor(t, handshake.AlgHS256, "alice")
		}, "expired"},
		{"wrong audience", func() string { return mintWith(otherMinter(issA, "https://c.example"), "https://c.example") }, "audience"},
		{"unknown issuer", func() string { return mintWith(otherMinter("https://evil.example", issB), issB) }, "issuer"},
		{"tampered", func() string { return tamper(f.mintFor(t, handshake.AlgHS256, "alice")) }, "signature"},
		{"replayed", func() string { return used }, "replayed"},
		{"session token", func() string { return f.b.create(t, `{"subject":"alice"}`).Token }, "malformed"},
	}
	var bodies []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := exchangeFailures(t, f.b)
			w := f.exchange(tt.token())
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("got %d %s, want 401", w.Code, w.Body)
			}
			if got := w.Body.String(); got != `{"error":"unauthenticated"}`+"\n" {
				t.Errorf("body: got %q, want exactly {\"error\":\"unauthenticated\"}", got)
			}
			if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate: got %q, want Bearer…", w.Header().Get("WWW-Authenticate"))
			}
			if len(w.Result().Cookies()) != 0 {
				t.Error("a refused exchange set a cookie")
			}
			bodies = append(bodies, w.Body.String())
			after := exchangeFailures(t, f.b)
			if after[tt.reason] != before[tt.reason]+1 {
				t.Errorf("metric reason=%q: got %d, want %d (all: %v)", tt.reason, after[tt.reason], before[tt.reason]+1, after)
			}
		})
	}
	if len(slices.Compact(bodies)) != 1 {
		t.Errorf("refusal bodies differ: %q", slices.Compact(bodies))
	}
	if !strings.Contains(f.b.log.String(), `"reason":"replayed"`) {
		t.Error("the log does not name the refusal's reason")
	}
}

// TestHandshakeExchangeLoginCSRF: a browser on another site cannot make a
// victim's browser exchange the attacker's token (login CSRF), and such an
// attempt does not use the token up.
func TestHandshakeExchangeLoginCSRF(t *testing.T) {
	f := newHSFixture(t)
	tok := f.mintFor(t, handshake.AlgHS256, "mallory")
	for _, tt := range []struct {
		name   string
		header []string
		status int
		code   string
	}{
		{"cross-site fetch", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, "cross_origin"},
		{"same-site fetch", []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden, "cross_origin"},
		{"foreign Origin", []string{"Origin", "https://evil.example"}, http.StatusForbidden, "cross_origin"},
		{"text/plain form", []string{"Content-Type", "text/plain"}, http.StatusBadRequest, "bad_request"},
		{"urlencoded form", []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusBadRequest, "bad_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := f.exchange(tok, tt.header...)
			wantError(t, w, tt.status, tt.code, "")
			if len(w.Result().Cookies()) != 0 {
				t.Error("a refused exchange set a cookie")
			}
		})
	}
	if w := f.exchange(tok, "Sec-Fetch-Site", "same-origin"); w.Code != http.StatusCreated {
		t.Errorf("same-origin exchange after the refused ones: got %d %s, want 201 (the token was not used up)", w.Code, w.Body)
	}
	// A safe method never exchanges.
	get := "/v1/handshakes/exchange?token=" + url.QueryEscape(f.mintFor(t, handshake.AlgHS256, "mallory"))
	w := serve(f.b.pub, req(http.MethodGet, get, nil, "Host", "127.0.0.1:8080"))
	wantError(t, w, http.StatusMethodNotAllowed, "method_not_allowed", "")
	if w.Header().Get("Allow") == "" || len(w.Result().Cookies()) != 0 {
		t.Errorf("GET exchange: got Allow %q and cookies %v, want an Allow header and no cookie", w.Header().Get("Allow"), w.Result().Cookies())
	}
}

// TestHandshakeExchangeEndsPlantedSession: a browser that brings a session
// cookie to an exchange leaves with a new session, and the old one is dead
// (ASVS 7.2.4, session fixation).
func TestHandshakeExchangeEndsPlantedSession(t *testing.T) {
	f := newHSFixture(t)
	planted := f.b.create(t, `{"subject":"mallory"}`).Token
	w := f.exchange(f.mintFor(t, handshake.AlgHS256, "alice"), "Cookie", tether.CookieName+"="+planted)
	if w.Code != http.StatusCreated {
		t.Fatalf("exchange: got %d %s, want 201", w.Code, w.Body)
	}
	if got := f.b.status(planted); got != http.StatusUnauthorized {
		t.Errorf("the planted session after the exchange: got %d, want 401", got)
	}
}

// TestTokenEndpoint: the RFC 8693 grant at /oauth2/token, with RFC 6749
// error responses.
func TestTokenEndpoint(t *testing.T) {
	f := newHSFixture(t)

	type success struct {
		AccessToken     string `json:"access_token"`
		IssuedTokenType string `json:"issued_token_type"`
		TokenType       string `json:"token_type"`
		ExpiresIn       int    `json:"expires_in"`
	}
	for _, tt := range []struct {
		alg, typ string
	}{
		{handshake.AlgHS256, urnJWT},
		{handshake.AlgEdDSA, urnJWT},
		{handshake.AlgV4Public, urnPASETO},
		{handshake.AlgV4Local, urnPASETO},
	} {
		t.Run(tt.alg, func(t *testing.T) {
			form := grant(f.mintFor(t, tt.alg, "erin"), tt.typ)
			form.Set("requested_token_type", urnAccessToken)
			w := f.token(form)
			if w.Code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", w.Code, w.Body)
			}
			if cc, p := w.Header().Get("Cache-Control"), w.Header().Get("Pragma"); cc != "no-store" || p != "no-cache" {
				t.Errorf("Cache-Control %q, Pragma %q: want no-store and no-cache", cc, p)
			}
			got := decode[success](t, w)
			if got.IssuedTokenType != urnAccessToken || got.TokenType != "Bearer" || !strings.HasPrefix(got.AccessToken, tether.TokenPrefix) {
				t.Errorf("got %+v, want an opaque Bearer access_token", got)
			}
			if want := int((24 * time.Hour).Seconds()); got.ExpiresIn != want {
				t.Errorf("expires_in: got %d, want %d (the session lifetime)", got.ExpiresIn, want)
			}
			if len(w.Result().Cookies()) != 0 {
				t.Error("the token endpoint set a cookie")
			}
			w = f.b.bearer(http.MethodGet, "/v1/session", got.AccessToken)
			if w.Code != http.StatusOK || decode[tether.Session](t, w).AuthMethod != "handshake" {
				t.Errorf("access_token at B: got %d %s, want 200 with auth_method handshake", w.Code, w.Body)
			}
		})
	}

	used := f.mintFor(t, handshake.AlgHS256, "erin")
	if w := f.token(grant(used, urnJWT)); w.Code != http.StatusOK {
		t.Fatalf("first grant: got %d %s", w.Code, w.Body)
	}
	withGrantType := func(gt string) url.Values {
		v := grant(f.mintFor(t, handshake.AlgHS256, "erin"), urnJWT)
		v.Set("grant_type", gt)
		return v
	}
	for _, tt := range []struct {
		name   string
		form   url.Values
		header []string
		code   string
	}{
		{"unsupported grant_type", withGrantType("authorization_code"), nil, "unsupported_grant_type"},
		{"missing grant_type", withGrantType(""), nil, "unsupported_grant_type"},
		{"missing subject_token", url.Values{"grant_type": {urnTokenExchange}, "subject_token_type": {urnJWT}}, nil, "invalid_request"},
		{"unknown subject_token_type", grant(f.mintFor(t, handshake.AlgHS256, "erin"), "urn:ietf:params:oauth:token-type:saml2"), nil, "invalid_request"},
		{"other requested_token_type", func() url.Values {
			v := grant(f.mintFor(t, handshake.AlgHS256, "erin"), urnJWT)
			v.Set("requested_token_type", "urn:ietf:params:oauth:token-type:jwt")
			return v
		}(), nil, "invalid_request"},
		{"JSON body", grant(f.mintFor(t, handshake.AlgHS256, "erin"), urnJWT), []string{"Content-Type", "application/json"}, "invalid_request"},
		{"garbage token", grant("garbage", urnJWT), nil, "invalid_grant"},
		{"replayed token", grant(used, urnJWT), nil, "invalid_grant"},
		{"JWT called PASETO", grant(f.mintFor(t, handshake.AlgHS256, "erin"), urnPASETO), nil, "invalid_grant"},
		{"PASETO called JWT", grant(f.mintFor(t, handshake.AlgV4Local, "erin"), urnJWT), nil, "invalid_grant"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := req(http.MethodPost, "/oauth2/token", strings.NewReader(tt.form.Encode()), "RemoteAddr", "127.0.0.1:40001")
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if len(tt.header) == 2 {
				r.Header.Set(tt.header[0], tt.header[1])
			}
			w := serve(f.b.pub, r)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", w.Code, w.Body)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control: got %q, want no-store", cc)
			}
			got := decode[map[string]string](t, w)
			if got["error"] != tt.code {
				t.Errorf("error: got %q, want %q", got["error"], tt.code)
			}
			if _, ok := got["message"]; ok {
				t.Errorf("body %v: RFC 6749 errors carry error_description, not message", got)
			}
			for k := range got {
				if k != "error" && k != "error_description" {
					t.Errorf("body %v: unexpected member %q", got, k)
				}
			}
			if tt.code != "invalid_grant" && got["error_description"] == "" {
				t.Errorf("body %v: want an error_description saying what is wrong", got)
			}
			if tt.code == "invalid_grant" && got["error_description"] != "" {
				t.Errorf("body %v: invalid_grant must not say which check failed", got)
			}
		})
	}
	if n := exchangeFailures(t, f.b)["token_type"]; n != 2 {
		t.Errorf("metric reason=token_type: got %d, want 2", n)
	}
}

// TestJWKSAndKeyRotation: the JWKS holds public keys only; the admin API
// lists and rotates the keys, after which the JWKS lists both generations,
// and B, which cached A's JWKS before, accepts tokens signed with the new
// keys at once.
func TestJWKSAndKeyRotation(t *testing.T) {
	f := newHSFixture(t)
	type jwk map[string]any
	jwks := func() []jwk {
		t.Helper()
		w := serve(f.a.pub, req(http.MethodGet, "/.well-known/jwks.json", nil))
		if w.Code != http.StatusOK {
			t.Fatalf("JWKS: got %d", w.Code)
		}
		set := decode[struct{ Keys []jwk }](t, w)
		for _, k := range set.Keys {
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
				if _, ok := k[private]; ok {
					t.Errorf("JWKS entry %v has private member %q", k["kid"], private)
				}
			}
			if k["kid"] == "" || k["use"] != "sig" || (k["alg"] != handshake.AlgEdDSA && k["alg"] != handshake.AlgES256) {
				t.Errorf("JWKS entry %v: want kid, use sig and alg EdDSA or ES256", k)
			}
		}
		return set.Keys
	}
	kidsOf := func(keys []jwk) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k["kid"].(string))
		}
		slices.Sort(out)
		return out
	}
	type keyList struct {
		Keys []struct {
			KID       string    `json:"kid"`
			Alg       string    `json:"alg"`
			CreatedAt time.Time `json:"created_at"`
			State     string    `json:"state"`
			RetiresAt time.Time `json:"retires_at"`
		} `json:"keys"`
	}

	before := jwks()
	if len(before) != 2 {
		t.Fatalf("JWKS: got %d keys, want 2 (Ed25519 and P-256)", len(before))
	}
	w := f.a.admin(http.MethodGet, "/v1/keys", "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /v1/keys: got %d %s", w.Code, w.Body)
	}
	listed := decode[keyList](t, w)
	if len(listed.Keys) != 2 {
		t.Fatalf("keys: got %+v, want 2", listed)
	}
	for _, k := range listed.Keys {
		if k.State != handshake.KeyActive || k.CreatedAt.IsZero() || !slices.Contains(kidsOf(before), k.KID) {
			t.Errorf("key %+v: want an active key that the JWKS lists", k)
		}
	}
	if strings.Contains(w.Body.String(), `"d"`) || strings.Contains(w.Body.String(), "pkcs8") {
		t.Errorf("key list holds key material: %s", w.Body)
	}
	if w := serve(f.a.adm, req(http.MethodGet, "/v1/keys", nil)); w.Code != http.StatusUnauthorized {
		t.Errorf("GET /v1/keys without the admin key: got %d, want 401", w.Code)
	}
	if w := serve(f.a.adm, req(http.MethodPost, "/v1/keys/rotate", nil)); w.Code != http.StatusUnauthorized {
		t.Errorf("rotate without the admin key: got %d, want 401", w.Code)
	}

	// B caches A's JWKS now, before the rotation.
	if w := f.exchange(f.mintFor(t, handshake.AlgEdDSA, "frank")); w.Code != http.StatusCreated {
		t.Fatalf("EdDSA exchange before rotation: got %d %s", w.Code, w.Body)
	}
	w = f.a.admin(http.MethodPost, "/v1/keys/rotate", "")
	if w.Code != http.StatusOK {
		t.Fatalf("rotate: got %d %s", w.Code, w.Body)
	}
	rotated := decode[keyList](t, w)
	states := map[string]int{}
	for _, k := range rotated.Keys {
		states[k.State]++
		if k.State == handshake.KeyRetiring && !k.RetiresAt.After(time.Now()) {
			t.Errorf("retiring key %s: retires_at %v, want in the future", k.KID, k.RetiresAt)
		}
	}
	if states[handshake.KeyActive] != 2 || states[handshake.KeyRetiring] != 2 {
		t.Errorf("after rotate: got states %v, want 2 active and 2 retiring", states)
	}
	after := kidsOf(jwks())
	for _, kid := range kidsOf(before) {
		if !slices.Contains(after, kid) {
			t.Errorf("JWKS after rotation lacks the retiring kid %s", kid)
		}
	}
	if len(after) != 4 {
		t.Errorf("JWKS after rotation: got %d kids, want 4 (old and new of each)", len(after))
	}

	// (B pins A's v4.public key by file, so PASETO is not part of this: a
	// rotation there needs the receiver's key file replaced.)
	for _, alg := range []string{handshake.AlgEdDSA, handshake.AlgES256} {
		if w := f.exchange(f.mintFor(t, alg, "frank")); w.Code != http.StatusCreated {
			t.Errorf("%s exchange right after rotation: got %d %s, want 201 (B refetches on the new kid)", alg, w.Code, w.Body)
		}
	}

	t.Run("node without a key ring", func(t *testing.T) {
		w := serve(f.b.pub, req(http.MethodGet, "/.well-known/jwks.json", nil))
		if w.Code != http.StatusOK || strings.TrimSpace(w.Body.String()) != `{"keys":[]}` {
			t.Errorf("got %d %s, want 200 {\"keys\":[]}", w.Code, w.Body)
		}
		if w := f.b.admin(http.MethodPost, "/v1/keys/rotate", ""); w.Code != http.StatusBadRequest {
			t.Errorf("rotate without a ring: got %d, want 400", w.Code)
		}
	})
}

// TestExchangeConcurrentOnce: one token presented by 32 clients at once is
// exchanged exactly once.
func TestExchangeConcurrentOnce(t *testing.T) {
	f := newHSFixture(t)
	for _, alg := range []string{handshake.AlgHS256, handshake.AlgV4Public} {
		t.Run(alg, func(t *testing.T) {
			tok := f.mintFor(t, alg, "grace")
			before := exchangeFailures(t, f.b)["replayed"]
			const n = 32
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				codes = make([]int, n)
			)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					if i%2 == 0 {
						codes[i] = f.exchange(tok).Code
					} else {
						codes[i] = f.token(grant(tok, map[bool]string{true: urnPASETO, false: urnJWT}[strings.HasPrefix(tok, "v4.")])).Code
					}
				}()
			}
			close(start)
			wg.Wait()
			won := 0
			for i, c := range codes {
				switch {
				case c == http.StatusCreated || c == http.StatusOK:
					won++
				case i%2 == 0 && c == http.StatusUnauthorized, i%2 == 1 && c == http.StatusBadRequest:
				default:
					t.Errorf("client %d: got %d, want a success or a refusal", i, c)
				}
			}
			if won != 1 {
				t.Errorf("successes: got %d, want exactly 1 (codes %v)", won, codes)
			}
			if got := exchangeFailures(t, f.b)["replayed"] - before; got != n-1 {
				t.Errorf("replays counted: got %d, want %d", got, n-1)
			}
		})
	}
}

// TestExchangeStoreDown: when the store cannot decide, the exchange fails
// closed with 503, never 201 and never the 401 of a bad token, and the token
// is not used up: the replay guard never recorded it.
func TestExchangeStoreDown(t *testing.T) {
	f := newHSFixture(t)
	tok := f.mintFor(t, handshake.AlgHS256, "heidi")

	f.bStore.down.Store(true)
	before := exchangeFailures(t, f.b)
	wantError(t, f.exchange(tok), http.StatusServiceUnavailable, "unavailable", "")
	w := f.token(grant(tok, urnJWT))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("token endpoint while the store is down: got %d %s, want 503", w.Code, w.Body)
	}
	if after := exchangeFailures(t, f.b); !maps.Equal(after, before) {
		t.Errorf("failure metric while the store is down: got %v, want unchanged %v (not a refusal)", after, before)
	}
	f.bStore.down.Store(false)
	if w := f.exchange(tok); w.Code != http.StatusCreated {
		t.Errorf("the same token once the store is back: got %d %s, want 201", w.Code, w.Body)
	}

	t.Run("memstore closed", func(t *testing.T) {
		g := newHSFixture(t)
		tok := g.mintFor(t, handshake.AlgEdDSA, "heidi")
		g.bStore.Store.Close()
		wantError(t, g.exchange(tok), http.StatusServiceUnavailable, "unavailable", "")
		if w := g.token(grant(tok, urnJWT)); w.Code != http.StatusServiceUnavailable {
			t.Errorf("token endpoint: got %d %s, want 503", w.Code, w.Body)
		}
	})
}

// TestExchangeFailuresRateLimited: a client that keeps presenting bad tokens
// is slowed down (429 with Retry-After); only refusals are charged, so good
// exchanges from one address are never capped.
func TestExchangeFailuresRateLimited(t *testing.T) {
	f := newHSFixture(t)
	for range 150 { // more good exchanges than the failure burst
		if w := f.exchange(f.mintFor(t, handshake.AlgHS256, "alice")); w.Code != http.StatusCreated {
			t.Fatalf("good exchange: got %d %s, want 201", w.Code, w.Body)
		}
	}
	// The bucket refills while the loop runs (20/s), so past the burst of
	// 100 the 429 comes within a few more attempts however slow the machine.
	var last *httptest.ResponseRecorder
	n := 0
	for range 300 {
		n++
		if last = f.exchange("not-a-token"); last.Code == http.StatusTooManyRequests {
			break
		}
	}
	if n <= 100 {
		t.Errorf("refused at failure %d, within the burst of 100", n)
	}
	wantError(t, last, http.StatusTooManyRequests, "rate_limited", "")
	if last.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

// TestHandshakeCarriesLoginTime: the session B makes from A's handshake keeps
// the time alice logged in at A, not the time of the exchange (ASVS 7.6.1).
func TestHandshakeCarriesLoginTime(t *testing.T) {
	f := newHSFixture(t)
	alice := f.a.create(t, `{"subject":"alice"}`)
	w := f.mintHTTP(t, alice.Token, issB)
	if w.Code != http.StatusCreated {
		t.Fatalf("mint: got %d %s, want 201", w.Code, w.Body)
	}
	minted := decode[struct {
		Token string `json:"token"`
	}](t, w)
	w = f.exchange(minted.Token)
	if w.Code != http.StatusCreated {
		t.Fatalf("exchange: got %d %s, want 201", w.Code, w.Body)
	}
	want := alice.Session.CreatedAt.Truncate(time.Second)
	if got := decode[exchanged](t, w).Session.AuthTime; !got.Equal(want) {
		t.Errorf("auth_time at B: got %v, want alice's login at A, %v", got, want)
	}
}
