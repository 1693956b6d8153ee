package redisstore

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/tetherhq/tether/internal/servicetest"
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
	if os.Getenv("TETHER_SCALE") != "1" {
		t.Skip("set TETHER_SCALE=1 to load a million sessions")
	}
	total := 1_000_000
	if v := os.Getenv("TETHER_SCALE_SESSIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TETHER_SCALE_SESSIONS=%q", v)
		}
		total = n
	}
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

	ops := measureSubjectOps(t, []*Store{small, large})
	for i, s := range []*Store{small, large} {
		t.Logf("%d keys in Redis: %s", dbKeys(t, s), ops[i])
	}
	for _, c := range []struct {
		op         string
		small, big time.Duration
	}{{"List", ops[0].list[0], ops[1].list[0]}, {"DeleteSubject", ops[0].del[0], ops[1].del[0]}} {
		ratio := float64(c.big) / float64(c.small)
		t.Logf("%s of a 10-session subject, p50: %v among 1,000 sessions, %v among %d: ×%.2f", c.op, c.small, c.big, total+1000, ratio)
		// O(all sessions) would be ×1000; this allows for a noisy machine.
		if ratio > 3 {
			t.Errorf("%s for a 10-session subject is %.1f× slower with %d sessions loaded: not O(subject)", c.op, ratio, total)
		}
	}
}

// subjectOps holds p50 and p99 of List and DeleteSubject.
type subjectOps struct{ list, del [2]time.Duration }

func (o subjectOps) String() string {
	return fmt.Sprintf("List of a 10-session subject p50 %v p99 %v; DeleteSubject p50 %v p99 %v",
		o.list[0], o.list[1], o.del[0], o.del[1])
}

// measureSubjectOps makes 100 subjects of 10 sessions on every store, lists
// 50 of them 20 times each and revokes all sessions of the other 50, taking
// turns between the stores call by call.
func measureSubjectOps(t *testing.T, stores []*Store) []subjectOps {
	t.Helper()
	ctx := context.Background()
	const subjects, per = 100, 10
	sub := func(i int) string { return fmt.Sprintf("target-%d", i) }
	for _, s := range stores {
		for i := range subjects {
			for range per {
				if err := s.Create(ctx, benchRecord(sub(i))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	list := make([][]time.Duration, len(stores))
	del := make([][]time.Duration, len(stores))
	for rep := range 21 {
		for i := range subjects / 2 {
			for _, j := range order(rep*subjects+i, len(stores)) {
				s := stores[j]
				start := time.Now()
				recs, err := s.List(ctx, sub(i))
				d := time.Since(start)
				if err != nil || len(recs) != per {
					t.Fatalf("List = %d records, %v; want %d", len(recs), err, per)
				}
				if rep > 0 { // the first round warms up
					list[j] = append(list[j], d)
				}
			}
		}
	}
	for i := subjects / 2; i < subjects; i++ {
		for _, j := range order(i, len(stores)) {
			s := stores[j]
			start := time.Now()
			n, err := s.DeleteSubject(ctx, sub(i), "")
			d := time.Since(start)
			if err != nil || n != per {
				t.Fatalf("DeleteSubject = %d, %v; want %d", n, err, per)
			}
			del[j] = append(del[j], d)
		}
	}
	out := make([]subjectOps, len(stores))
	for j := range stores {
		out[j] = subjectOps{list: percentiles(list[j]), del: percentiles(del[j])}
	}
	return out
}

// order is 0…n-1, reversed when turn is odd: neither store always goes first.
func order(turn, n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	if turn%2 == 1 {
		slices.Reverse(o)
	}
	return o
}

func percentiles(d []time.Duration) [2]time.Duration {
	slices.Sort(d)
	return [2]time.Duration{
		d[(len(d)-1)*50/100].Round(time.Microsecond),
		d[(len(d)-1)*99/100].Round(time.Microsecond),
	}
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
