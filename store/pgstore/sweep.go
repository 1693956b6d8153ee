package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tetherhq/tether"
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

// sessionExpired holds for a session row that has expired by both
// Options.Now ($1) and the database's clock (see the package doc).
const sessionExpired = `(expires_at <= LEAST($1::timestamptz, now()) OR idle_expires_at <= LEAST($1::timestamptz, now()))`

// sweep deletes expired sessions, each with its session.expired event, and
// replay-guard keys, in batches, and returns how many rows it deleted. SKIP
// LOCKED lets several nodes sweep at once without waiting on each other.
func (s *Store) sweep(ctx context.Context) (int64, error) {
	cutoff := s.now()
	var total int64
	for {
		n, err := s.sweepSessions(ctx, cutoff)
		total += n
		if err != nil {
			return total, s.fail("sweep", err)
		}
		if n < sweepBatch {
			break
		}
	}
	for {
		qctx, cancel := s.op(ctx)
		tag, err := s.pool.Exec(qctx, `
DELETE FROM tether_consumed WHERE key IN (
	SELECT key FROM tether_consumed
	WHERE until <= LEAST($1::timestamptz, now())
	LIMIT $2 FOR UPDATE SKIP LOCKED)`, cutoff, sweepBatch)
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
	return total, nil
}

// sweepSessions deletes up to sweepBatch expired sessions and writes a
// session.expired event for each in the same statement. The events are made
// here (tether.ExpiryEvents) from the candidates read first; the DELETE checks
// each again and writes the events of the rows it removed only, so a session
// revoked, or swept by another node, in between is not reported, nor twice.
func (s *Store) sweepSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id, subject, expires_at, idle_expires_at FROM tether_sessions
WHERE `+sessionExpired+` LIMIT $2`, cutoff, sweepBatch)
	if err != nil {
		return 0, err
	}
	var (
		r   tether.Record
		ids []string
		evs []tether.Event
	)
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Subject, &r.ExpiresAt, &r.IdleExpiresAt}, func() error {
		ids = append(ids, r.ID)
		evs = append(evs, tether.ExpiryEvents(&r, s.now())...)
		return nil
	})
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	var n int64
	err = s.pool.QueryRow(ctx, `
WITH d AS (
	DELETE FROM tether_sessions WHERE id IN (
		SELECT id FROM tether_sessions WHERE id = ANY($2::text[]) AND `+sessionExpired+`
		FOR UPDATE SKIP LOCKED)
	RETURNING id, subject
), `+insertEvents("d", "e->>'session_id' = d.id", 3)+`
SELECT count(*) FROM d`, cutoff, ids, eventsParam(evs)).Scan(&n)
	return n, err
}
