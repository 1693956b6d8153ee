package tether_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/selfcontained"
	"github.com/tetherhq/tether/store/memstore"
)

// The session every format carries: the same subject, session ID, roles,
// issuer and times, so that sizes and costs compare like for like.
const (
	benchSubject = "alice@example.com"
	benchIssuer  = "https://tether.example"
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

var benchMetadata = map[string]string{"ip": "192.0.2.1", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}

// benchTokens creates n sessions for n/2+1 subjects, with md as metadata.
func benchTokens(tb testing.TB, m *tether.Manager, n int, md map[string]string) []string {
	tb.Helper()
	tokens := make([]string, n)
	for i := range tokens {
		tok, _, err := m.Create(ctx, tether.CreateParams{
			Subject: fmt.Sprintf("user%d@example.com", i%(n/2+1)), Roles: benchRoles, Metadata: md,
		})
		if err != nil {
			tb.Fatal(err)
		}
		tokens[i] = tok
	}
	return tokens
}

// warmTokens returns n cached tokens of a Manager on a watched memstore.
func warmTokens(b *testing.B, m *tether.Manager, n int, md map[string]string) []string {
	tokens := benchTokens(b, m, n, md)
	for _, tok := range tokens {
		if _, err := m.Validate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	return tokens
}

func BenchmarkValidate(b *testing.B) {
	const sessions = 1024
	run := func(b *testing.B, m *tether.Manager, md map[string]string) {
		tokens := warmTokens(b, m, sessions, md)
		b.ReportAllocs()
		i := 0
		cpu := processCPU()
		for b.Loop() {
			if _, err := m.Validate(ctx, tokens[i%sessions]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		reportCPU(b, cpu)
	}
	b.Run("cached", func(b *testing.B) { run(b, newCachedManager(b, tether.Config{}), benchMetadata) })
	b.Run("cached-no-metadata", func(b *testing.B) { run(b, newCachedManager(b, tether.Config{}), nil) })
	b.Run("store", func(b *testing.B) {
		m, err := tether.NewManager(tether.Config{Store: memstore.New(), MaxStaleness: -1})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		run(b, m, benchMetadata)
	})
}

// reportCPU reports the process's CPU time per operation since since: what
// an operation costs whatever else the machine runs. It includes the garbage
// collector's share, which is part of the cost.
func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64(processCPU()-since)/float64(b.N), "cpu-ns/op")
}

// BenchmarkValidateParallel is the contention benchmark: every goroutine
// validates cached sessions. Run it with -cpu 1,2,4,8,16; a cache that every
// validation serialised on (one lock, one shared counter) would show ns/op
// rising once goroutines outnumber cores, as they fight over one cache line.
func BenchmarkValidateParallel(b *testing.B) {
	const sessions = 4096
	for _, bc := range []struct {
		name string
		md   map[string]string
	}{{"no-metadata", nil}, {"metadata", benchMetadata}} {
		b.Run(bc.name, func(b *testing.B) {
			m := newCachedManager(b, tether.Config{})
			tokens := warmTokens(b, m, sessions, bc.md)
			b.ReportAllocs()
			b.ResetTimer()
			var start atomic.Int64
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				i := int(start.Add(997)) // each goroutine starts elsewhere in the set
				for pb.Next() {
					if _, err := m.Validate(ctx, tokens[i%sessions]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			reportCPU(b, cpu)
		})
	}
}

// selfContained mints, with the library the demo and `tether bench` use, the
// self-contained token a stateless design would hand out for the same session.
func selfContained(tb testing.TB, format string) (string, selfcontained.Format) {
	tb.Helper()
	f := selfcontained.Find(benchIssuer, format)
	now := time.Now()
	raw, err := f.Mint(selfcontained.Claims{
		Issuer: benchIssuer, Subject: benchSubject, SessionID: tether.NewID(), Roles: benchRoles,
		IssuedAt: now, Expiry: now.Add(24 * time.Hour),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return raw, f
}

// benchVerify times what a stateless session check does on every request:
// parse with the one allowed algorithm, verify, decode and check the claims.
func benchVerify(b *testing.B, format string) {
	raw, f := selfContained(b, format)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Verify(raw, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWTVerify(b *testing.B) {
	b.Run("HS256", func(b *testing.B) { benchVerify(b, "JWT HS256") })
	b.Run("EdDSA", func(b *testing.B) { benchVerify(b, "JWT EdDSA") })
}

func BenchmarkPASETOVerify(b *testing.B) {
	b.Run("v4.public", func(b *testing.B) { benchVerify(b, "PASETO v4.public") })
}

// BenchmarkTokenBytes reports what each design puts on the wire for the same
// session (its timing is meaningless).
func BenchmarkTokenBytes(b *testing.B) {
	m := newCachedManager(b, tether.Config{})
	opaque := benchTokens(b, m, 1, benchMetadata)[0]
	hs, _ := selfContained(b, "JWT HS256")
	ed, _ := selfContained(b, "JWT EdDSA")
	pas, _ := selfContained(b, "PASETO v4.public")
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
	tokens := benchTokens(tb, m, n, benchMetadata)
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
