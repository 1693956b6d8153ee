package redisstore

import (
	"strings"
	"testing"

	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/storetest"
)

// TestFaults runs the shared fault cases with a proxy between the stores and
// the shared Redis: stopping it cuts every connection and refuses new ones,
// as a dead server would.
func TestFaults(t *testing.T) {
	addr := servicetest.SharedRedis(t)
	newFault := func(t *testing.T) storetest.Fault {
		px := servicetest.NewProxy(t, addr)
		return storetest.Fault{
			Open:    opener("redis://" + px.Addr + "?prefix=" + servicetest.RedisPrefix(t, addr)),
			Cut:     px.Stop,
			Restore: func() { px.Start(t) },
		}
	}
	storetest.RunFaults(t, newFault)
	storetest.RunEventFaults(t, newFault)
}

// TestFaultsCluster runs them on a Redis Cluster whose nodes announce a
// proxy each as their address, so that cutting the proxies cuts the store
// off from every node. The cases share the cluster, each under a prefix of
// its own.
func TestFaultsCluster(t *testing.T) {
	servicetest.SkipShort(t, "starts a Redis Cluster")
	proxies := servicetest.StartProxiedRedisCluster(t)
	var seeds []string
	for _, px := range proxies {
		seeds = append(seeds, px.Addr)
	}
	newFault := func(t *testing.T) storetest.Fault {
		return storetest.Fault{
			Open: opener("redis+cluster://" + strings.Join(seeds, ",") + "?prefix=" + servicetest.KeyPrefix(t)),
			Cut: func() {
				for _, px := range proxies {
					px.Stop()
				}
			},
			Restore: func() {
				for _, px := range proxies {
					px.Start(t)
				}
			},
		}
	}
	storetest.RunFaults(t, newFault)
	storetest.RunEventFaults(t, newFault)
}
