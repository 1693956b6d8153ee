package redisstore

import (
	"cmp"
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
//     its last event) and returns; the store's mover (outbox.run) drains
//     the queue at once: the events of every write that queued a mark
//     meanwhile move in one collectScript call, a group commit. The move is
//     off the write's path, so the event log costs a revocation one XADD in
//     its script, as on the other deployments, not a second round trip.
//   - A write whose outcome is unknown (an error, a timeout) queues a mark of
//     all its slot's outbox holds, for the store's mover (outbox.run),
//     which retries every second while that fails.
//   - A slot whose outbox cannot be read (its node is away) keeps its marks
//     queued, in order, and the other slots' events move all the same: one
//     node away holds up only its own slots' events.
//   - Events and AppendEvents first drain the queue, so a node reads its
//     own writes' events; another node sees them once the move is done,
//     about a round trip after the write returned. They do not fail for a
//     slot the drain could not read, only if the log's own node is away.
//     Close drains it too.
//   - Every Options.SweepInterval, and when the store opens, each node looks
//     into every slot's outbox and moves what it finds: the events of a node
//     that stopped between its write and their move. The sweep runs in a
//     goroutine of its own (Store.run), so moves never wait for it, and the
//     events it writes (session.expired) move as each batch of them is
//     written.
//
// collectScript appends only the entries past their slot's recorded
// progress (p{e}:moved) and records the new progress in the same step, so
// however many collectors run on however many nodes, each event is moved
// exactly once.
//
// A move is one round trip on the common path. A write first trims its
// outbox up to the progress this node last saw, and reports whether the
// outbox was then empty (addEvents' solo): if so, everything written there
// before is moved, and the write's own events, which the node holds, are
// all there is to move; the outbox is read only otherwise. The store's
// goroutine trims the outboxes a move emptied, off the write's path.

// numSlots is the number of hash slots of a Redis Cluster.
const numSlots = 16384

const (
	// maxMarks bounds the queue of marks if the log's node is unreachable
	// for long. A mark past it is dropped: the next sweep moves its events,
	// later than this node's other writes.
	maxMarks = 100_000
	// collectBatch bounds the outbox entries one collectScript call moves.
	collectBatch = 1000
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

// entry is an outbox entry: its ID as Redis wrote it and parsed, the event
// (JSON) and its subject.
type entry struct {
	raw            string
	id             streamID
	event, subject string
}

// mark asks for a slot's outbox entries up to upto to be moved into the log.
// entries, if set, are all of them still to move: the write that queued the
// mark found its outbox empty of entries not yet moved (addEvents' solo), so
// the outbox need not be read.
type mark struct {
	slot    uint16
	upto    streamID
	entries []entry
}

// outbox collects a Cluster store's event outboxes into its log.
type outbox struct {
	s        *Store
	movedKey string
	kick     chan struct{} // capacity 1: there are marks or trims to send

	mu    sync.Mutex
	marks []mark // in the order their writes returned
	// taken is how many marks at the head a drain is moving: they are not
	// coalesced with new ones, since the drain drops them once moved.
	taken int
	// progress is each slot's recorded progress as last seen: outbox
	// entries up to it are moved, so reads start past it and writes trim
	// up to it.
	progress map[uint16]streamID
	// trims are the outboxes to trim up to their progress, sent with the
	// next reads or by the store's mover.
	trims map[uint16]streamID

	// drainMu lets one drain run at a time, so that marks move in order.
	drainMu sync.Mutex
}

func newOutbox(s *Store) *outbox {
	return &outbox{
		s: s, movedKey: s.prefix + "{e}:moved",
		kick: make(chan struct{}, 1), progress: map[uint16]streamID{}, trims: map[uint16]streamID{},
	}
}

func (o *outbox) key(slot uint16) string { return o.s.prefix + "{" + slotTags()[slot] + "}:outbox" }

// movedBelow is addEvents' ARGV[first] for slot: entries below it are moved.
func (o *outbox) movedBelow(slot uint16) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.progress[slot].next().String()
}

// written handles the reply of a script that wrote events to slot's outbox
// (see evalEvents): it queues a mark for the store's mover (outbox.run), which moves
// the events into the log at once, off the write's path; the write has
// already made them durable in the outbox. If the script failed, the events
// may have been written all the same: the mark is of all the outbox holds.
// A mark the full queue refuses is left to the next sweep.
func (o *outbox) written(slot uint16, reply []rueidis.RedisMessage, scriptErr error, events []string) {
	m := mark{slot: slot, upto: allEntries}
	if scriptErr == nil {
		ids, err := reply[1].AsStrSlice()
		if err == nil && len(ids) == 0 {
			return // no change: no event
		}
		m = writtenMark(slot, reply, ids, err, events)
	}
	o.markWritten(m)
	o.wake()
}

// writtenMark is the mark of a script's reply (see addEvents): up to its
// last event, with its entries if they were alone in the outbox. A reply it
// cannot read marks all the outbox holds.
func writtenMark(slot uint16, reply []rueidis.RedisMessage, ids []string, err error, events []string) mark {
	solo, err2 := reply[2].AsInt64()
	subject, err3 := reply[3].ToString()
	if err := errors.Join(err, err2, err3); err != nil || len(ids) != len(events) {
		return mark{slot: slot, upto: allEntries}
	}
	m := mark{slot: slot}
	for i, raw := range ids {
		id, err := parseStreamID(raw)
		if err != nil {
			return mark{slot: slot, upto: allEntries}
		}
		m.upto = id
		if solo == 1 {
			m.entries = append(m.entries, entry{raw: raw, id: id, event: events[i], subject: subject})
		}
	}
	return m
}

// markWritten queues m; a full queue drops it (see maxMarks). Marks of one
// slot in a row are one, which must then read its outbox.
func (o *outbox) markWritten(m mark) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch n := len(o.marks); {
	case n > o.taken && o.marks[n-1].slot == m.slot:
		last := &o.marks[n-1]
		if last.upto.less(m.upto) {
			last.upto = m.upto
		}
		last.entries = nil
	case n < maxMarks:
		o.marks = append(o.marks, m)
	}
}

