package tether_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"aidanwoods.dev/go-paseto"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

// The session every format carries: the same subject, session ID, roles,
// issuer, audience and times, so that sizes and costs compare like for like.
const (
	benchSubject  = "alice@example.com"
	benchIssuer   = "https://tether.example"
	benchAudience = "https://app.example"
)

var benchRoles = []string{"admin", "editor"}

// newCachedManager returns a Manager on the real clock over a memstore it
// watches, whose cache is on by the time it returns.
func newCachedManager(tb testing.TB, cfg tether.Config) *tether.Manager {
	tb.Helper()
	mem := memstore.New()
	ws := &watchingStore{countingStore: &countingStore{Store: mem}, inner: mem, ready: make(chan struct{})}
	cfg.Store = ws
	m, err := tether.NewManager(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	<-ws.ready
	return m
}

func benchTokens(tb testing.TB, m *tether.Manager, n int) []string {
	tb.Helper()
	tokens := make([]string, n)
	for i := range tokens {
		tok, _, err := m.Create(ctx, tether.CreateParams{
			Subject: fmt.Sprintf("user%d@example.com", i%(n/2+1)), Roles: benchRoles,
			Metadata: map[string]string{"ip": "192.0.2.1", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
		})
		if err != nil {
			tb.Fatal(err)
		}
		tokens[i] = tok
	}
	return tokens
}

func BenchmarkValidate(b *testing.B) {
	const sessions = 1024
	run := func(b *testing.B, m *tether.Manager) {
		tokens := benchTokens(b, m, sessions)
		for _, tok := range tokens { // warm the cache, if there is one
			if _, err := m.Validate(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := m.Validate(ctx, tokens[i%sessions]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
	b.Run("cached", func(b *testing.B) { run(b, newCachedManager(b, tether.Config{})) })
	b.Run("store", func(b *testing.B) {
		m, err := tether.NewManager(tether.Config{Store: memstore.New(), MaxStaleness: -1})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		run(b, m)
	})
	b.Run("parallel-cached", func(b *testing.B) {
		m := newCachedManager(b, tether.Config{})
		tokens := benchTokens(b, m, sessions)
		for _, tok := range tokens {
			if _, err := m.Validate(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		var start atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(start.Add(97)) // each goroutine starts elsewhere in the set
			for pb.Next() {
				if _, err := m.Validate(ctx, tokens[i%sessions]); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}

// sessionClaims is the JWT a stateless design would hand out for the same session.
type sessionClaims struct {
	jwt.Claims
	SessionID string   `json:"sid"`
	Roles     []string `json:"roles"`
}

func newSessionClaims() sessionClaims {
	now := time.Now()
	return sessionClaims{
		Claims: jwt.Claims{
			Subject: benchSubject, Issuer: benchIssuer, Audience: jwt.Audience{benchAudience},
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(24 * time.Hour)),
		},
		SessionID: tether.NewID(),
		Roles:     benchRoles,
	}
}

func signJWT(tb testing.TB, alg jose.SignatureAlgorithm, key any) string {
	tb.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(newSessionClaims()).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// verifyJWT is what a JWT session check does on every request: parse with the
// one allowed algorithm, verify the signature, decode the claims, check them.
func verifyJWT(raw string, alg jose.SignatureAlgorithm, key any) (*sessionClaims, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{alg})
	if err != nil {
		return nil, err
	}
	var c sessionClaims
	if err := tok.Claims(key, &c); err != nil {
		return nil, err
	}
	if err := c.Claims.Validate(jwt.Expected{Issuer: benchIssuer, AnyAudience: jwt.Audience{benchAudience}}); err != nil {
		return nil, err
	}
	return &c, nil
}

func hsKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

func BenchmarkJWTVerify(b *testing.B) {
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	hs := hsKey()
	tests := []struct {
		name           string
		alg            jose.SignatureAlgorithm
		sign, verifyBy any
	}{
		{"HS256", jose.HS256, hs, hs},
		{"EdDSA", jose.EdDSA, edPriv, edPub},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			raw := signJWT(b, tt.alg, tt.sign)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := verifyJWT(raw, tt.alg, tt.verifyBy); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func signPASETO() (string, paseto.V4AsymmetricPublicKey) {
	c := newSessionClaims()
	t := paseto.NewToken()
	t.SetSubject(c.Subject)
	t.SetIssuer(c.Issuer)
	t.SetAudience(benchAudience)
	t.SetIssuedAt(c.IssuedAt.Time())
	t.SetExpiration(c.Expiry.Time())
	t.SetString("sid", c.SessionID)
	t.Set("roles", c.Roles)
	key := paseto.NewV4AsymmetricSecretKey()
	return t.V4Sign(key, nil), key.Public()
}

func BenchmarkPASETOVerify(b *testing.B) {
	b.Run("v4.public", func(b *testing.B) {
		raw, pub := signPASETO()
		parser := paseto.NewParser() // NotExpired
		parser.AddRule(paseto.IssuedBy(benchIssuer), paseto.ForAudience(benchAudience))
		b.ReportAllocs()
		for b.Loop() {
			tok, err := parser.ParseV4Public(pub, raw, nil)
			if err != nil {
				b.Fatal(err)
			}
			var roles []string
			if err := tok.Get("roles", &roles); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTokenBytes reports what each design puts on the wire for the same
// session (its timing is meaningless).
func BenchmarkTokenBytes(b *testing.B) {
	m := newCachedManager(b, tether.Config{})
	opaque := benchTokens(b, m, 1)[0]
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	hs := signJWT(b, jose.HS256, hsKey())
	ed := signJWT(b, jose.EdDSA, edPriv)
	pas, _ := signPASETO()
	for b.Loop() {
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(len(opaque)), "opaque-bytes")
	b.ReportMetric(float64(len(hs)), "jwt-hs256-bytes")
	b.ReportMetric(float64(len(ed)), "jwt-eddsa-bytes")
	b.ReportMetric(float64(len(pas)), "paseto-v4public-bytes")
}

// cacheBytesPerSession fills a Manager's cache with n sessions and returns the
// heap it grew by, per session. The store's records exist before and after
// the measurement, so only the cache's share is counted.
func cacheBytesPerSession(tb testing.TB, n int) (float64, *tether.Manager, []string) {
	tb.Helper()
	m := newCachedManager(tb, tether.Config{CacheSize: n, MaxStaleness: time.Hour})
	tokens := benchTokens(tb, m, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, tok := range tokens {
		if _, err := m.Validate(ctx, tok); err != nil {
			tb.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got := m.Stats().CachedSessions; got != n {
		tb.Fatalf("CachedSessions = %d, want %d", got, n)
	}
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n), m, tokens
}

// BenchmarkCachedSessions reports the memory one cached session costs, with
// the cache full, and times validation against that full cache.
func BenchmarkCachedSessions(b *testing.B) {
	const n = 100_000
	perSession, m, tokens := cacheBytesPerSession(b, n)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := m.Validate(ctx, tokens[(i*7919)%n]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(perSession, "B/cached-session")
}
