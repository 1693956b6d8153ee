package redisstore

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/storetest"
)

// TestScale shows that List and DeleteSubject for one subject cost
// O(that subject's sessions), not O(all sessions). It runs two redis-servers
// of its own (so the shared one never holds a million keys): one holding
// about 1,000 sessions, the other 1,000,000 more. On each it makes 100
// subjects of 10 sessions, then times List and DeleteSubject on both,
// alternating between the two servers call by call so that a busy machine
// slows both alike, and checks that the medians are about equal. It also
// reports Redis memory per session at that scale. Only with TETHER_SCALE=1,
// since loading takes a while:
//
//	TETHER_SCALE=1 go test -run TestScale -v -timeout 30m ./store/redisstore/
//
// TETHER_SCALE_SESSIONS overrides the 1,000,000.
func TestScale(t *testing.T) {
	total := storetest.ScaleSessions(t)
	open := func() *Store {
		r := servicetest.StartRedis(t, "--maxmemory-policy", "noeviction")
		// A generous timeout: the load's pipelines are long on a busy machine.
		s, err := Open(context.Background(), "redis://"+r.Addr(), Options{Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	small, large := open(), open()

	memBefore := usedMemory(t, large)
	start := time.Now()
	loadSessions(t, large, "bulk", total)
	load := time.Since(start)
	perSession := float64(usedMemory(t, large)-memBefore) / float64(total)
	t.Logf("loaded %d sessions in %v (%.0f/s, pipelined); %.0f bytes of Redis memory per session, all keys included",
		total, load.Round(time.Millisecond), float64(total)/load.Seconds(), perSession)

	ops := storetest.MeasureSubjectOps(t, []tether.Store{small, large})
	for i, s := range []*Store{small, large} {
		t.Logf("%d keys in Redis: %s", dbKeys(t, s), ops[i])
	}
	storetest.CheckSubjectScaling(t, ops[0], ops[1], total)
}

// loadSessions writes n sessions, 10 per subject, with the key layout and
// encoding Create uses (subject state at generation 0, record, index), but
// pipelined: batches of 20 subjects in one DoMulti each, from 8 goroutines.
// Create itself does three round trips per session, which would make loading
// a million take minutes. A sample is read back through Get and List.
func loadSessions(t *testing.T, s *Store, tag string, n int) {
	t.Helper()
	ctx := context.Background()
	const per, batch = 10, 20 // sessions per subject, subjects per DoMulti
	subjects := (n + per - 1) / per
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for failed.Load() == nil {
				first := int(next.Add(batch)) - batch
				if first >= subjects {
					return
				}
				var cmds rueidis.Commands
				for j := first; j < min(first+batch, subjects); j++ {
					sub := tag + "-" + strconv.Itoa(j)
					var exp time.Time
					for k := range min(per, n-j*per) {
						r := benchRecord(sub)
						exp = r.ExpiresAt
						cmds = append(cmds,
							s.c.B().Set().Key(s.recKey(r.ID)).Value(rueidis.BinaryString(encode(r, 0))).Nx().
								Pxat(time.UnixMilli(ceilMillis(minTime(r.ExpiresAt, r.IdleExpiresAt)))).Build(),
							s.c.B().Zadd().Key(s.indexKey(sub)).ScoreMember().ScoreMember(float64(r.CreatedAt.UnixMicro()+int64(k)), r.ID).Build())
					}
					until := time.UnixMilli(ceilMillis(exp.Add(subjectMargin)))
					cmds = append(cmds,
						s.c.B().Hset().Key(s.stateKey(sub)).FieldValue().FieldValue("g", "0").Build(),
						s.c.B().Pexpireat().Key(s.stateKey(sub)).MillisecondsTimestamp(until.UnixMilli()).Build(),
						s.c.B().Pexpireat().Key(s.indexKey(sub)).MillisecondsTimestamp(until.UnixMilli()).Build())
				}
				for _, res := range s.c.DoMulti(ctx, cmds...) {
					if err := res.Error(); err != nil {
						failed.Store(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatalf("loading sessions: %v", err)
	}
	recs, err := s.List(ctx, tag+"-0")
	if err != nil || len(recs) != min(per, n) {
		t.Fatalf("List of a loaded subject = %d records, %v; want %d", len(recs), err, min(per, n))
	}
	if _, err := s.Get(ctx, recs[0].ID); err != nil {
		t.Fatalf("Get of a loaded session: %v", err)
	}
}

// dbKeys is DBSIZE: session records plus two keys (state, index) per subject.
func dbKeys(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.c.Do(context.Background(), s.c.B().Dbsize().Build()).AsInt64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func usedMemory(t *testing.T, s *Store) int64 {
	t.Helper()
	info, err := s.c.Do(context.Background(), s.c.B().Info().Section("memory").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no used_memory in INFO")
	return 0
}
