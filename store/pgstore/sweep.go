package pgstore

import (
	"context"
	"time"
)

// sweepBatch bounds each DELETE, so the sweeper never holds many row locks or
// writes a huge WAL burst at once.
const sweepBatch = 1000

// sweepLoop runs sweep every SweepInterval until Close.
func (s *Store) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.base.Done():
			return
		case <-t.C:
			_, _ = s.sweep(s.base) // a failed sweep is retried next tick; reads never depend on it
		}
	}
}

// sweep deletes expired sessions and replay-guard keys in batches and returns
// how many rows it deleted. A row goes once it has expired by both Options.Now
// and the database's clock (see the package doc). SKIP LOCKED lets several
// nodes sweep at once without waiting on each other.
func (s *Store) sweep(ctx context.Context) (int64, error) {
	cutoff := s.now()
	var total int64
	for _, q := range []string{`
DELETE FROM tether_sessions WHERE id IN (
	SELECT id FROM tether_sessions
	WHERE expires_at <= LEAST($1::timestamptz, now()) OR idle_expires_at <= LEAST($1::timestamptz, now())
	LIMIT $2 FOR UPDATE SKIP LOCKED)`, `
DELETE FROM tether_consumed WHERE key IN (
	SELECT key FROM tether_consumed
	WHERE until <= LEAST($1::timestamptz, now())
	LIMIT $2 FOR UPDATE SKIP LOCKED)`,
	} {
		for {
			qctx, cancel := s.op(ctx)
			tag, err := s.pool.Exec(qctx, q, cutoff, sweepBatch)
			cancel()
			n := tag.RowsAffected()
			if err != nil {
				return total, s.fail("sweep", err)
			}
			total += n
			if n < sweepBatch {
				break
			}
		}
	}
	return total, nil
}
