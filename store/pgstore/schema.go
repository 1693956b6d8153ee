package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migrations are applied in order, each once, each in its own transaction.
// Never edit one that has shipped: append a new one.
var migrations = []string{
	1: `
CREATE TABLE tether_sessions (
	id              text        PRIMARY KEY,
	secret_hash     bytea       NOT NULL CHECK (octet_length(secret_hash) = 32),
	subject         text        NOT NULL,
	created_at      timestamptz NOT NULL,
	last_seen_at    timestamptz NOT NULL,
	expires_at      timestamptz NOT NULL,
	idle_expires_at timestamptz NOT NULL,
	idle_timeout    interval    NOT NULL,
	metadata        jsonb,
	auth_time       timestamptz,
	auth_method     text        NOT NULL DEFAULT ''
);
-- List and DeleteSubject.
CREATE INDEX tether_sessions_subject_idx ON tether_sessions (subject, created_at);
-- The sweeper. Deliberately not on idle_expires_at: Touch rewrites that column
-- on every slide, and leaving it unindexed keeps those updates HOT.
CREATE INDEX tether_sessions_expires_idx ON tether_sessions (expires_at);

CREATE TABLE tether_subjects (
	subject text   PRIMARY KEY,
	roles   text[] NOT NULL
);

CREATE TABLE tether_consumed (
	key   text        PRIMARY KEY,
	until timestamptz NOT NULL
);
CREATE INDEX tether_consumed_until_idx ON tether_consumed (until);
`,
	2: `
-- The audit log (events.go). xid is the writing transaction's ID: readers
-- return only events of transactions older than every one still running, in
-- (xid, seq) order, so a cursor never skips an event that commits late.
CREATE TABLE tether_events (
	xid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
	seq        bigserial   NOT NULL,
	time       timestamptz NOT NULL,
	type       text        NOT NULL,
	subject    text        NOT NULL,
	session_id text        NOT NULL,
	body       json        NOT NULL, -- json, not jsonb: kept as written, not decomposed
	PRIMARY KEY (xid, seq)
);
-- No index on time: events are trimmed from the front of the primary key.
CREATE INDEX tether_events_subject_idx ON tether_events (subject, xid, seq);

-- The service's own small state (GetState), such as webhook cursors.
CREATE TABLE tether_state (
	key   text  PRIMARY KEY,
	value bytea NOT NULL
);
`,
	// DPoP (RFC 9449): the thumbprint of the key a session is bound to.
	3: `ALTER TABLE tether_sessions ADD COLUMN dpop_jkt text NOT NULL DEFAULT '';`,
	// DBSC (W3C Device Bound Session Credentials): the thumbprint of the
	// browser key a session is bound to.
	4: `ALTER TABLE tether_sessions ADD COLUMN dbsc_jkt text NOT NULL DEFAULT '';`,
	5: `
-- Where a session made from a handshake came from (DESIGN §11): the minting
-- service, its subject and session. Read through the subject index only, so
-- no index of its own.
ALTER TABLE tether_sessions
	ADD COLUMN origin_iss text NOT NULL DEFAULT '',
	ADD COLUMN origin_sub text NOT NULL DEFAULT '',
	ADD COLUMN origin_sid text NOT NULL DEFAULT '';
`,
}

// migrationLock is the pg_advisory_xact_lock key that serialises migrations
// among nodes starting together ("tether" in ASCII).
const migrationLock int64 = 0x746574686572

// migrate brings the schema up to date. It is idempotent and safe to run from
// any number of nodes at once: each step takes a transaction-scoped advisory
// lock, so a concurrent node waits and then finds the step already applied.
// Even the bookkeeping table is created under the lock, because two concurrent
// CREATE TABLE IF NOT EXISTS can still collide on the catalog.
func migrate(ctx context.Context, c *pgx.Conn) error {
	for v := 0; v < len(migrations); v++ {
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
				return err
			}
			if v == 0 {
				_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS tether_schema_migrations (
	version    integer     PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`)
				return err
			}
			var done bool
			err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tether_schema_migrations WHERE version = $1)`, v).Scan(&done)
			if err != nil || done {
				return err
			}
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO tether_schema_migrations (version) VALUES ($1)`, v)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	return nil
}
