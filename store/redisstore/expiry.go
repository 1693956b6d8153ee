package redisstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/tetherhq/tether"
)

// Redis drops an expired record itself, by its TTL, and says nothing. So that
// an expired session is reported as such (session.expired, DESIGN §10), each
// record is also listed in an expiry index on its own slot: a sorted set
// scored by the record's end, min(ExpiresAt, IdleExpiresAt) in Unix µs, whose
// member holds what the event needs once the record is gone (expiryMember).
// Create adds the entry, Touch moves its score, and Delete and the clean-up
// after DeleteSubject remove it with the record of a live session, in the
// same script; a record they find already dead by the caller's clock is
// left, with its entry, to the sweep. So an entry that comes due marks a
// session that expired, not one that was revoked.
//
// The sweep (Store.run, every Options.SweepInterval) reads the due entries
// of each index, expiryBatch at a time for as long as an index has more
// (up to sweepBudget a sweep; a larger backlog goes on at the next), makes
// their events, and hands them to expireScript, pipelined across the
// slots, which removes each entry that is still due, with its record if
// Redis has not dropped it yet, and writes its event, in one atomic step on
// the slot; a concurrent sweep on another node finds nothing left to do. A
// record under the entry's ID whose own entry differs is a later session's
// (a Create that reused the ID once Redis dropped the first): the entry is
// reported and the record left alone. Only a reuse with the same subject
// and ExpiresAt shares the entry, and then one expiry of the two goes
// unreported. On standalone Redis and Sentinel there is one index; on a
// Cluster one per slot, beside the slot's outbox (outbox.go).

// expiryBatch bounds the entries one expireScript call handles.
const expiryBatch = 500

// maxIDLen bounds a record's ID: its expiry index member starts with the
// ID's length in one byte.
const maxIDLen = 255

// expiryKey returns the expiry index of the records on slot.
func (s *Store) expiryKey(slot uint16) string {
	tag := "x"
	if s.outbox != nil {
		tag = slotTags()[slot]
	}
	return s.prefix + "{" + tag + "}:expiring"
}

// expiredRecord rebuilds what tether.ExpiryEvents needs of a record from its
// expiry index entry: the member (recordLua's expiryMember: the ID's length
// in a byte, the ID, ExpiresAt in Unix µs as 8 bytes big-endian, the
// subject) and the score, the record's end.
func expiredRecord(member string, end int64) (*tether.Record, error) {
	if len(member) < 1 || len(member) < 1+int(member[0])+8 {
		return nil, errors.New("malformed expiry index entry")
	}
	n := 1 + int(member[0])
	return &tether.Record{
		ID: member[1:n], Subject: member[n+8:],
		ExpiresAt:     time.UnixMicro(int64(binary.BigEndian.Uint64([]byte(member[n : n+8])))),
		IdleExpiresAt: time.UnixMicro(end),
	}, nil
}

// start runs the store's goroutines until Close: the sweep and, on a
// Cluster, the moves (outbox.run), apart so that neither waits for the
// other.
func (s *Store) start() {
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	s.stop, s.stopped = stop, stopped
	var wg sync.WaitGroup
	wg.Go(func() { s.run(ctx) })
	if s.outbox != nil {
		wg.Go(func() { s.outbox.run(ctx) })
	}
	go func() {
		wg.Wait()
		close(stopped)
	}()
}

// run sweeps now and every sweepEvery, and on a Cluster has the events the
// sweep found moved.
func (s *Store) run(ctx context.Context) {
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := s.sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("redisstore: sweep failed", "err", err)
		}
		if s.outbox != nil {
			s.outbox.wake()
		}
		tick.Reset(s.sweepEvery)
	}
}

// sweep records the expiry of the sessions due by the store's clock and, on
// a Cluster, marks the outboxes that hold events for moving.
func (s *Store) sweep(ctx context.Context) error {
	err := s.sweepExpired(ctx)
	if s.outbox != nil {
		err = errors.Join(err, s.outbox.sweep(ctx))
	}
	return err
}

// sweepExpired reads every expiry index's due entries and records them,
// batch after batch while an index has more, for up to sweepBudget; a
// backlog left then waits for the next sweep. Each round of reads and
// records has its own bound, so that a large backlog does not time out the
// whole sweep.
func (s *Store) sweepExpired(ctx context.Context) error {
	now := s.now()
	slots := []uint16{0}
	if s.outbox != nil {
		slots = make([]uint16, numSlots)
		for i := range slots {
			slots[i] = uint16(i)
		}
	}
	var first error
	for stop := time.Now().Add(sweepBudget); len(slots) > 0 && time.Now().Before(stop) && ctx.Err() == nil; {
		var err error
		slots, err = s.expireRound(ctx, slots, now)
		first = cmp.Or(first, err)
	}
	if first != nil {
		return unavailable("record expiry", first)
	}
	return nil
}

