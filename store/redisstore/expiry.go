package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
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
// of each index, makes their events, and hands them to expireScript, which
// removes each entry that is still due, with its record if Redis has not
// dropped it yet, and writes its event, in one atomic step on the slot; a
// concurrent sweep on another node finds nothing left to do. A record under
// the entry's ID whose own entry differs is a later session's (a Create that
// reused the ID once Redis dropped the first): the entry is reported and the
// record left alone. Only a reuse with the same subject and ExpiresAt shares
// the entry, and then one expiry of the two goes unreported. On standalone
// Redis and Sentinel there is one index; on a Cluster one per slot, beside
// the slot's outbox (outbox.go).

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

// start runs the store's goroutine until Close.
func (s *Store) start() {
	ctx, stop := context.WithCancel(context.Background())
	s.stop, s.stopped = stop, make(chan struct{})
	go s.run(ctx)
}

// moveDelay is how long a Cluster store's goroutine gathers marks before it
// moves their events into the log: what another node's reader waits for at
// most beyond the move itself (this node's own reads drain at once).
const moveDelay = 2 * time.Millisecond

// run sweeps now and every sweepEvery; on a Cluster it also moves queued
// marks as they come, sends trims, and retries a failed move a second later.
func (s *Store) run(ctx context.Context) {
	defer close(s.stopped)
	tick := time.NewTimer(0)
	defer tick.Stop()
	var kick <-chan struct{}
	if s.outbox != nil {
		kick = s.outbox.kick
	}
	var retry <-chan time.Time
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
			// Let the marks of writes close behind gather: one move then
			// carries them all, and busy nodes pay one round trip to the
			// log's node per moveDelay rather than one per write.
			select {
			case <-ctx.Done():
				return
			case <-time.After(moveDelay):
			}
		case <-retry:
		case <-tick.C:
			if err := s.sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("redisstore: sweep failed", "err", err)
			}
			tick.Reset(s.sweepEvery)
		}
		if s.outbox == nil {
			continue
		}
		retry = nil
		err := s.outbox.drain(ctx)
		if err == nil {
			s.outbox.sendTrims(ctx)
		}
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			failing = false
		default:
			if !failing {
				s.log.Warn("redisstore: moving events into the log failed; retrying", "err", err)
			}
			failing, retry = true, time.After(min(time.Second, s.sweepEvery))
		}
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

// sweepExpired reads every expiry index's due entries and records them.
func (s *Store) sweepExpired(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	now := s.now()
	slots := []uint16{0}
	if s.outbox != nil {
		slots = make([]uint16, numSlots)
		for i := range slots {
			slots[i] = uint16(i)
		}
	}
	cmds := make(rueidis.Commands, len(slots))
	for i, slot := range slots {
		cmds[i] = s.c.B().Zrange().Key(s.expiryKey(slot)).Min("-inf").Max(micros(now)).Byscore().
			Limit(0, expiryBatch).Withscores().Build()
	}
	var errs []error
	for i, res := range s.c.DoMulti(ctx, cmds...) {
		due, err := res.AsZScores()
		if err == nil && len(due) > 0 {
			err = s.expire(ctx, slots[i], due, now)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return unavailable("record expiry", errs[0])
	}
	return nil
}

// expire records the expiry of due, entries of slot's index, in one
// expireScript call.
func (s *Store) expire(ctx context.Context, slot uint16, due []rueidis.ZScore, now time.Time) error {
	keys := []string{s.expiryKey(slot), s.eventKey(slot)}
	args := []string{micros(now)}
	for _, z := range due {
		end := int64(z.Score)
		r, err := expiredRecord(z.Member, end)
		if err != nil {
			return err
		}
		ev := "" // none for the service's own bookkeeping records
		if evs := tether.ExpiryEvents(r, now); len(evs) > 0 {
			ev = string(tether.MarshalEvent(&evs[0])) // the one session.expired
		}
		keys = append(keys, s.recKey(r.ID))
		args = append(args, z.Member, itoa(end), ev)
	}
	res, werr := s.eval(ctx, "record expiry", expireScript, keys, args)
	written, err := res.AsStrSlice()
	if err != nil {
		return err
	}
	if s.outbox != nil && len(written) > 0 {
		upto, err := parseStreamID(written[len(written)-1])
		if err != nil {
			upto = allEntries
		}
		s.outbox.markWritten(mark{slot: slot, upto: upto})
	}
	return werr
}