// moveDelay is how long a Cluster store's mover (outbox.run) gathers marks
// before it moves their events into the log: what another node's reader
// waits for at most beyond the move itself (this node's own reads drain at
// once).
const moveDelay = 2 * time.Millisecond

// run moves queued marks as they come, sends trims, and retries a failed
// move a second later.
func (o *outbox) run(ctx context.Context) {
	var retry <-chan time.Time
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.kick:
			// Let the marks of writes close behind gather: one move then
			// carries them all, and busy nodes pay one round trip to the
			// log's node per moveDelay rather than one per write.
			select {
			case <-ctx.Done():
				return
			case <-time.After(moveDelay):
			}
		case <-retry:
		}
		retry = nil
		err := o.drain(ctx)
		if err == nil {
			o.sendTrims(ctx)
		}
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			failing = false
		default:
			if !failing {
				o.s.log.Warn("redisstore: moving events into the log failed; retrying", "err", err)
			}
			failing, retry = true, time.After(min(time.Second, o.s.sweepEvery))
		}
	}
}

// wake has the store's mover (outbox.run) drain the queued marks and
// send trims.
func (o *outbox) wake() {
	select {
	case o.kick <- struct{}{}:
	default:
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
			o.markWritten(mark{slot: uint16(slot), upto: allEntries})
		}
	}
	if len(errs) > 0 {
		return unavailable("sweep event outboxes", errs[0])
	}
	return nil
}

// takeTrims returns the pending trims as commands and forgets them.
func (o *outbox) takeTrims() rueidis.Commands {
	o.mu.Lock()
	defer o.mu.Unlock()
	cmds := make(rueidis.Commands, 0, len(o.trims))
	for slot, p := range o.trims {
		cmds = append(cmds, o.s.c.B().Xtrim().Key(o.key(slot)).Minid().Threshold(p.next().String()).Build())
	}
	clear(o.trims)
	return cmds
}

