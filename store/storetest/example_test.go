package storetest_test

import (
	"testing"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/redisstore"
	"github.com/tetherhq/tether/store/storetest"
)

// A networked store's fault test: a proxy per case between the stores and
// the server, which RunFaults cuts and restores. (Compiled, not run: it
// needs a Redis.)
func ExampleRunFaults() {
	_ = func(t *testing.T) {
		addr := servicetest.SharedRedis(t)
		storetest.RunFaults(t, func(t *testing.T) storetest.Fault {
			px := servicetest.NewProxy(t, addr)
			url := "redis://" + px.Addr + "?prefix=" + servicetest.RedisPrefix(t, addr)
			return storetest.Fault{
				Open: func(tb testing.TB) tether.Store {
					s, err := redisstore.Open(t.Context(), url, redisstore.Options{})
					if err != nil {
						tb.Fatal(err)
					}
					tb.Cleanup(func() { s.Close() })
					return s
				},
				Cut:     px.Stop,
				Restore: func() { px.Start(t) },
			}
		})
	}
}

// A failover test drives Traffic through the fault it causes and checks the
// history afterwards through a store on the surviving server.
func ExampleStartTraffic() {
	_ = func(t *testing.T, s, afterFailover tether.Store, failover func()) {
		tr := storetest.StartTraffic(s, 4)
		defer tr.Stop()
		tr.WaitAcknowledged(t, 1000)
		failover()
		tr.WaitAcknowledged(t, tr.Acknowledged()+200)
		if l := tr.Check(t, afterFailover); !l.Zero() {
			t.Errorf("the failover lost acknowledged writes: %v", l)
		}
	}
}
