package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/httperr"
	"github.com/tetherhq/tether/internal/server"
)

// GET /v1/changes streams the node's change feed as Server-Sent Events, so
// that caches outside the node (the remote package, other languages) drop what
// was revoked or changed:
//
//	id: <epoch>.<seq>
//	event: session | subject
//	data: {"id":…} | {"subject":…}
//
// A reconnecting client sends Last-Event-ID; the events after it are replayed
// when they are still in the ring, else an "event: reset" says that changes
// may have been missed and everything cached must go. When the node loses its
// own change channel, or a client falls too far behind, it gets "event: error"
// and the stream ends: a client must then stop trusting its cache (fail
// closed) until it has reconnected.
const (
	changesRing       = 1024             // events kept for Last-Event-ID
	changesQueue      = 256              // events queued for one client before it is dropped as too slow
	changesMaxClients = 1000             // streams open at once on one node
	changesLinger     = 30 * time.Second // the feed outlives its last client this long, so a quick reconnect resumes
	changesWaitUp     = 5 * time.Second  // how long a new client waits for the change channel to come up
	changesWriteLimit = 10 * time.Second // a write that takes longer drops the client
)

// changesHeartbeat is how often an idle stream carries a comment, so that
// clients and proxies can tell a quiet stream from a dead one (≤ 15 s, §14).
// Tests shorten it.
var changesHeartbeat = 10 * time.Second

type changeEvent struct {
	seq  uint64
	kind string // "session" or "subject"
	data []byte // JSON
}

// changeFeed follows the store's change channel while at least one client (or
// the linger after the last one) wants it, numbers the changes and fans them
// out. The watch goroutine is owned by the feed: it is cancelled when the feed
// idles out, and ends by itself when the store's Watch returns.
type changeFeed struct {
	w          tether.Watcher
	invalidate func(tether.Change) // the node's own cache, dropped before a change is forwarded
	log        *slog.Logger

	mu     sync.Mutex
	closed bool               // Server.Close: no more streams
	gen    uint64             // incarnation of the watch: callbacks of an older one are ignored
	cancel context.CancelFunc // nil: not running
	up     bool
	upCh   chan struct{} // closed when the channel comes up
	epoch  string        // changes with each ChannelRestored, so no ID is resumed across a gap
	next   uint64        // seq of the next event
	ring   [changesRing]changeEvent
	subs   map[*changeSub]struct{}
	linger *time.Timer
}

// changeSub is one client's queue. The feed closes gone, with reason set,
// when it drops the client.
type changeSub struct {
	ch     chan changeEvent
	gone   chan struct{}
	reason string
}

func newChangeFeed(w tether.Watcher, invalidate func(tether.Change), log *slog.Logger) *changeFeed {
	return &changeFeed{w: w, invalidate: invalidate, log: log, subs: make(map[*changeSub]struct{})}
}

// subscribe registers a client once the channel is up and returns the events
// it missed since lastID, or reset when they cannot be known, and the ID of
// the latest event.
func (f *changeFeed) subscribe(ctx context.Context, lastID string) (sub *changeSub, replay []changeEvent, reset bool, cursor string, err error) {
	deadline := time.NewTimer(changesWaitUp)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return nil, nil, false, "", httperr.New(http.StatusServiceUnavailable, httperr.CodeUnavailable, "this node is shutting down")
		}
		if f.cancel == nil {
			f.startLocked()
		}
		if f.linger != nil {
			f.linger.Stop()
			f.linger = nil
		}
		if f.up {
			break
		}
		upCh := f.upCh
		f.mu.Unlock()
		select {
		case <-upCh:
		case <-ctx.Done():
			f.idle()
			return nil, nil, false, "", ctx.Err()
		case <-deadline.C:
			f.idle()
			return nil, nil, false, "", &httperr.Error{Status: http.StatusServiceUnavailable, Code: httperr.CodeUnavailable,
				Message: "this node's change channel is down; try again", RetryAfter: time.Second}
		}
	}
	defer f.mu.Unlock()
	if len(f.subs) >= changesMaxClients {
		return nil, nil, false, "", &httperr.Error{Status: http.StatusServiceUnavailable, Code: httperr.CodeUnavailable,
			Message: "too many change streams open on this node", RetryAfter: 5 * time.Second}
	}
	sub = &changeSub{ch: make(chan changeEvent, changesQueue), gone: make(chan struct{})}
	f.subs[sub] = struct{}{}
	if lastID != "" {
		replay, reset = f.sinceLocked(lastID)
	}
	return sub, replay, reset, f.idLocked(f.next - 1), nil
}

// sinceLocked returns the events after lastID, or reset if some of them are
// gone from the ring or lastID is from another epoch.
func (f *changeFeed) sinceLocked(lastID string) ([]changeEvent, bool) {
	epoch, n, ok := strings.Cut(lastID, ".")
	seq, err := strconv.ParseUint(n, 10, 64)
	if !ok || err != nil || epoch != f.epoch || seq >= f.next {
		return nil, true
	}
	if f.next-seq-1 > changesRing {
		return nil, true
	}
	var out []changeEvent
	for s := seq + 1; s < f.next; s++ {
		out = append(out, f.ring[s%changesRing])
	}
	return out, false
}

func (f *changeFeed) idLocked(seq uint64) string { return f.epoch + "." + strconv.FormatUint(seq, 10) }

func (f *changeFeed) unsubscribe(sub *changeSub) {
	f.mu.Lock()
	delete(f.subs, sub)
	f.mu.Unlock()
	f.idle()
}

