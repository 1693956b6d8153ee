package memstore_test

import (
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
	"github.com/tetherhq/tether/store/storetest"
)

func TestConformance(t *testing.T) {
	newStore := func(t *testing.T) tether.Store { return memstore.New() }
	storetest.Run(t, newStore)
	storetest.RunEvents(t, newStore)
}

func TestExpiryEvents(t *testing.T) {
	storetest.RunExpiryEvents(t, func(t *testing.T) tether.Store {
		s := memstore.NewWithOptions(memstore.Options{SweepInterval: 50 * time.Millisecond})
		t.Cleanup(func() { s.Close() })
		return s
	})
	// No sweep: only Create can report the replaced session's expiry.
	storetest.RunExpiryOnReplace(t, func(t *testing.T) tether.Store {
		s := memstore.NewWithOptions(memstore.Options{})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// BenchmarkEventCost: what an event adds to a revocation and to creates.
func BenchmarkEventCost(b *testing.B) {
	storetest.BenchmarkEventCost(b, memstore.New())
}