// sendTrims trims the outboxes whose entries were moved. Best effort:
// entries a failed trim leaves are at or below the progress, so no
// collector moves them again, and the next write to the slot trims them.
func (o *outbox) sendTrims(ctx context.Context) {
	if cmds := o.takeTrims(); len(cmds) > 0 {
		ctx, cancel := o.s.bound(ctx)
		defer cancel()
		o.s.c.DoMulti(ctx, cmds...)
	}
}

// drain moves the marks queued when it began into the log, oldest first per
// slot. The marks of a slot whose outbox cannot be read stay queued, and the
// other slots' move all the same: one unreachable node holds up only its own
// slots' events. The error is the first failure, if any.
func (o *outbox) drain(ctx context.Context) error {
	ctx, cancel := o.s.bound(ctx)
	defer cancel()
	o.drainMu.Lock()
	defer o.drainMu.Unlock()
	return o.drainLocked(ctx)
}

// drainThen drains, then calls then before another drain can start: what
// then appends to the log comes after this node's earlier events of every
// slot the drain could read. A slot it could not read does not hold then
// up, nor fail it: order across slots is not promised, and run retries the
// move. then runs under a bound of its own, so that a drain that waited out
// its timeout on an unreachable node leaves it its time.
func (o *outbox) drainThen(ctx context.Context, then func(context.Context) error) error {
	o.drainMu.Lock()
	defer o.drainMu.Unlock()
	dctx, cancel := o.s.bound(ctx)
	_ = o.drainLocked(dctx)
	cancel()
	tctx, cancel := o.s.bound(ctx)
	defer cancel()
	return then(tctx)
}

// drainLocked is drain's loop; drainMu is held.
func (o *outbox) drainLocked(ctx context.Context) error {
	o.mu.Lock()
	left := len(o.marks)
	o.mu.Unlock()
	// unread are the slots whose outbox this drain could not read: their
	// marks wait for the next drain rather than be read again now.
	unread := map[uint16]bool{}
	var readErr error
	for left > 0 {
		o.mu.Lock()
		batch := slices.Clone(o.marks[:min(left, len(o.marks))])
		o.taken = len(batch)
		o.mu.Unlock()
		done, moved, err := o.collect(ctx, batch, unread)
		o.mu.Lock()
		kept, n := o.marks[:0], 0
		for i, m := range o.marks[:len(batch)] {
			if done[i] {
				n++
			} else {
				kept = append(kept, m)
			}
		}
		o.marks, o.taken = append(kept, o.marks[len(batch):]...), 0
		o.mu.Unlock()
		readErr = cmp.Or(readErr, err.read)
		if err.move != nil {
			return unavailable("move events into the log", err.move)
		}
		if n == 0 && moved == 0 {
			break // what is left waits for slots this drain could not read
		}
		left -= n
	}
	if readErr != nil {
		return unavailable("move events into the log", readErr)
	}
	return nil
}

// pending is what a collect moves of one slot: its outbox entries in order,
// and whether more may follow (a read that stopped at its count).
type pending struct {
	entries []entry
	more    bool
}

// collectErr is what went wrong in a collect: read, the first outbox that
// could not be read (its marks wait; the others' moved); move, the move
// into the log itself (nothing moved).
type collectErr struct{ read, move error }