// idle starts the linger once no client is left.
func (f *changeFeed) idle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) > 0 || f.cancel == nil || f.linger != nil {
		return
	}
	gen := f.gen
	f.linger = time.AfterFunc(changesLinger, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.gen == gen && len(f.subs) == 0 && f.cancel != nil {
			f.stopLocked()
		}
	})
}

func (f *changeFeed) startLocked() {
	f.gen++
	gen := f.gen
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.up, f.upCh = cancel, false, make(chan struct{})
	go func() {
		err := f.w.Watch(ctx, func(c tether.Change) { f.apply(gen, c) })
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.gen != gen {
			return // stopped on purpose
		}
		if err != nil {
			f.log.Error("change feed: the store's change channel stopped", "err", err)
		}
		f.dropAllLocked("channel_lost")
		f.stopLocked()
	}()
}

// close ends every stream (their clients reconnect, to another node if
// there is one) and the watch, and refuses new streams.
func (f *changeFeed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.dropAllLocked("shutdown")
	if f.cancel != nil {
		f.stopLocked()
	}
}

func (f *changeFeed) stopLocked() {
	f.cancel()
	f.gen++
	f.cancel, f.up, f.linger = nil, false, nil
}

// apply runs on the store's watch goroutine; it never blocks on a client.
func (f *changeFeed) apply(gen uint64, c tether.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen != gen {
		return
	}
	var ev changeEvent
	switch c.Kind {
	case tether.ChannelRestored:
		if f.up {
			// Restored without a Lost first: whatever happened in between is
			// unknown, so the streams end as if it had been lost.
			f.dropAllLocked("channel_lost")
		} else {
			close(f.upCh)
		}
		f.up, f.epoch, f.next = true, rand.Text()[:8], 1
		return
	case tether.ChannelLost:
		f.up, f.upCh = false, make(chan struct{})
		f.dropAllLocked("channel_lost")
		return
	case tether.SessionChanged:
		ev.kind, ev.data = "session", mustJSON(map[string]string{"id": c.SessionID})
	case tether.SubjectChanged:
		ev.kind, ev.data = "subject", mustJSON(map[string]string{"subject": c.Subject})
	default:
		return
	}
	if !f.up {
		return
	}
	// The node's own cache hears of the change on its own subscription, maybe
	// later: a client told of it must not read the old answer back from it.
	f.invalidate(c)
	ev.seq = f.next
	f.next++
	f.ring[ev.seq%changesRing] = ev
	for sub := range f.subs {
		select {
		case sub.ch <- ev:
		default: // bounded per client: a client that cannot keep up is dropped, not buffered for
			f.dropLocked(sub, "too_slow")
		}
	}
}

func (f *changeFeed) dropLocked(sub *changeSub, reason string) {
	delete(f.subs, sub)
	sub.reason = reason
	close(sub.gone)
}

func (f *changeFeed) dropAllLocked(reason string) {
	for sub := range f.subs {
		f.dropLocked(sub, reason)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return b
}

// Close ends the server's change streams, which would otherwise hold
// http.Server.Shutdown until its deadline: register it with RegisterOnShutdown.
func (s *Server) Close() {
	if s.feed != nil {
		s.feed.close()
	}
}

func (s *Server) changes(w http.ResponseWriter, r *http.Request) error {
	if s.feed == nil {
		return httperr.New(http.StatusServiceUnavailable, httperr.CodeUnavailable, "this node's store announces no changes")
	}
	sub, replay, reset, cursor, err := s.feed.subscribe(r.Context(), r.Header.Get("Last-Event-ID"))
	if err != nil {
		return err
	}
	defer s.feed.unsubscribe(sub)
	// A stream lasts; the listener's in-flight budget is for the short
	// requests (a revocation must get through). Streams have their own cap.
	server.Release(r)

	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{}) // the server's read timeout is for requests, not streams
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	buf.WriteString("retry: 1000\n: subscribed\n\n")
	if reset {
		fmt.Fprintf(&buf, "id: %s\nevent: reset\ndata: {}\n\n", cursor)
	}
	epoch, _, _ := strings.Cut(cursor, ".")
	for _, ev := range replay {
		writeEvent(&buf, epoch, ev)
	}
	send := func() bool {
		rc.SetWriteDeadline(time.Now().Add(changesWriteLimit))
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		return err == nil && rc.Flush() == nil
	}
	if !send() {
		return nil
	}
	beat := time.NewTicker(changesHeartbeat)
	defer beat.Stop()
	for {
		select {
		case ev := <-sub.ch:
			writeEvent(&buf, epoch, ev)
			for more := true; more; { // whatever else is queued goes in the same write
				select {
				case ev := <-sub.ch:
					writeEvent(&buf, epoch, ev)
				default:
					more = false
				}
			}
		case <-sub.gone:
			s.log.Info("change stream ended", "reason", sub.reason, "remote", tether.ClientIP(r))
			fmt.Fprintf(&buf, "event: error\ndata: %s\n\n", mustJSON(map[string]string{"error": sub.reason}))
			send()
			return nil
		case <-beat.C:
			buf.WriteString(": heartbeat\n\n")
		case <-r.Context().Done():
			return nil
		}
		if !send() {
			return nil
		}
	}
}

func writeEvent(buf *bytes.Buffer, epoch string, ev changeEvent) {
	fmt.Fprintf(buf, "id: %s.%d\nevent: %s\ndata: %s\n\n", epoch, ev.seq, ev.kind, ev.data)
}
