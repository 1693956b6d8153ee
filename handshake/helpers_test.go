package handshake

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
)

const (
	issuerA = "https://a.example" // mints with every format
	issuerX = "https://x.example" // EdDSA public key only
	issuerY = "https://y.example" // EdDSA via jwks_url
	audB    = "https://b.example" // the verifier under test
)

// allAlgs are the five formats, keyed by alg.
var allAlgs = []string{AlgHS256, AlgEdDSA, AlgES256, AlgV4Public, AlgV4Local}

func formatOf(alg string) string {
	if alg == AlgV4Public || alg == AlgV4Local {
		return FormatPASETO
	}
	return FormatJWT
}

// clock is an injectable, settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// memGuard is an in-memory ReplayGuard.
type memGuard struct {
	mu   sync.Mutex
	used map[string]time.Time
	now  func() time.Time
}

func newMemGuard(now func() time.Time) *memGuard {
	return &memGuard{used: make(map[string]time.Time), now: now}
}

func (g *memGuard) Consume(_ context.Context, key string, until time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if exp, ok := g.used[key]; ok && g.now().Before(exp) {
		return tether.ErrReplayed
	}
	g.used[key] = until
	return nil
}

var _ ReplayGuard = (*memGuard)(nil)

// env is issuer A's minters (one per alg, all for audience B) and B's
// verifier trusting A (every alg), X (EdDSA) and Y (EdDSA via JWKS).
type env struct {
	dir      string
	clock    *clock
	ring     *KeyRing // A's
	ringX    *KeyRing
	ringY    *KeyRing
	hsKey    []byte
	localKey []byte
	minters  map[string]*Minter
	verifier *Verifier
	cfg      Config // B's
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), clock: newClock(), minters: make(map[string]*Minter)}
	var err error
	if e.ring, err = LoadKeyRing(filepath.Join(e.dir, "ring-a"), Options{Now: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	if e.ringX, err = LoadKeyRing(filepath.Join(e.dir, "ring-x"), Options{Now: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	if e.ringY, err = LoadKeyRing(filepath.Join(e.dir, "ring-y"), Options{Now: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	e.hsKey = randomBytes(t, 32)
	e.localKey = randomBytes(t, 32)
	writeFile(t, e.dir, "hs.key", b64.EncodeToString(e.hsKey)+"\n")
	writeFile(t, e.dir, "local.key", paserkLocal+b64.EncodeToString(e.localKey))
	writeFile(t, e.dir, "ed.pem", pemPublic(t, ringPublic(t, e.ring, AlgEdDSA)))
	writeFile(t, e.dir, "es.jwk", jwkPublic(t, ringPublic(t, e.ring, AlgES256), AlgES256))
	writeFile(t, e.dir, "v4.paserk", paserkPublic+b64.EncodeToString(ringPublic(t, e.ring, AlgEdDSA).(ed25519.PublicKey)))
	writeFile(t, e.dir, "x.pem", pemPublic(t, ringPublic(t, e.ringX, AlgEdDSA)))

	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(e.ringY.JWKS())
	}))
	t.Cleanup(srv.Close)

	for _, alg := range allAlgs {
		spec := AudienceSpec{Format: formatOf(alg), Alg: alg}
		switch alg {
		case AlgHS256:
			spec.KeyFile = "hs.key"
		case AlgV4Local:
			spec.KeyFile = "local.key"
		}
		m, err := NewMinter(issuerA, Config{Audiences: map[string]AudienceSpec{audB: spec}}, e.ring, e.dir, Options{Now: e.clock.Now})
		if err != nil {
			t.Fatalf("NewMinter(%s): %v", alg, err)
		}
		e.minters[alg] = m
	}
	e.cfg = Config{TrustedIssuers: []IssuerSpec{
		{Issuer: issuerA, Format: FormatJWT, Alg: AlgHS256, KeyFile: "hs.key"},
		{Issuer: issuerA, Format: FormatJWT, Alg: AlgEdDSA, PublicKeyFile: "ed.pem"},
		{Issuer: issuerA, Format: FormatJWT, Alg: AlgES256, PublicKeyFile: "es.jwk"},
		{Issuer: issuerA, Format: FormatPASETO, Alg: AlgV4Public, PublicKeyFile: "v4.paserk"},
		{Issuer: issuerA, Format: FormatPASETO, Alg: AlgV4Local, KeyFile: filepath.Join(e.dir, "local.key")},
		{Issuer: issuerX, Format: FormatJWT, Alg: AlgEdDSA, PublicKeyFile: "x.pem"},
		{Issuer: issuerY, Format: FormatJWT, Alg: AlgEdDSA, JWKSURL: srv.URL + "/.well-known/jwks.json"},
	}}
	if e.verifier, err = NewVerifier(audB, e.cfg, e.dir, Options{Now: e.clock.Now, HTTPClient: srv.Client()}); err != nil {
		t.Fatal(err)
	}
	return e
}

// mint mints a token for audB B with alg.
func (e *env) mint(t testing.TB, alg string) string {
	t.Helper()
	tok, _, _, err := e.minters[alg].Mint(audB, "alice")
	if err != nil {
		t.Fatalf("Mint(%s): %v", alg, err)
	}
	return tok
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func ringPublic(t testing.TB, r *KeyRing, alg string) any {
	t.Helper()
	k, err := r.signer(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k.priv.Public()
}

func ringPrivate(t testing.TB, r *KeyRing, alg string) (string, any) {
	t.Helper()
	k, err := r.signer(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k.kid, k.priv
}

func pemPublic(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func jwkPublic(t testing.TB, pub any, alg string) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: pub, Algorithm: alg, Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// signJWTWith signs c with a typed key through the package's own JWT path.
func signJWTWith(t testing.TB, alg string, key any, kid string, c *Claims) string {
	t.Helper()
	signer, err := newJWTSigner(jose.SignatureAlgorithm(alg), key, kid)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := signJWT(signer, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// craftJWT builds a compact JWS from literal header and payload JSON, signed
// by sign (nil: an empty signature). It bypasses every library check, to
// build the tokens an attacker would.
func craftJWT(header, payload string, sign func(input []byte) []byte) string {
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + b64.EncodeToString(sig)
}

func signHS256(key []byte) func([]byte) []byte {
	return func(input []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(input)
		return m.Sum(nil)
	}
}

func signEd25519(key ed25519.PrivateKey) func([]byte) []byte {
	return func(input []byte) []byte { return ed25519.Sign(key, input) }
}

// signES256 signs with JWS's fixed-width r||s encoding.
func signES256(key *ecdsa.PrivateKey) func([]byte) []byte {
	return func(input []byte) []byte {
		h := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, key, h[:])
		if err != nil {
			panic(err)
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
}

// claimsJSON is a valid claims set for B from A at now, in a fixed order;
// set replaces members ("" deletes one) and extra appends raw members.
func claimsJSON(now time.Time, set map[string]string, extra ...string) string {
	members := map[string]string{
		"iss": `"` + issuerA + `"`, "sub": `"alice"`, "aud": `"` + audB + `"`,
		"iat": strconv.FormatInt(now.Unix(), 10), "exp": strconv.FormatInt(now.Add(time.Minute).Unix(), 10),
		"jti": `"` + rand.Text() + `"`,
	}
	for k, v := range set {
		members[k] = v
	}
	var parts []string
	for _, k := range []string{"iss", "sub", "aud", "iat", "nbf", "exp", "jti"} {
		if v := members[k]; v != "" {
			parts = append(parts, `"`+k+`":`+v)
		}
	}
	return "{" + strings.Join(append(parts, extra...), ",") + "}"
}
