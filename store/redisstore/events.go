package redisstore

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/tetherhq/tether"
)

// Events are kept in one stream per deployment, p + "{e}:events", written in
// the same atomic step as the change they describe (scripts.go), so that no
// change lacks its event and no event outlives a failed change. Stream IDs
// grow with the order in which events enter the stream: they are the cursor,
// and a reader that follows it misses nothing.
//
// On standalone Redis and Sentinel the change's script appends to the stream
// itself. A Redis Cluster runs a script on one slot only, and a session's
// keys and the stream are on different slots: there the script writes its
// events to an outbox on its own slot, in the same script, and the node's
// goroutine moves them into the stream, exactly once, right after the write
// returns (outbox.go). Either way no change lacks its event: on standalone
// and Sentinel it is in the log when the write returns, on a Cluster in its
// outbox, and in the log a round trip later (at once for the writing node's
// own reads). On a Cluster events can also arrive late and out of write
// order: those of a write whose outcome was unknown, or on a node that
// cannot be reached (moved within about a second once it answers), those of writes on different nodes in the
// same instant (in the order of their moves), and those of a node that
// stopped between its write and the move (moved by another node's sweep,
// Options.SweepInterval). Per slot the order
// is always commit order: a session's own events (created, rotated, revoked),
// and a subject's subject.revoked and roles.changed, in the order they
// happened. An event's Time is when it happened. session.expired is written
// by the expiry sweep, in the script that removes the session (expiry.go).

// evalEvents runs sc, a script that writes evs with its change (eventsLua),
// on the slot of keys[0], and returns the script's own result; werr is
// eval's (the replicas' shortfall). On a Cluster the script writes its
// events to the slot's outbox, and the store's mover (outbox.run) moves
// them into the log (outbox.written).
func (s *Store) evalEvents(ctx context.Context, op string, sc *script, keys []string, evs []tether.Event, args ...string) (result rueidis.RedisMessage, werr, err error) {
	slot := keySlot(keys[0])
	keys = append(keys, s.eventKey(slot))
	movedBelow := "" // the log itself: nothing to trim
	if s.outbox != nil {
		movedBelow = s.outbox.movedBelow(slot)
	}
	events := encodeEvents(evs)
	res, werr := s.eval(ctx, op, sc, keys, append(append(args, movedBelow), events...))
	reply, err := res.ToArray()
	if err == nil && len(reply) != 4 {
		err = errors.New("malformed script reply")
	}
	if s.outbox != nil && len(evs) > 0 && !rueidis.IsRedisNil(err) {
		s.outbox.written(slot, reply, err, events)
	}
	if err != nil {
		return rueidis.RedisMessage{}, werr, err
	}
	return reply[0], werr, nil
}

// eventKey is where a script on slot writes events: the log, or on a
// Cluster the slot's outbox.
func (s *Store) eventKey(slot uint16) string {
	if s.outbox != nil {
		return s.outbox.key(slot)
	}
	return s.stream
}

func encodeEvents(evs []tether.Event) []string {
	out := make([]string, len(evs))
	for i := range evs {
		out[i] = string(tether.MarshalEvent(&evs[i]))
	}
	return out
}

// AppendEvents implements tether.Store. On a Cluster the events go straight
// to the stream, after this node's events still in the outboxes it can read
// (outbox.drainThen): a node away does not hold them up.
func (s *Store) AppendEvents(ctx context.Context, evs ...tether.Event) error {
	if len(evs) == 0 {
		return nil
	}
	write := func(ctx context.Context) error {
		if err := appendScript.Exec(ctx, s.c, []string{s.stream}, append([]string{""}, encodeEvents(evs)...)).Error(); err != nil {
			return unavailable("append events", err)
		}
		return nil
	}
	if s.outbox != nil {
		return s.outbox.drainThen(ctx, write)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return write(ctx)
}

var cursorFormat = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// eventScanBatches bounds one Events call's reads when filters skip most
// events; the cursor still advances past what it read.
const eventScanBatches = 10

// Events implements tether.Store.
func (s *Store) Events(ctx context.Context, q tether.EventQuery) (tether.EventPage, error) {
	start := "-"
	if q.After != "" {
		if !cursorFormat.MatchString(q.After) {
			return tether.EventPage{}, tether.BadInput("malformed cursor")
		}
		start = "(" + q.After
	}
	if s.outbox != nil {
		// This node's own events first. A drain that fails for some slots
		// (a node away) leaves theirs to outbox.run's retries and does not fail the
		// read: the log is on a node of its own, and the read below fails
		// if that one is away. The drain has its own bound, so that one
		// that waited out its timeout leaves the read its time.
		_ = s.outbox.drain(ctx)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	p := tether.EventPage{Next: q.After}
	for range eventScanBatches {
		entries, err := s.c.Do(ctx, s.c.B().Xrange().Key(s.stream).Start(start).End("+").Count(int64(q.Limit)).Build()).AsXRange()
		if err != nil {
			return tether.EventPage{}, unavailable("events", err)
		}
		for _, en := range entries {
			e, err := tether.UnmarshalEvent([]byte(en.FieldValues["e"]))
			if err != nil {
				return tether.EventPage{}, unavailable("events", errors.New("corrupt event"))
			}
			if e.Subject == "" {
				e.Subject = en.FieldValues["s"]
			}
			p.Next = en.ID
			if q.Match(&e) {
				e.Cursor = en.ID
				p.Events = append(p.Events, e)
			}
			if len(p.Events) == q.Limit {
				return p, nil
			}
		}
		if len(entries) < q.Limit {
			break
		}
		start = "(" + p.Next
	}
	return p, nil
}

// TrimEvents implements tether.Store: stream IDs begin with the time of the
// write in milliseconds, so MINID drops what is older.
func (s *Store) TrimEvents(ctx context.Context, before time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err := s.c.Do(ctx, s.c.B().Xtrim().Key(s.stream).Minid().Threshold(strconv.FormatInt(before.UnixMilli(), 10)).Build()).Error()
	if err != nil && !rueidis.IsRedisNil(err) {
		return unavailable("trim events", err)
	}
	return nil
}

func (s *Store) serviceKey(key string) string { return s.prefix + "{st:" + key + "}" }

// GetState implements tether.Store.
func (s *Store) GetState(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	v, err := s.c.Do(ctx, s.c.B().Get().Key(s.serviceKey(key)).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("get state", err)
	}
	return v, nil
}

// PutState implements tether.Store.
func (s *Store) PutState(ctx context.Context, key string, value []byte) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := s.c.Do(ctx, s.c.B().Set().Key(s.serviceKey(key)).Value(rueidis.BinaryString(value)).Build()).Error(); err != nil {
		return unavailable("put state", err)
	}
	return nil
}
