package redisstore

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/storetest"
)

// runOutbox runs the cases of the Cluster's event outboxes on the cluster at
// url (redis+cluster://…, no parameters).
func runOutbox(t *testing.T, url string) {
	cases := []struct {
		name string
		fn   func(t *testing.T, url string)
	}{
		{"KeySlot", testKeySlot},
		{"StoppedNode", testStoppedNode},
		{"ConcurrentCollectors", testConcurrentCollectors},
		{"CloseMovesEvents", testCloseMovesEvents},
		{"MovesDuringSweep", testMovesDuringSweep},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, url+"?prefix="+servicetest.KeyPrefix(t))
		})
	}
}

// openCluster opens a Cluster store on url whose collector runs only if
// collect is set.
func openCluster(t *testing.T, url string, opts Options, collect bool) *Store {
	t.Helper()
	opts.Timeout = 10 * time.Second // generous: CI runs many packages at once
	s, err := open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	if collect {
		s.start()
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testKeySlot: keySlot agrees with CLUSTER KEYSLOT on hash-tag edge cases,
// and every slot's outbox is on that slot.
func testKeySlot(t *testing.T, url string) {
	if got := crc16("123456789"); got != 0x31c3 {
		t.Fatalf("crc16(123456789) = %#x; want the XMODEM check value 0x31c3", got)
	}
	s := openCluster(t, url, Options{}, false)
	keys := []string{"", "a", "{", "}", "{}", "}{a}", "{a}b", "a{b}c{d}", "x{}y{z}", "{{a}}",
		s.recKey("tthr_abc"), s.stateKey("alice"), s.stream}
	var slots []int
	for slot := range numSlots {
		keys = append(keys, s.outbox.key(uint16(slot)))
		slots = append(slots, slot)
	}
	cmds := make([]rueidis.Completed, len(keys))
	for i, k := range keys {
		cmds[i] = s.c.B().ClusterKeyslot().Key(k).Build()
	}
	for i, res := range s.c.DoMulti(context.Background(), cmds...) {
		want, err := res.AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		if got := keySlot(keys[i]); int64(got) != want {
			t.Errorf("keySlot(%q) = %d; CLUSTER KEYSLOT says %d", keys[i], got, want)
		}
		if j := i - (len(keys) - len(slots)); j >= 0 && want != int64(slots[j]) {
			t.Errorf("the outbox of slot %d is on slot %d", slots[j], want)
		}
	}
}

func createdEvent(r *tether.Record) tether.Event {
	return tether.Event{ID: "evt_" + tether.NewID(), Time: time.Now().UTC(), Type: tether.EventSessionCreated,
		Subject: r.Subject, SessionID: r.ID, Actor: tether.Actor{Kind: tether.ActorAdmin}}
}

// writeUncollected creates n sessions of sub, each on a slot of its own, with
// their events, on a store whose collector never runs, and drops it: a node
// that stopped between its writes and their collection. It returns the
// events' IDs.
func writeUncollected(t *testing.T, url, sub string, n int) map[string]bool {
	t.Helper()
	stopped := openCluster(t, url, Options{}, false)
	want := map[string]bool{}
	for range n {
		r := storetest.ScaleRecord(sub)
		ev := createdEvent(r)
		if err := stopped.Create(context.Background(), r, ev); err != nil {
			t.Fatal(err)
		}
		want[ev.ID] = true
	}
	crash(stopped)
	return want
}

// crash closes s as a node that stops without moving its queued events
// would: they stay in their outboxes.
func crash(s *Store) {
	s.outbox.mu.Lock()
	s.outbox.marks = nil
	s.outbox.mu.Unlock()
	s.Close()
}

// testCloseMovesEvents: Close moves what the store wrote into the log, with
// no other node's sweep, even if its goroutine never did.
func testCloseMovesEvents(t *testing.T, url string) {
	sub := "closing-" + tether.NewID()
	w := openCluster(t, url, Options{}, false)
	want := map[string]bool{}
	for range 20 {
		r := storetest.ScaleRecord(sub)
		ev := createdEvent(r)
		if err := w.Create(context.Background(), r, ev); err != nil {
			t.Fatal(err)
		}
		want[ev.ID] = true
	}
	w.Close()
	exactlyOnce(t, eventCounts(t, openCluster(t, url, Options{}, false), sub), want)
}

// eventCounts returns how often each event of sub is in the log.
func eventCounts(t *testing.T, s *Store, sub string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	q := tether.EventQuery{Subject: sub, Limit: tether.MaxEventLimit}
	for {
		p, err := s.Events(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) == 0 {
			return seen
		}
		for _, e := range p.Events {
			seen[e.ID]++
		}
		q.After = p.Next
	}
}

// exactlyOnce fails unless the log holds each wanted event once and no other
// event of sub.
func exactlyOnce(t *testing.T, seen map[string]int, want map[string]bool) {
	t.Helper()
	for id, n := range seen {
		if !want[id] || n != 1 {
			t.Errorf("event %s is in the log %d times (wanted: %v)", id, n, want[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d of %d events in the log", len(seen), len(want))
	}
}

// outboxesEmpty sends s's pending trims and fails unless every outbox is
// then empty: the moved entries were trimmed.
func outboxesEmpty(t *testing.T, s *Store) {
	t.Helper()
	s.outbox.sendTrims(context.Background())
	cmds := make([]rueidis.Completed, numSlots)
	for slot := range cmds {
		cmds[slot] = s.c.B().Xlen().Key(s.outbox.key(uint16(slot))).Build()
	}
	for slot, res := range s.c.DoMulti(context.Background(), cmds...) {
		if n, err := res.AsInt64(); err != nil || n != 0 {
			t.Errorf("outbox of slot %d: XLEN = %d, %v; want 0", slot, n, err)
		}
	}
}

// testStoppedNode: events a node wrote but never moved reach the log through
// another node's periodic sweep, each once.
func testStoppedNode(t *testing.T, url string) {
	survivor := openCluster(t, url, Options{SweepInterval: 50 * time.Millisecond}, true)
	sub := "stopped-" + tether.NewID()
	want := writeUncollected(t, url, sub, 40)
	deadline := time.Now().Add(20 * time.Second)
	for len(eventCounts(t, survivor, sub)) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s of sweeps every 50 ms: %d of %d events in the log", len(eventCounts(t, survivor, sub)), len(want))
		}
		time.Sleep(10 * time.Millisecond) // a poll interval
	}
	// More sweeps move nothing again.
	ctx := context.Background()
	for range 2 {
		if err := survivor.outbox.sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if err := survivor.outbox.drain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	exactlyOnce(t, eventCounts(t, survivor, sub), want)
	outboxesEmpty(t, survivor)
}

// testConcurrentCollectors: many collectors on many stores race to move the
// same outboxes, while other stores write and move their own events: every
// event is in the log exactly once.
func testConcurrentCollectors(t *testing.T, url string) {
	sub := "racing-" + tether.NewID()
	want := writeUncollected(t, url, sub, 100)
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for range 4 {
		c := openCluster(t, url, Options{}, false)
		wg.Go(func() {
			for range 3 {
				if err := c.outbox.sweep(context.Background()); err != nil {
					t.Error(err)
					return
				}
				if err := c.outbox.drain(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 2 {
		w := openCluster(t, url, Options{SweepInterval: 50 * time.Millisecond}, true)
		wg.Go(func() {
			for range 25 {
				r := storetest.ScaleRecord(sub)
				ev := createdEvent(r)
				if err := w.Create(context.Background(), r, ev); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[ev.ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	check := openCluster(t, url, Options{}, false)
	if err := check.outbox.sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	exactlyOnce(t, eventCounts(t, check, sub), want)
	outboxesEmpty(t, check)
}

// testMovesDuringSweep: while a sweep waits on a node (its writes paused),
// the events of writes to the other nodes still move at once.
func testMovesDuringSweep(t *testing.T, url string) {
	ctx := context.Background()
	s := openCluster(t, url, Options{SweepInterval: time.Hour}, false)
	ports := slotPorts(t, s)
	var paused string // a node without the log
	for addr := range s.c.Nodes() {
		if !strings.HasSuffix(addr, ":"+ports[keySlot(s.stream)]) {
			paused = addr
		}
	}
	on := func(key string) bool { return strings.HasSuffix(paused, ":"+ports[keySlot(key)]) }
	sub := "sweeping-" + tether.NewID()
	for on(s.stateKey(sub)) {
		sub = "sweeping-" + tether.NewID()
	}
	record := func(onPaused bool) *tether.Record {
		for {
			if r := storetest.ScaleRecord(sub); on(s.recKey(r.ID)) == onPaused {
				return r
			}
		}
	}
	// A session on the paused node that is due when the sweep comes.
	due := record(true)
	due.ExpiresAt = time.Now().Add(100 * time.Millisecond)
	if err := s.Create(ctx, due); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // a lifetime
	// A connection of its own, which the paused node's queue of s's
	// commands does not hold up, pauses it and ends the pause.
	admin, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{paused}, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	const pause = 5 * time.Second
	if err := admin.Do(ctx, admin.B().ClientPause().Timeout(pause.Milliseconds()).Write().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Do(ctx, admin.B().ClientUnpause().Build())
		admin.Close()
	})
	paused0 := time.Now()
	s.start()                          // its opening sweep now waits to record the expiry
	time.Sleep(200 * time.Millisecond) // for it to reach the paused node
	r := record(false)
	ev := createdEvent(r)
	if err := s.Create(ctx, r, ev); err != nil {
		t.Fatal(err)
	}
	reader := openCluster(t, url, Options{}, false) // moves none of s's events itself
	for len(eventCounts(t, reader, sub)) == 0 {
		if time.Since(paused0) > pause/2 {
			t.Fatalf("the event of a write to a node not paused is not in the log %v into the pause, while the sweep waits on the paused node", time.Since(paused0))
		}
		time.Sleep(10 * time.Millisecond) // a poll interval
	}
	exactlyOnce(t, eventCounts(t, reader, sub), map[string]bool{ev.ID: true})
}
