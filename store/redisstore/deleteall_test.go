package redisstore

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
)

// DeleteAll removes every key under its own prefix and nothing else, even
// when the prefix holds characters that SCAN MATCH reads as a pattern.
func TestDeleteAll(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		addr := servicetest.SharedRedis(t)
		testDeleteAll(t, "redis://"+addr+"/0?", servicetest.RedisPrefix(t, addr))
	})
	t.Run("cluster", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a Redis Cluster")
		}
		// Keys spread over three primaries: SCAN must visit each.
		addrs := servicetest.StartRedisCluster(t)
		testDeleteAll(t, "redis+cluster://"+strings.Join(addrs, ",")+"?", servicetest.KeyPrefix(t))
	})
}

func testDeleteAll(t *testing.T, url0, base string) {
	ctx := context.Background()
	open := func(prefix string) *Store {
		s, err := Open(ctx, url0+"prefix="+url.QueryEscape(prefix), Options{Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	// "a*:" as a pattern would match "ab:" too.
	owned, neighbour := open(base+"a*:"), open(base+"ab:")
	fill := func(s *Store) {
		now := time.Now()
		for range 2 {
			id := tether.NewID()
			r := &tether.Record{ID: id, Subject: "alice", CreatedAt: now, LastSeenAt: now,
				ExpiresAt: now.Add(time.Hour), IdleExpiresAt: now.Add(time.Hour)}
			if err := s.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetRoles(ctx, "alice", []string{"admin"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Consume(ctx, "jti-1", now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	fill(owned)
	fill(neighbour)

	n, err := owned.DeleteAll(ctx)
	if err != nil || n < 5 {
		t.Fatalf("DeleteAll: got %d keys, %v; want at least 2 records, roles, state, index and the guard", n, err)
	}
	if left, err := owned.List(ctx, "alice"); err != nil || len(left) != 0 {
		t.Errorf("List after DeleteAll: got %d sessions (%v), want none", len(left), err)
	}
	if roles, err := owned.Roles(ctx, "alice"); err != nil || len(roles) != 0 {
		t.Errorf("Roles after DeleteAll: got %v (%v), want none", roles, err)
	}
	if err := owned.Consume(ctx, "jti-1", time.Now().Add(time.Minute)); err != nil {
		t.Errorf("Consume after DeleteAll: got %v, want the guard gone", err)
	}
	if again, err := owned.DeleteAll(ctx); err != nil || again != 1 {
		t.Errorf("DeleteAll again: got %d, %v; want only the guard just consumed", again, err)
	}

	if left, err := neighbour.List(ctx, "alice"); err != nil || len(left) != 2 {
		t.Errorf("neighbour's sessions: got %d (%v), want 2 untouched", len(left), err)
	}
	if err := neighbour.Consume(ctx, "jti-1", time.Now().Add(time.Minute)); !errors.Is(err, tether.ErrReplayed) {
		t.Errorf("neighbour's guard: got %v, want still consumed", err)
	}
}