// sweepBudget bounds one sweep's rounds (sweepExpired).
const sweepBudget = 10 * time.Second

// expirePipeline bounds the due entries whose expireScript calls go in one
// pipeline, under one bound: a round of many full slots takes several.
const expirePipeline = 10 * expiryBatch

// expireRound records up to expiryBatch due entries of each of slots'
// indexes, and returns the slots whose batch was full: they may have more.
func (s *Store) expireRound(ctx context.Context, slots []uint16, now time.Time) (more []uint16, err error) {
	rctx, cancel := s.bound(ctx)
	cmds := make(rueidis.Commands, len(slots))
	for i, slot := range slots {
		cmds[i] = s.c.B().Zrange().Key(s.expiryKey(slot)).Min("-inf").Max(micros(now)).Byscore().
			Limit(0, expiryBatch).Withscores().Build()
	}
	var (
		calls     []rueidis.LuaExec
		callSlots []uint16
		full      []bool
	)
	for i, res := range s.c.DoMulti(rctx, cmds...) {
		due, derr := res.AsZScores()
		if derr == nil && len(due) > 0 {
			var c rueidis.LuaExec
			if c, derr = s.expireCall(slots[i], due, now); derr == nil {
				calls, callSlots, full = append(calls, c), append(callSlots, slots[i]), append(full, len(due) == expiryBatch)
			}
		}
		err = cmp.Or(err, derr)
	}
	cancel()
	for len(calls) > 0 {
		n, entries := 0, 0
		for n < len(calls) && entries < expirePipeline {
			entries += len(calls[n].Keys) - 2
			n++
		}
		for i, derr := range s.expireAll(ctx, calls[:n]) {
			err = cmp.Or(err, derr)
			if derr == nil && full[i] {
				more = append(more, callSlots[i])
			}
		}
		if s.outbox != nil {
			s.outbox.wake() // the events these calls wrote move now, not after the sweep
		}
		calls, callSlots, full = calls[n:], callSlots[n:], full[n:]
	}
	return more, err
}

// expireCall is the expireScript call that records the expiry of due,
// entries of slot's index.
func (s *Store) expireCall(slot uint16, due []rueidis.ZScore, now time.Time) (rueidis.LuaExec, error) {
	keys := []string{s.expiryKey(slot), s.eventKey(slot)}
	args := []string{micros(now)}
	for _, z := range due {
		end := int64(z.Score)
		r, err := expiredRecord(z.Member, end)
		if err != nil {
			return rueidis.LuaExec{}, err
		}
		ev := "" // none for the service's own bookkeeping records
		if evs := tether.ExpiryEvents(r, now); len(evs) > 0 {
			ev = string(tether.MarshalEvent(&evs[0])) // the one session.expired
		}
		keys = append(keys, s.recKey(r.ID))
		args = append(args, z.Member, itoa(end), ev)
	}
	return rueidis.LuaExec{Keys: keys, Args: args}, nil
}

// expireAll runs calls, pipelined under a bound of their own, and returns
// each one's error; on a Cluster it queues the marks of the events they
// wrote. With min_replicas each waits for its replicas in turn (eval).
func (s *Store) expireAll(ctx context.Context, calls []rueidis.LuaExec) []error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	results := make([]rueidis.RedisResult, len(calls))
	werrs := make([]error, len(calls))
	if s.minReplicas == 0 {
		results = s.evalEach(ctx, expireScript, calls)
	} else {
		for i, c := range calls {
			results[i], werrs[i] = s.eval(ctx, "record expiry", expireScript, c.Keys, c.Args)
		}
	}
	errs := make([]error, len(calls))
	for i, res := range results {
		written, err := res.AsStrSlice()
		if err != nil {
			errs[i] = err
			continue
		}
		if s.outbox != nil && len(written) > 0 {
			upto, err := parseStreamID(written[len(written)-1])
			if err != nil {
				upto = allEntries
			}
			s.outbox.markWritten(mark{slot: keySlot(calls[i].Keys[0]), upto: upto})
		}
		errs[i] = werrs[i]
	}
	return errs
}
