package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tetherhq/tether"
)

// insertEvents is a data-modifying CTE that writes the events passed as a JSON
// array in parameter $param, once per row of the CTE src (which has a subject
// column) where cond holds, so they commit or roll back with the change in the
// same statement. An event's empty subject is taken from src.
func insertEvents(src, cond string, param int) string {
	return writeEvents(eventRows(src, cond, param))
}

// writeEvents is a data-modifying CTE that writes the events the query rows
// selects, as (subject, session_id, body), in its order.
func writeEvents(rows string) string {
	return `ev AS (
	INSERT INTO tether_events (time, type, subject, session_id, body)
	SELECT (body->>'time')::timestamptz, body->>'type', subject, session_id, body FROM (` + rows + `) rows
)`
}

// eventRows selects, for writeEvents, the events passed as a JSON array in
// parameter $param, once per row of src where cond holds.
func eventRows(src, cond string, param int) string {
	return fmt.Sprintf(`SELECT coalesce(nullif(e->>'subject', ''), %[1]s.subject) AS subject,
		coalesce(e->>'session_id', '') AS session_id, e AS body
	FROM %[1]s, json_array_elements($%[3]d::json) e WHERE %[2]s`, src, cond, param)
}

// expiryRows selects, for writeEvents, the session.expired event of each row
// of src (id, subject, expires_at, idle_expires_at: a session removed because
// it expired) whose subject begins with none of the prefixes in parameter
// $prefixes: what tether.ExpiryEvents would make of it, built in SQL from
// parameter $template, ExpiryEvents' event for a record with the ID alone,
// whose detail it replaces. expired_at is formatted as Go's RFC3339Nano
// formats a microsecond time in UTC (trailing zeros dropped).
func expiryRows(src string, template, prefixes int) string {
	return fmt.Sprintf(`SELECT %[1]s.subject AS subject, %[1]s.id AS session_id,
		($%[2]d::jsonb || jsonb_build_object('subject', %[1]s.subject, 'detail', jsonb_build_object(
			'reason', CASE WHEN %[1]s.idle_expires_at < %[1]s.expires_at THEN '%[4]s' ELSE '%[5]s' END,
			'expired_at', regexp_replace(to_char(least(%[1]s.idle_expires_at, %[1]s.expires_at) AT TIME ZONE 'UTC',
				'YYYY-MM-DD"T"HH24:MI:SS.US'), '\.?0+$', '') || 'Z')))::json AS body
	FROM %[1]s WHERE NOT EXISTS (SELECT 1 FROM unnest($%[3]d::text[]) p WHERE starts_with(%[1]s.subject, p))`,
		src, template, prefixes, tether.ExpiryIdleTimeout, tether.ExpiryLifetime)
}

// eventsParam encodes evs for insertEvents.
func eventsParam(evs []tether.Event) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range evs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(tether.MarshalEvent(&evs[i]))
	}
	b.WriteByte(']')
	return b.String()
}

// AppendEvents implements tether.Store.
func (s *Store) AppendEvents(ctx context.Context, evs ...tether.Event) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `WITH s AS (SELECT ''::text AS subject), `+insertEvents("s", "true", 1)+` SELECT 1`, eventsParam(evs))
	if err != nil {
		return s.fail("append events", err)
	}
	return nil
}

// eventsQuery reads events after the cursor ($1, $2) up to the horizon: the
// oldest transaction of this database still running as of the statement's
// snapshot (or the snapshot's xmax if none is). Every event below the horizon
// has committed or never will, so the page is final and the cursor never
// skips an event that commits late. Transactions of other databases on the
// server cannot write here and do not hold the horizon back; one that ended
// after the snapshot cannot be placed, so it does, until the next read.
// Transaction IDs in pg_stat_activity are 32-bit, hence the modulo.
const eventsQuery = `
WITH snap AS MATERIALIZED (SELECT pg_current_snapshot() AS s),
elsewhere AS (
	SELECT backend_xid::text AS x FROM pg_stat_activity
	WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
),
horizon AS (
	SELECT coalesce(
		(SELECT x FROM snap, pg_snapshot_xip(snap.s) AS x
		 WHERE (x::text::numeric % 4294967296)::text NOT IN (SELECT x FROM elsewhere)
		 ORDER BY x LIMIT 1),
		(SELECT pg_snapshot_xmax(s) FROM snap)) AS h
)
SELECT e.xid::text, e.seq, e.subject, e.body FROM tether_events e, horizon
WHERE (e.xid, e.seq) > ($1::text::xid8, $2) AND e.xid < horizon.h
	AND ($3 = '' OR e.subject = $3) AND ($4 = '' OR e.session_id = $4) AND ($5 = '' OR e.type = $5)
ORDER BY e.xid, e.seq LIMIT $6`

// Events implements tether.Store. The cursor is "xid.seq" (see eventsQuery).
func (s *Store) Events(ctx context.Context, q tether.EventQuery) (tether.EventPage, error) {
	xid, seq := "0", int64(0)
	if q.After != "" {
		x, sq, ok := strings.Cut(q.After, ".")
		n, err := strconv.ParseInt(sq, 10, 64)
		if _, xerr := strconv.ParseUint(x, 10, 64); !ok || err != nil || xerr != nil {
			return tether.EventPage{}, tether.BadInput("malformed cursor")
		}
		xid, seq = x, n
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, eventsQuery, xid, seq, q.Subject, q.SessionID, q.Type, q.Limit)
	p := tether.EventPage{Next: q.After}
	var subject string
	var body []byte
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&xid, &seq, &subject, &body}, func() error {
			e, err := tether.UnmarshalEvent(body)
			if err != nil {
				return err
			}
			e.Subject = subject // filled in from the record where the caller did not know it
			p.Next = xid + "." + strconv.FormatInt(seq, 10)
			e.Cursor = p.Next
			p.Events = append(p.Events, e)
			return nil
		})
	}
	if err != nil {
		return tether.EventPage{}, s.fail("events", err)
	}
	return p, nil
}

// TrimEvents implements tether.Store.
func (s *Store) TrimEvents(ctx context.Context, before time.Time) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	// Events are in time order along the primary key, give or take clock
	// skew between nodes, so the old ones are those before the first young
	// one: found by walking the key from its start, without an index on time.
	if _, err := s.pool.Exec(ctx, `
DELETE FROM tether_events WHERE (xid, seq) < coalesce(
	(SELECT (xid, seq) FROM tether_events WHERE time >= $1 ORDER BY xid, seq LIMIT 1),
	(pg_current_xact_id(), 0))`, before); err != nil {
		return s.fail("trim events", err)
	}
	return nil
}

// GetState implements tether.Store.
func (s *Store) GetState(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM tether_state WHERE key = $1`, key).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, s.fail("get state", err)
	}
	return v, nil
}

// PutState implements tether.Store.
func (s *Store) PutState(ctx context.Context, key string, value []byte) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `INSERT INTO tether_state (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, key, value)
	if err != nil {
		return s.fail("put state", err)
	}
	return nil
}
