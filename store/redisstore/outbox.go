package redisstore

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// On a Redis Cluster a script runs on one hash slot, and a session's keys and
// the log are on different slots. So there every event-writing script writes
// its events to the outbox of its own slot, p{T}:outbox with T a tag that
// hashes to that slot (slotTags), in the same atomic step as the change; and
// they are then moved into the one log, p{e}:events:
//
//   - A write that wrote events queues a mark (its slot and the outbox ID of
//     its last event) and drains the queue before it returns: its events and
//     those of the writes that queued marks meanwhile move in one
//     collectScript call, a group commit. So a change that returned has its
//     events in the log, as on the other deployments.
//   - A write whose outcome is unknown (an error, a timeout) queues a mark of
//     all its slot's outbox holds, for the collector goroutine, which
//     retries every second while that fails.
//   - Events and AppendEvents first drain the queue.
//   - Every Options.EventSweep, and when the store opens, each node looks
//     into every slot's outbox and moves what it finds: the events of a node
//     that stopped between its write and their move.
//
// collectScript appends only the entries past their slot's recorded
// progress (p{e}:moved) and records the new progress in the same step, so
// however many collectors run on however many nodes, each event is moved
// exactly once. Outbox entries up to the progress are then trimmed.

// numSlots is the number of hash slots of a Redis Cluster.
const numSlots = 16384

const (
	// maxMarks bounds the queue of marks if the log's node is unreachable
	// for long. A mark past it is dropped: the next sweep moves its events,
	// later than this node's other writes.
	maxMarks = 100_000
	// collectBatch bounds the outbox entries one collectScript call moves.
	collectBatch = 1000
	// DefaultEventSweep is how often a Cluster store sweeps every outbox
	// when Options.EventSweep is zero.
	DefaultEventSweep = 30 * time.Second
)

// keySlot is the Cluster hash slot of key: CRC16 of its hash tag, or of the
// whole key if it has none, as Redis computes it.
func keySlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % numSlots
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the Cluster's
// key hash. rueidis has one, but only in an internal package.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotTags holds, for each slot, the smallest decimal number that hashes to
// it: the hash tag of that slot's outbox. About 180,000 hashes, once.
var slotTags = sync.OnceValue(func() *[numSlots]string {
	var tags [numSlots]string
	for n, left := 0, numSlots; left > 0; n++ {
		tag := strconv.Itoa(n)
		if slot := crc16(tag) % numSlots; tags[slot] == "" {
			tags[slot] = tag
			left--
		}
	}
	return &tags
})

// streamID is a stream entry ID, ms-seq.
type streamID struct{ ms, seq uint64 }

// allEntries is past every ID: a mark of all an outbox holds.
var allEntries = streamID{math.MaxUint64, math.MaxUint64}

func parseStreamID(s string) (streamID, error) {
	ms, seq, ok := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return streamID{}, errors.New("malformed stream ID")
	}
	return streamID{a, b}, nil
}

func (a streamID) less(b streamID) bool {
	return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq
}

func (a streamID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}

// next is the smallest ID after a.
func (a streamID) next() streamID {
	if a.seq == math.MaxUint64 {
		return streamID{a.ms + 1, 0}
	}
	return streamID{a.ms, a.seq + 1}
}

// mark asks for a slot's outbox entries up to upto to be moved into the log.
type mark struct {
	slot uint16
	upto streamID
}

// outbox collects a Cluster store's event outboxes into its log.
type outbox struct {
	s          *Store
	movedKey   string
	sweepEvery time.Duration
	kick       chan struct{} // capacity 1: there are marks to move
	stop       context.CancelFunc
	stopped    chan struct{} // closed when run returns; nil if it never ran

	mu    sync.Mutex
	marks []mark // in the order their writes returned
	// taken is how many marks at the head a drain is moving: they are not
	// coalesced with new ones, since the drain drops them once moved.
	taken int

	// drainMu lets one drain run at a time, so that marks move in order.
	drainMu sync.Mutex
	// progress is each slot's recorded progress as last seen, so that an
	// outbox is read from past it. Under drainMu.
	progress map[uint16]streamID
}

