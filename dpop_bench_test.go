package tether_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/dpop"
	"github.com/tetherhq/tether/dpop/dpoptest"
	"github.com/tetherhq/tether/internal/bench"
	"github.com/tetherhq/tether/store/boltstore"
	"github.com/tetherhq/tether/store/memstore"
	"github.com/tetherhq/tether/store/redisstore"
)

// BenchmarkAuthenticateDPoP is the cost per request of a DPoP-bound session
// beside a bearer one, through Authenticate on a warm cache: parse, cache
// hit, and for DPoP the proof's signature, claims and replay check. The
// proofs are made before the clock starts, one per request, as clients
// would send them. "single-node" is the embedded store's default (the jti
// held in memory); "nonce" binds proofs to the node (memory too, plus the
// nonce's HMAC); "guard=…" also consumes each proof's jti in that store, the
// default of a shared store without nonces.
func BenchmarkAuthenticateDPoP(b *testing.B) {
	const url = "https://api.example.test/v1/orders"
	stores := map[string]func(b *testing.B) tether.Store{
		"memory": func(*testing.B) tether.Store { return memstore.New() },
		"bolt": func(b *testing.B) tether.Store {
			s, err := boltstore.Open(filepath.Join(b.TempDir(), "tether.db"), boltstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"redis": func(b *testing.B) tether.Store {
			addr := os.Getenv("TETHER_TEST_REDIS_ADDR")
			if addr == "" {
				b.Skip("TETHER_TEST_REDIS_ADDR not set")
			}
			s, err := redisstore.Open(context.Background(), "redis://"+addr+"/0?prefix=tetherbench-dpop:", redisstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	run := func(b *testing.B, store string, alg jose.SignatureAlgorithm, cfg dpop.Config) {
		st := stores[store](b)
		defer st.Close()
		m, err := tether.NewManager(tether.Config{Store: st, DPoP: cfg})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		p := tether.CreateParams{Subject: benchSubject, Roles: benchRoles}
		var k *dpoptest.Key
		if alg != "" {
			if k, err = dpoptest.NewKey(alg); err != nil {
				b.Fatal(err)
			}
			p.JKT = k.JKT
		}
		token, _, err := m.Create(context.Background(), p)
		if err != nil {
			b.Fatal(err)
		}
		reqs := make([]*http.Request, b.N+1)
		for i := range reqs {
			r := httptest.NewRequest("GET", url, nil)
			if k == nil {
				r.Header.Set("Authorization", "Bearer "+token)
			} else {
				nonce := ""
				if cfg.RequireNonce {
					nonce = m.DPoP().Nonce()
				}
				r.Header.Set("Authorization", "DPoP "+token)
				r.Header.Set("DPoP", k.Sign(dpoptest.Claims("GET", url, token, nonce, time.Now())))
			}
			reqs[i] = r
		}
		if _, _, err := m.Authenticate(reqs[b.N]); err != nil { // warms the cache
			b.Fatal(err)
		}
		b.ReportAllocs()
		cpu0, ok := bench.ProcessCPU()
		b.ResetTimer()
		for i := range b.N {
			if _, _, err := m.Authenticate(reqs[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		// CPU per request: on a shared machine, wall time mostly measures
		// the wait for a core. It leaves out the store's own work in Redis.
		if cpu1, ok1 := bench.ProcessCPU(); ok && ok1 {
			b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
		}
	}
	b.Run("bearer", func(b *testing.B) { run(b, "memory", "", dpop.Config{}) })
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA} {
		b.Run("DPoP-"+string(alg)+"/single-node", func(b *testing.B) { run(b, "bolt", alg, dpop.Config{SingleNode: true}) })
		b.Run("DPoP-"+string(alg)+"/nonce", func(b *testing.B) { run(b, "memory", alg, dpop.Config{RequireNonce: true}) })
		for _, store := range []string{"redis", "bolt"} {
			b.Run("DPoP-"+string(alg)+"/guard="+store, func(b *testing.B) { run(b, store, alg, dpop.Config{}) })
		}
	}
}
