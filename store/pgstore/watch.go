package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/changefeed"
)

// Watch implements tether.Watcher on changefeed.Follow, with LISTEN on a
// dedicated connection (a pooled one would be handed to queries). Close waits
// for every running Watch to return.
func (s *Store) Watch(ctx context.Context, fn func(tether.Change)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("pgstore: watch: %w: %w", tether.ErrUnavailable, errClosed)
	}
	s.wg.Add(1) // under mu, so Close's Wait cannot miss it
	s.mu.Unlock()
	defer s.wg.Done()
	return changefeed.Follow(ctx, changefeed.Config{
		Name:       "pgstore",
		Subscribe:  s.listen,
		Closed:     s.base.Done(),
		MaxBackoff: 5 * time.Second,
	}, fn)
}

// listen opens a connection of its own, outside the pool (so that Watch
// neither waits for nor holds one of MaxConns), subscribes it to the change
// channel and passes notifications on until the connection fails or ctx
// ends. A connection silent for HeartbeatInterval is pinged: a network that
// drops packets without a reset would otherwise leave us waiting, and
// caching, for ever.
func (s *Store) listen(ctx context.Context, c *changefeed.Conn) error {
	cctx, cancel := context.WithTimeout(ctx, s.opts.ConnectTimeout+s.opts.QueryTimeout)
	conn, err := pgx.ConnectConfig(cctx, s.connCfg)
	if err == nil {
		_, err = conn.Exec(cctx, "LISTEN "+notifyChannel)
		if err != nil {
			closeConn(conn)
		}
	}
	cancel()
	if err != nil {
		return scrub(err, s.password)
	}
	defer closeConn(conn)
	c.Up()
	for {
		wctx, cancel := context.WithTimeout(ctx, s.opts.HeartbeatInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			c.Send(n.Payload)
			continue
		case ctx.Err() != nil || conn.IsClosed():
			return err
		case errors.Is(err, context.DeadlineExceeded):
			pctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err == nil {
				continue
			}
		}
		return scrub(err, s.password)
	}
}

// closeConn sends Terminate with a short bound: a dead peer must not hold us.
func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