func newOutbox(s *Store, sweepEvery time.Duration) *outbox {
	return &outbox{
		s: s, movedKey: s.prefix + "{e}:moved", sweepEvery: sweepEvery,
		kick: make(chan struct{}, 1), progress: map[uint16]streamID{},
	}
}

func (o *outbox) key(slot uint16) string { return o.s.prefix + "{" + slotTags()[slot] + "}:outbox" }

// start runs the collector goroutine until close.
func (o *outbox) start() {
	ctx, stop := context.WithCancel(context.Background())
	o.stop, o.stopped = stop, make(chan struct{})
	go o.run(ctx)
}

func (o *outbox) close() {
	if o.stopped != nil {
		o.stop()
		<-o.stopped
	}
}

// markWritten queues slot's outbox up to upto for collection. Marks of one
// slot in a row are one.
func (o *outbox) markWritten(slot uint16, upto streamID) {
	o.mu.Lock()
	switch n := len(o.marks); {
	case n > o.taken && o.marks[n-1].slot == slot:
		if o.marks[n-1].upto.less(upto) {
			o.marks[n-1].upto = upto
		}
	case n < maxMarks:
		o.marks = append(o.marks, mark{slot, upto})
	}
	o.mu.Unlock()
}

// wake has the collector goroutine drain the queued marks.
func (o *outbox) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// run moves marks as they come, sweeps every outbox now and every
// sweepEvery, and retries a failed move a second later.
func (o *outbox) run(ctx context.Context) {
	defer close(o.stopped)
	sweep := time.NewTimer(0)
	defer sweep.Stop()
	var retry <-chan time.Time
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.kick:
		case <-retry:
		case <-sweep.C:
			if err := o.sweep(ctx); err != nil && ctx.Err() == nil {
				o.s.log.Warn("redisstore: sweeping the event outboxes failed", "err", err)
			}
			sweep.Reset(o.sweepEvery)
		}
		retry = nil
		if err := o.drain(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				o.s.log.Warn("redisstore: moving events into the log failed; retrying", "err", err)
			}
			failing, retry = true, time.After(min(time.Second, o.sweepEvery))
		} else {
			failing = false
		}
	}
}

// sweep marks every slot whose outbox holds entries, whoever wrote them.
func (o *outbox) sweep(ctx context.Context) error {
	ctx, cancel := o.s.bound(ctx)
	defer cancel()
	cmds := make(rueidis.Commands, numSlots)
	for slot := range cmds {
		cmds[slot] = o.s.c.B().Xrange().Key(o.key(uint16(slot))).Start("-").End("+").Count(1).Build()
	}
	var errs []error
	for slot, res := range o.s.c.DoMulti(ctx, cmds...) {
		entries, err := res.AsXRange()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(entries) > 0 {
			o.markWritten(uint16(slot), allEntries)
		}
	}
	if len(errs) > 0 {
		return unavailable("sweep event outboxes", errs[0])
	}
	return nil
}

// drain moves the marks queued when it began into the log, oldest first.
func (o *outbox) drain(ctx context.Context) error {
	return o.drainThen(ctx, nil)
}

// drainThen drains, then calls then (if not nil) before another drain can
// start: what then appends to the log comes after this node's earlier
// events.
func (o *outbox) drainThen(ctx context.Context, then func() error) error {
	ctx, cancel := o.s.bound(ctx)
	defer cancel()
	o.drainMu.Lock()
	defer o.drainMu.Unlock()
	o.mu.Lock()
	left := len(o.marks)
	o.mu.Unlock()
	for left > 0 {
		o.mu.Lock()
		batch := slices.Clone(o.marks[:min(left, len(o.marks))])
		o.taken = len(batch)
		o.mu.Unlock()
		done, err := o.collect(ctx, batch)
		o.mu.Lock()
		o.marks, o.taken = o.marks[done:], 0
		o.mu.Unlock()
		if err != nil {
			return unavailable("move events into the log", err)
		}
		left -= done
	}
	if then != nil {
		return then()
	}
	return nil
}

