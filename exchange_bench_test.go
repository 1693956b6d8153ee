package tether_test

import (
	"fmt"
	"testing"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/memstore"
	"github.com/tetherhq/tether/store/pgstore"
	"github.com/tetherhq/tether/store/redisstore"
)

// BenchmarkExchange: Manager.Exchange alone (the verifier is a map lookup,
// the replay guard the store's), one exchange at a time, on each store: the
// store round trips of an exchange (consume the jti, create the session,
// read the roles) at their latency, and with the issuer guarded
// (GuardOrigin, as an SSF receiver does) one more, the look for a tombstone
// of the handshake's origin.
//
//	go test -run '^$' -bench 'Exchange$' -benchtime 3000x .
func BenchmarkExchange(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) tether.Store
	}{
		{"memory", func(*testing.B) tether.Store { return memstore.New() }},
		{"redis", func(b *testing.B) tether.Store {
			addr := servicetest.SharedRedis(b)
			st, err := redisstore.Open(b.Context(), "redis://"+addr+"/0?prefix="+servicetest.RedisPrefix(b, addr), redisstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
		{"postgres", func(b *testing.B) tether.Store {
			st, err := pgstore.Open(b.Context(), servicetest.FreshPostgres(b), pgstore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
	}
	for _, s := range stores {
		for _, guarded := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/guarded=%v", s.name, guarded), func(b *testing.B) {
				benchExchange(b, s.open(b), guarded)
			})
		}
	}
}

func benchExchange(b *testing.B, st tether.Store, guarded bool) {
	b.Cleanup(func() { st.Close() })
	m, err := tether.NewManager(tether.Config{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	if guarded {
		m.GuardOrigin("https://a.example")
	}
	v := &fakeVerifier{handshakes: map[string]tether.Handshake{}}
	raws := make([]string, b.N)
	for i := range raws {
		raws[i] = fmt.Sprint("h", i)
		v.handshakes[raws[i]] = tether.Handshake{Issuer: "https://a.example", Subject: fmt.Sprint("user", i%100),
			ID: raws[i], IssuedAt: m.Now(), SessionID: "sid-1"}
	}
	b.ResetTimer()
	for _, raw := range raws {
		if _, _, err := m.Exchange(b.Context(), v, raw, tether.ExchangeParams{}); err != nil {
			b.Fatal(err)
		}
	}
}
