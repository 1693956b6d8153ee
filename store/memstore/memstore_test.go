package memstore_test

import (
	"testing"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
	"github.com/tetherhq/tether/store/storetest"
)

func TestConformance(t *testing.T) {
	newStore := func(t *testing.T) tether.Store { return memstore.New() }
	storetest.Run(t, newStore)
	storetest.RunEvents(t, newStore)
}

// BenchmarkEventCost: what an event adds to a revocation and to creates.
func BenchmarkEventCost(b *testing.B) {
	storetest.BenchmarkEventCost(b, memstore.New())
}
