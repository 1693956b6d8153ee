package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
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
// off from every node; and the case of one node cut off. The cases share the
// cluster, each under a prefix of its own.
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
	t.Run("OneNodeDown", func(t *testing.T) {
		testOneNodeDown(t, "redis+cluster://"+strings.Join(seeds, ",")+"?prefix="+servicetest.KeyPrefix(t), proxies)
	})
}

// testOneNodeDown: with one node that does not hold the log cut off, the
// events of writes to the other nodes still move, and Events and
// AppendEvents still work: only the cut node's slots wait for it.
func testOneNodeDown(t *testing.T, url string, proxies []*servicetest.Proxy) {
	ctx := context.Background()
	s := openCluster(t, url, Options{SweepInterval: time.Hour}, true)
	ports := slotPorts(t, s)
	var cut *servicetest.Proxy
	for _, px := range proxies {
		if !strings.HasSuffix(px.Addr, ":"+ports[keySlot(s.stream)]) {
			cut = px
		}
	}
	cutPort := cut.Addr[strings.LastIndexByte(cut.Addr, ':')+1:]
	// A subject whose state (which Create reads) is on a node left up.
	sub := "one-down-" + tether.NewID()
	for ports[keySlot(s.stateKey(sub))] == cutPort {
		sub = "one-down-" + tether.NewID()
	}
	cut.Stop()
	defer cut.Start(t)
	want := map[string]bool{}
	failed := 0
	for range 30 {
		r := storetest.ScaleRecord(sub)
		ev := createdEvent(r)
		if err := s.Create(ctx, r, ev); err != nil {
			failed++ // its slot is on the cut node
			continue
		}
		want[ev.ID] = true
	}
	if failed == 0 || len(want) == 0 {
		t.Fatalf("%d creates failed, %d succeeded; want some of each with one of the nodes cut off", failed, len(want))
	}
	if err := s.AppendEvents(ctx, tether.Event{ID: "evt_" + tether.NewID(), Time: time.Now().UTC(),
		Type: tether.EventAdminAuthFailed, Actor: tether.Actor{Kind: tether.ActorSystem}}); err != nil {
		t.Fatalf("AppendEvents with a node other than the log's cut off: %v", err)
	}
	exactlyOnce(t, eventCounts(t, s, sub), want)
	// Another node, which drains nothing of s's, sees them too: they moved.
	exactlyOnce(t, eventCounts(t, openCluster(t, url, Options{}, false), sub), want)
}

// slotPorts returns the port of each slot's node, as CLUSTER SLOTS lists
// the nodes' (announced: proxy) addresses.
func slotPorts(t *testing.T, s *Store) *[numSlots]string {
	t.Helper()
	ranges, err := s.c.Do(context.Background(), s.c.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		t.Fatal(err)
	}
	var ports [numSlots]string
	for _, r := range ranges {
		v, err := r.ToArray()
		if err != nil || len(v) < 3 {
			t.Fatalf("CLUSTER SLOTS entry %v: %v", r, err)
		}
		first, err1 := v[0].AsInt64()
		last, err2 := v[1].AsInt64()
		node, err3 := v[2].ToArray()
		if err := errors.Join(err1, err2, err3); err != nil || len(node) < 2 {
			t.Fatalf("CLUSTER SLOTS entry %v: %v", r, err)
		}
		port, err := node[1].AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		for slot := first; slot <= last; slot++ {
			ports[slot] = strconv.FormatInt(port, 10)
		}
	}
	return &ports
}