// collect moves the outbox entries of a prefix of batch into the log, in
// mark order, in one collectScript call, and returns how many marks are
// done. A mark with more entries than one call takes is left for the next.
func (o *outbox) collect(ctx context.Context, batch []mark) (int, error) {
	s := o.s
	// Each slot's outbox is read once, from past its progress to its
	// furthest mark.
	var slots []uint16
	upto := map[uint16]streamID{}
	for _, m := range batch {
		u, seen := upto[m.slot]
		if !seen {
			slots = append(slots, m.slot)
		}
		if !seen || u.less(m.upto) {
			upto[m.slot] = m.upto
		}
	}
	cmds := make(rueidis.Commands, len(slots))
	for i, slot := range slots {
		start, end := "-", "+"
		if p, ok := o.progress[slot]; ok {
			start = "(" + p.String()
		}
		if u := upto[slot]; u != allEntries {
			end = u.String()
		}
		cmds[i] = s.c.B().Xrange().Key(o.key(slot)).Start(start).End(end).Count(collectBatch).Build()
	}
	type pending struct {
		entries []rueidis.XRangeEntry
		ids     []streamID
		more    bool // the read stopped at its count: more may follow
	}
	read := make(map[uint16]*pending, len(slots))
	for i, res := range s.c.DoMulti(ctx, cmds...) {
		entries, err := res.AsXRange()
		if err != nil {
			return 0, err
		}
		p := &pending{entries: entries, more: len(entries) == collectBatch}
		for _, e := range entries {
			id, err := parseStreamID(e.ID)
			if err != nil {
				return 0, err
			}
			p.ids = append(p.ids, id)
		}
		read[slots[i]] = p
	}

	var args []string
	done, total := 0, 0
	for _, m := range batch {
		p := read[m.slot]
		n := 0
		for n < len(p.ids) && !m.upto.less(p.ids[n]) {
			n++
		}
		if n > 0 {
			args = append(args, strconv.Itoa(int(m.slot)), strconv.Itoa(n))
			for _, e := range p.entries[:n] {
				args = append(args, e.ID, e.FieldValues["e"], e.FieldValues["s"])
			}
		}
		total += n
		p.entries, p.ids = p.entries[n:], p.ids[n:]
		if len(p.ids) == 0 && p.more {
			break // the mark's entries go on past this read
		}
		done++
		if total >= collectBatch {
			break
		}
	}
	if total == 0 {
		return done, nil
	}
	res, werr := s.eval(ctx, "move events", collectScript, []string{s.stream, o.movedKey}, args)
	vals, err := res.AsStrSlice()
	if err != nil {
		return 0, err
	}
	if werr != nil {
		return 0, werr // moved, but not safe from a failover: keep the outbox
	}
	if len(vals)%2 != 0 {
		return 0, errors.New("malformed script reply")
	}
	trims := make(rueidis.Commands, 0, len(vals)/2)
	for i := 0; i < len(vals); i += 2 {
		slot, err1 := strconv.Atoi(vals[i])
		p, err2 := parseStreamID(vals[i+1])
		if err1 != nil || err2 != nil || slot < 0 || slot >= numSlots {
			return 0, errors.New("malformed script reply")
		}
		o.progress[uint16(slot)] = p
		trims = append(trims, s.c.B().Xtrim().Key(o.key(uint16(slot))).Minid().Threshold(p.next().String()).Build())
	}
	// Best effort: entries a failed trim leaves are at or below the
	// progress, so no collector moves them again; the next trim drops them.
	s.c.DoMulti(ctx, trims...)
	return done, nil
}
