// Package changefeed owns the loop behind every networked store's
// tether.Watcher: connect and subscribe, report ChannelRestored once
// subscribed, pass each message on, report ChannelLost the moment the
// connection breaks, reconnect with capped, jittered exponential backoff, and
// stop when the caller's context ends or the store closes. A store supplies
// only Subscribe, the part that speaks its protocol (Redis SUBSCRIBE,
// PostgreSQL LISTEN), so that every store keeps the rules written on
// tether.Watcher in the same way.
//
// It also fixes the wire form of a change, shared by every store: "s:" + a
// session ID, "u:" + a subject. A message in any other form (a flush marker
// such as "*", or one from a newer version) makes every cache drop everything:
// missing an invalidation is the one thing a watcher must never do.
package changefeed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/tetherhq/tether"
)

// Default backoff between subscription attempts.
const (
	DefaultMinBackoff = 50 * time.Millisecond
	DefaultMaxBackoff = 2 * time.Second
)

// ErrClosed is what Follow returns, wrapped with tether.ErrUnavailable, when
// Config.Closed ends it.
var ErrClosed = errors.New("store is closed")

// Config describes one store's change channel.
type Config struct {
	// Name prefixes log lines and errors, e.g. "redisstore".
	Name string
	// Subscribe makes one connection and subscription. It calls c.Up once
	// the subscription is confirmed (every change committed from then on
	// will reach it), c.Send for each message, and returns when the
	// connection breaks or ctx ends. It may call Up and Send from any
	// goroutine; calls made after it returned are ignored. Its error is only
	// logged: Follow always tries again.
	Subscribe func(ctx context.Context, c *Conn) error
	// Closed, if not nil, is closed when the store closes; Follow then
	// returns an error wrapping tether.ErrUnavailable and ErrClosed.
	Closed <-chan struct{}
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles after each failure and is jittered so that a fleet of nodes
	// does not reconnect in lockstep. Defaults DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives the loss of the channel and failed attempts; never a
	// message's content. Default slog.Default().
	Logger *slog.Logger
}

// Conn is what Follow hands to one Subscribe call.
type Conn struct {
	mu   sync.Mutex
	fn   func(tether.Change)
	up   bool
	over bool // Subscribe returned: late calls are ignored
}

// Up reports that the subscription is confirmed. Only the first call counts.
func (c *Conn) Up() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.upLocked()
}

func (c *Conn) upLocked() {
	if c.over || c.up {
		return
	}
	c.up = true
	c.fn(tether.Change{Kind: tether.ChannelRestored})
}

// Send passes one message on. A message proves the subscription, so one that
// arrives before Up counts as Up.
func (c *Conn) Send(payload string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over {
		return
	}
	c.upLocked()
	if ch, ok := Parse(payload); ok {
		c.fn(ch)
		return
	}
	c.fn(tether.Change{Kind: tether.ChannelLost})
	c.fn(tether.Change{Kind: tether.ChannelRestored})
}

// end marks the subscription over and reports whether it was ever up.
func (c *Conn) end() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.over = true
	return c.up
}

// Follow runs cfg.Subscribe again and again, calling fn as tether.Watcher
// promises, until ctx ends (it returns nil) or cfg.Closed is closed (it
// returns an error wrapping tether.ErrUnavailable). fn is never called
// concurrently, nor after Follow returns.
func Follow(ctx context.Context, cfg Config, fn func(tether.Change)) error {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	closed := func() bool {
		select {
		case <-cfg.Closed: // a nil channel never is
			return true
		default:
			return false
		}
	}
	stopped := func() error {
		if ctx.Err() == nil && closed() {
			return fmt.Errorf("%s: watch: %w: %w", cfg.Name, tether.ErrUnavailable, ErrClosed)
		}
		return nil
	}
	if closed() {
		return stopped()
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Closed != nil {
		go func() { // ends with Follow: cancel runs on return
			select {
			case <-cfg.Closed:
				cancel()
			case <-sctx.Done():
			}
		}()
	}

	delay, failures := cfg.MinBackoff, 0
	for {
		c := &Conn{fn: fn}
		err := cfg.Subscribe(sctx, c)
		wasUp := c.end()
		if sctx.Err() != nil {
			return stopped()
		}
		if wasUp {
			// Changes may be missed from now on: say so at once, before any
			// backoff, so that caches stop serving.
			fn(tether.Change{Kind: tether.ChannelLost})
			log.Warn(cfg.Name+": change channel lost; resubscribing", "err", err)
			delay, failures = cfg.MinBackoff, 0
		} else {
			failures++
			level := slog.LevelDebug
			if failures == 1 { // once per outage, not once per attempt
				level = slog.LevelWarn
			}
			log.Log(sctx, level, cfg.Name+": change channel: subscribe failed", "err", err, "retry_in", delay)
		}
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-sctx.Done():
			t.Stop()
			return stopped()
		case <-t.C:
		}
		if !wasUp {
			delay = min(2*delay, cfg.MaxBackoff)
		}
	}
}

// Payload is the wire form of a SessionChanged or SubjectChanged change.
func Payload(c tether.Change) string {
	switch c.Kind {
	case tether.SessionChanged:
		return "s:" + c.SessionID
	case tether.SubjectChanged:
		return "u:" + c.Subject
	default:
		return "*" // anything else flushes every cache
	}
}

// Parse reads what Payload wrote; ok is false for anything else, which the
// receiver must treat as "flush everything".
func Parse(payload string) (c tether.Change, ok bool) {
	if id, ok := strings.CutPrefix(payload, "s:"); ok && id != "" {
		return tether.Change{Kind: tether.SessionChanged, SessionID: id}, true
	}
	if sub, ok := strings.CutPrefix(payload, "u:"); ok && sub != "" {
		return tether.Change{Kind: tether.SubjectChanged, Subject: sub}, true
	}
	return tether.Change{}, false
}
