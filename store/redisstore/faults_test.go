package redisstore

import (
	"testing"

	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/storetest"
)

// TestFaults runs the shared fault cases with a proxy between the stores and
// the shared Redis: stopping it cuts every connection and refuses new ones,
// as a dead server would.
func TestFaults(t *testing.T) {
	addr := servicetest.SharedRedis(t)
	storetest.RunFaults(t, func(t *testing.T) storetest.Fault {
		px := servicetest.NewProxy(t, addr)
		return storetest.Fault{
			Open:    opener("redis://" + px.Addr + "?prefix=" + servicetest.RedisPrefix(t, addr)),
			Cut:     px.Stop,
			Restore: func() { px.Start(t) },
		}
	})
}