// collect moves the outbox entries of batch's marks into the log, in mark
// order per slot, in one collectScript call, and reports which marks are
// done and how many entries moved. The marks of a slot in unread, or whose
// outbox it cannot read (added to unread), are not done, nor are a slot's
// marks after one with more entries than one call takes: a slot's events
// move in order, and the other slots' move without them.
func (o *outbox) collect(ctx context.Context, batch []mark, unread map[uint16]bool) (done []bool, moved int, cerr collectErr) {
	done = make([]bool, len(batch))
	read, err := o.read(ctx, batch, unread)
	cerr.read = err
	var args []string
	total := 0
	waiting := map[uint16]bool{} // slots whose next mark must wait for the next collect
	for i, m := range batch {
		if unread[m.slot] || waiting[m.slot] {
			continue
		}
		if total >= collectBatch {
			break
		}
		p := read[m.slot]
		n := 0
		for n < len(p.entries) && !m.upto.less(p.entries[n].id) {
			n++
		}
		if n > 0 {
			args = append(args, strconv.Itoa(int(m.slot)), strconv.Itoa(n))
			for _, e := range p.entries[:n] {
				args = append(args, e.raw, e.event, e.subject)
			}
		}
		total += n
		p.entries = p.entries[n:]
		if len(p.entries) == 0 && p.more {
			waiting[m.slot] = true // the mark's entries go on past this read
			continue
		}
		done[i] = true
	}
	if total == 0 {
		return done, 0, cerr
	}
	s := o.s
	res, werr := s.eval(ctx, "move events", collectScript, []string{s.stream, o.movedKey}, args)
	vals, err := res.AsStrSlice()
	if err == nil {
		err = werr // moved, but not safe from a failover: keep the outbox
	}
	if err == nil && len(vals)%2 != 0 {
		err = errors.New("malformed script reply")
	}
	if err != nil {
		cerr.move = err
		return make([]bool, len(batch)), 0, cerr
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := 0; i < len(vals); i += 2 {
		slot, err1 := strconv.Atoi(vals[i])
		p, err2 := parseStreamID(vals[i+1])
		if err1 != nil || err2 != nil || slot < 0 || slot >= numSlots {
			cerr.move = errors.New("malformed script reply")
			return make([]bool, len(batch)), 0, cerr
		}
		if o.progress[uint16(slot)].less(p) {
			o.progress[uint16(slot)] = p
		}
		o.trims[uint16(slot)] = o.progress[uint16(slot)]
	}
	return done, total, cerr
}

// read returns the entries to move of each slot that batch names and unread
// does not: those its marks carry, or else those read from its outbox, past
// its known progress and up to its furthest mark. A slot whose outbox it
// cannot read joins unread; err is the first such failure. Pending trims
// ride along with the reads.
func (o *outbox) read(ctx context.Context, batch []mark, unread map[uint16]bool) (_ map[uint16]*pending, err error) {
	s := o.s
	out := map[uint16]*pending{}
	upto := map[uint16]streamID{}
	mustRead := map[uint16]bool{}
	for _, m := range batch {
		if unread[m.slot] {
			continue
		}
		p, seen := out[m.slot]
		if !seen {
			p = &pending{}
			out[m.slot] = p
		}
		p.entries = append(p.entries, m.entries...)
		if m.entries == nil {
			mustRead[m.slot] = true
		}
		if u, ok := upto[m.slot]; !ok || u.less(m.upto) {
			upto[m.slot] = m.upto
		}
	}
	if len(mustRead) == 0 {
		return out, nil
	}
	var slots []uint16
	var cmds rueidis.Commands
	o.mu.Lock()
	for slot := range mustRead {
		start, end := "-", "+"
		if p, ok := o.progress[slot]; ok {
			start = "(" + p.String()
		}
		if u := upto[slot]; u != allEntries {
			end = u.String()
		}
		slots = append(slots, slot)
		cmds = append(cmds, s.c.B().Xrange().Key(o.key(slot)).Start(start).End(end).Count(collectBatch).Build())
	}
	o.mu.Unlock()
	for i, res := range s.c.DoMulti(ctx, append(cmds, o.takeTrims()...)...)[:len(slots)] {
		p, rerr := readPending(res)
		if rerr != nil {
			unread[slots[i]] = true
			delete(out, slots[i])
			err = cmp.Or(err, rerr)
			continue
		}
		out[slots[i]] = p
	}
	return out, err
}

// readPending parses an outbox read (XRANGE … COUNT collectBatch).
func readPending(res rueidis.RedisResult) (*pending, error) {
	xr, err := res.AsXRange()
	if err != nil {
		return nil, err
	}
	p := &pending{more: len(xr) == collectBatch}
	for _, e := range xr {
		id, err := parseStreamID(e.ID)
		if err != nil {
			return nil, err
		}
		p.entries = append(p.entries, entry{raw: e.ID, id: id, event: e.FieldValues["e"], subject: e.FieldValues["s"]})
	}
	return p, nil
}
