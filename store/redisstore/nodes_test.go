package redisstore

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/storetest"
)

// nodes returns an opener of stores on the shared Redis under one prefix of
// the test's own, as servers sharing it would have.
func nodes(tb testing.TB) storetest.Open {
	addr := servicetest.SharedRedis(tb)
	return opener("redis://" + addr + "?prefix=" + servicetest.RedisPrefix(tb, addr))
}

// opener returns an Open of stores on url, which names their prefix.
func opener(url string) storetest.Open {
	return func(tb testing.TB) tether.Store {
		s, err := Open(context.Background(), url, Options{Timeout: 10 * time.Second}) // generous: CI runs many packages at once
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.Close() }) // LIFO: before RedisPrefix deletes the keys
		return s
	}
}

// TestTwoNodes checks that revocations and role changes reach another node.
func TestTwoNodes(t *testing.T) {
	storetest.RunNodes(t, nodes(t))
}

// TestNoGoroutineLeak opens a store, watches it through a Manager, uses it and
// closes everything: the goroutine count must come back down.
func TestNoGoroutineLeak(t *testing.T) {
	servicetest.SharedRedis(t) // skip early without Redis
	before := runtime.NumGoroutine()
	func() {
		var stores []tether.Store
		open := nodes(t)
		m1, m2 := storetest.TwoNodes(t, func(tb testing.TB) tether.Store {
			s := open(tb)
			stores = append(stores, s)
			return s
		})
		token, _, err := m1.Create(context.Background(), tether.CreateParams{Subject: "leak"})
		if err != nil {
			t.Fatal(err)
		}
		storetest.Cached(t, m2, token)
		// Close now rather than at the end of the test.
		m1.Close()
		m2.Close()
		for _, s := range stores {
			s.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after closing:\n%s", before, runtime.NumGoroutine(),
				buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // goroutines wind down asynchronously
	}
}

// BenchmarkRevocationPropagation measures the time from the start of a revoke
// on node 1 until node 2, which holds the session in its cache, refuses the
// token: the pub/sub hop plus cache invalidation. At least 1,000 trials run,
// whatever b.N; p50 and p99 are reported.
func BenchmarkRevocationPropagation(b *testing.B) {
	storetest.BenchmarkPropagation(b, nodes(b), storetest.PropagationOptions{Unit: time.Microsecond})
}

func benchStore(b *testing.B) *Store {
	addr := servicetest.SharedRedis(b)
	return openTest(b, "redis://"+addr, addr)
}

// benchRecord is a session of sub with typical metadata.
func benchRecord(sub string) *tether.Record { return storetest.ScaleRecord(sub) }

// BenchmarkGet reads one session (record, then subject generation).
func BenchmarkGet(b *testing.B) {
	storetest.BenchmarkGet(b, benchStore(b), benchRecord("bench"))
}

// BenchmarkCreate creates sessions, 100 per subject, and reports the Redis
// memory each one takes: its record key (MEMORY USAGE) and, all keys
// included, the growth of used_memory per session.
func BenchmarkCreate(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	used := func() int64 {
		info, err := s.c.Do(ctx, s.c.B().Info().Section("memory").Build()).ToString()
		if err != nil {
			b.Fatal(err)
		}
		for line := range strings.SplitSeq(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		b.Fatal("no used_memory in INFO")
		return 0
	}
	start := used()
	var last *tether.Record
	i := 0
	for b.Loop() {
		last = benchRecord("bench-" + strconv.Itoa(i/100))
		if err := s.Create(ctx, last); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.StopTimer()
	grown := used() - start
	rec, err := s.c.Do(ctx, s.c.B().MemoryUsage().Key(s.recKey(last.ID)).Samples(0).Build()).AsInt64()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(rec), "B/record-key")
	if i >= 1000 { // too noisy below that
		b.ReportMetric(float64(grown)/float64(i), "B/session-all-keys")
	}
}

// TestMemoryPerSession holds the record to its budget of 512 bytes of Redis
// memory, with typical metadata.
func TestMemoryPerSession(t *testing.T) {
	addr := servicetest.SharedRedis(t)
	s := openTest(t, "redis://"+addr, addr)
	ctx := context.Background()
	r := benchRecord("memory")
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	n, err := s.c.Do(ctx, s.c.B().MemoryUsage().Key(s.recKey(r.ID)).Samples(0).Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEMORY USAGE of a session record: %d bytes (value %d bytes)", n, len(encode(r, 0)))
	if n > 512 {
		t.Fatalf("a session record takes %d bytes of Redis memory; budget 512", n)
	}
}

// BenchmarkEventCost: what an event adds to a revocation and to creates.
func BenchmarkEventCost(b *testing.B) {
	storetest.BenchmarkEventCost(b, benchStore(b))
}

// BenchmarkEventCostCluster: the same on a Redis Cluster, where the event
// goes to the slot's outbox and the store's goroutine moves it into the log
// (outbox.go).
func BenchmarkEventCostCluster(b *testing.B) {
	url := "redis+cluster://" + strings.Join(servicetest.StartRedisCluster(b), ",")
	storetest.BenchmarkEventCost(b, openTest(b, url, ""))
}

// BenchmarkTouch slides a session's idle expiry, as every validation that
// finds it due does.
func BenchmarkTouch(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	r := benchRecord("bench-touch")
	if err := s.Create(ctx, r); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		now := time.Now()
		if err := s.Touch(ctx, r.ID, now, now.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
}
