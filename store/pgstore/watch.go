package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tetherhq/tether"
)

// Reconnect backoff of Watch: doubling from minBackoff to maxBackoff, jittered
// so that many nodes losing one server do not reconnect in lockstep.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Watch implements tether.Watcher with LISTEN on a dedicated connection (a
// pooled one would be handed to queries). It reports ChannelRestored once
// listening, ChannelLost as soon as the connection fails, and reconnects until
// ctx ends or the Store is closed. It returns nil when ctx ends, and an error
// wrapping tether.ErrUnavailable when the Store is closed.
func (s *Store) Watch(ctx context.Context, fn func(tether.Change)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("pgstore: watch: %w: %w", tether.ErrUnavailable, errClosed)
	}
	s.wg.Add(1) // under mu, so Close's Wait cannot miss it
	s.mu.Unlock()
	defer s.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.base, cancel)
	defer stop()

	backoff := minBackoff
	for {
		conn, err := s.listen(ctx)
		if err == nil {
			backoff = minBackoff
			fn(tether.Change{Kind: tether.ChannelRestored})
			s.follow(ctx, conn, fn)
			closeConn(conn)
			if ctx.Err() == nil {
				fn(tether.Change{Kind: tether.ChannelLost})
			}
		}
		if ctx.Err() != nil {
			if s.base.Err() != nil {
				return fmt.Errorf("pgstore: watch: %w: %w", tether.ErrUnavailable, errClosed)
			}
			return nil
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// listen opens a connection of its own, outside the pool (so that Watch
// neither waits for nor holds one of MaxConns), and subscribes it to the
// change channel.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout+s.opts.QueryTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, s.connCfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(cctx, "LISTEN "+notifyChannel); err != nil {
		closeConn(conn)
		return nil, err
	}
	return conn, nil
}

// follow delivers notifications until the connection fails or ctx ends. A
// connection silent for HeartbeatInterval is pinged: a network that drops
// packets without a reset would otherwise leave us waiting, and caching,
// forever.
func (s *Store) follow(ctx context.Context, conn *pgx.Conn, fn func(tether.Change)) {
	for {
		wctx, cancel := context.WithTimeout(ctx, s.opts.HeartbeatInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			deliver(n.Payload, fn)
			continue
		case ctx.Err() != nil || conn.IsClosed():
			return
		case errors.Is(err, context.DeadlineExceeded):
			pctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err == nil {
				continue
			}
		}
		return
	}
}

// deliver turns a payload into a Change. Anything not understood (a "*", or a
// payload from a newer version) flushes every cache: missing an invalidation
// is the one thing a listener must never do.
func deliver(payload string, fn func(tether.Change)) {
	switch {
	case strings.HasPrefix(payload, "s:"):
		fn(tether.Change{Kind: tether.SessionChanged, SessionID: payload[2:]})
	case strings.HasPrefix(payload, "u:"):
		fn(tether.Change{Kind: tether.SubjectChanged, Subject: payload[2:]})
	default:
		fn(tether.Change{Kind: tether.ChannelLost})
		fn(tether.Change{Kind: tether.ChannelRestored})
	}
}

// closeConn sends Terminate with a short bound: a dead peer must not hold us.
func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
