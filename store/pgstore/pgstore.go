// Package pgstore is a tether.Store on PostgreSQL, for teams whose only shared
// store is PostgreSQL. Open it with a postgres:// or postgresql:// URL; it
// creates and migrates its tables itself.
//
// # Schema
//
// All tables carry a tether_ prefix so that they can share a database (and
// the connection's search_path) with an application:
//
//	tether_sessions           id PK, secret_hash bytea, subject, created_at, last_seen_at,
//	                          expires_at, idle_expires_at, idle_timeout interval,
//	                          metadata jsonb, auth_time, auth_method, dpop_jkt, dbsc_jkt;
//	                          indexes (subject, created_at) and (expires_at)
//	tether_subjects           subject PK, roles text[]
//	tether_consumed           key PK, until  (the handshake replay guard)
//	tether_schema_migrations  version PK, applied_at
//
// Migrations run on Open, each in its own transaction under
// pg_advisory_xact_lock, so nodes starting together do not race. Times are
// timestamptz and round-trip to the microsecond; IdleTimeout likewise.
//
// # Clock
//
// Liveness is decided by the database's clock, now(), in the statement that
// reads or writes: Get, List, Touch, Rotate, Delete, DeleteSubject and Consume
// all agree with each other on every node, whatever the nodes' own clocks say.
// Options.Now only drives the sweeper, which deletes a row once it has expired
// by both that clock and the database's, so a node whose clock runs fast never
// deletes a live session.
//
// # Guarantees
//
// Every write is a single SQL statement (an implicit transaction), so it is
// atomic (a Create that finds its ID taken, which changes nothing, is
// followed by one that replaces the row if it has expired); it is durable once it returns nil, as PostgreSQL's COMMIT is with
// synchronous_commit on (the default). DeleteSubject is one DELETE: once it
// returns, no read on any node finds any of the subject's sessions. Consume is
// one INSERT … ON CONFLICT … DO UPDATE … WHERE: among concurrent calls for one
// live key, exactly one wins.
//
// Across a failover, a write survives if the standby promoted had it: with
// the standby named in the primary's synchronous_standby_names (and
// synchronous_commit on), every write returns nil only once the standby has
// flushed it. A COMMIT still waiting for the standby when QueryTimeout ends
// fails with ErrUnavailable: the call's deadline always passes before the
// server's statement_timeout, which would instead cancel the wait and report
// the COMMIT as done (so do not set a shorter statement_timeout in the URL).
// Give the URL every host and target_session_attrs=read-write to follow a
// promotion. TestStandbyFailover checks this with a real standby.
//
// Every failure to reach or use the database is an error wrapping
// tether.ErrUnavailable; only a missing or expired row is tether.ErrNotFound.
// Callers fail closed.
//
// # Change notification and staleness
//
// Store implements tether.Watcher with LISTEN/NOTIFY on the channel
// tether_changes. Every write that must invalidate caches (Rotate, Delete,
// DeleteSubject, SetRoles) calls pg_notify in the same statement, so a
// notification is sent if and only if the write commits; it reaches listeners
// after the COMMIT (the revoking node's Manager drops its own cache entry
// itself). Payloads are "s:<session id>" and "u:<subject>"; a subject too long
// for NOTIFY's 8000-byte limit is announced as "*", which makes every
// listener flush its whole cache.
//
// Watch runs store/changefeed's loop on a connection of its own, outside the
// pool. It reports ChannelLost as soon as that connection fails (or a
// heartbeat Ping fails on a silent network, within HeartbeatInterval plus a
// few seconds), reconnects with backoff and reports ChannelRestored once
// listening again. A cache on another
// node is therefore stale by at most the NOTIFY delivery time while the
// channel is up (sub-millisecond to a few ms on a LAN; see
// BenchmarkRevocationPropagation), and never beyond the Manager's
// MaxStaleness in any case.
package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/changefeed"
)

// Options configures a Store. Zero fields take the documented defaults.
type Options struct {
	// Now is the sweeper's clock; see the package doc. Default time.Now.
	Now func() time.Time
	// SweepInterval is how often expired sessions and replay-guard keys are
	// deleted, each session with its session.expired event. Default 1m;
	// negative disables the sweeper, and so those events.
	SweepInterval time.Duration

	// MaxConns caps the pool's connections (Watch uses its own on top).
	// Default: the URL's pool_max_conns if set, else max(4, number of CPUs).
	MaxConns int
	// ConnectTimeout bounds each connection attempt, unless the URL sets
	// connect_timeout. Default 5s.
	ConnectTimeout time.Duration
	// QueryTimeout bounds each Store call, including the wait for a
	// connection, when the caller's context has no earlier deadline; the server
	// enforces it too (statement_timeout). Default 5s.
	QueryTimeout time.Duration
	// HeartbeatInterval: a Watch connection silent this long is pinged, so a
	// dead network is noticed even without a TCP reset. Default 5s.
	HeartbeatInterval time.Duration
}

// Store is a tether.Store and tether.Watcher on PostgreSQL.
type Store struct {
	pool     *pgxpool.Pool
	connCfg  *pgx.ConnConfig // Watch's dedicated connections
	password string          // only to scrub it from errors
	now      func() time.Time
	opts     Options

	base     context.Context // ends on Close; stops the sweeper and watchers
	stopBase context.CancelFunc
	mu       sync.Mutex
	closed   bool
	wg       sync.WaitGroup // the sweeper and every running Watch
}

var (
	_ tether.Store   = (*Store)(nil)
	_ tether.Watcher = (*Store)(nil)
)

// notifyChannel is the LISTEN/NOTIFY channel every node shares.
const notifyChannel = "tether_changes"

// maxConnLifetime recycles pooled connections, unless the URL sets
// pool_max_conn_lifetime.
const maxConnLifetime = 30 * time.Minute

var errClosed = errors.New("pgstore: store is closed")

// Open connects to the database at rawURL, migrates the schema and starts the
// sweeper. Errors never contain the URL's password. Besides libpq's
// parameters, the URL may carry pgxpool's pool_* parameters (pool_max_conns,
// pool_max_conn_lifetime, pool_max_conn_idle_time, ...).
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url's error quotes the whole URL, password and all.
		return nil, fmt.Errorf("%w: pgstore: malformed database URL", tether.ErrBadInput)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("%w: pgstore: URL scheme %q, want postgres:// or postgresql://", tether.ErrBadInput, u.Scheme)
	}
	password, _ := u.User.Password()
	poolCfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: pgstore: parse database URL: %w", tether.ErrBadInput, scrub(err, password))
	}
	cfg := poolCfg.ConnConfig
	if password == "" {
		password = cfg.Password // from PGPASSWORD or a passfile
	}
	query := u.Query()

	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = time.Minute
	}
	if opts.MaxConns <= 0 {
		if query.Has("pool_max_conns") {
			opts.MaxConns = int(poolCfg.MaxConns)
		} else {
			opts.MaxConns = max(4, runtime.NumCPU())
		}
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 5 * time.Second
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 5 * time.Second
	}
	poolCfg.MaxConns = int32(min(opts.MaxConns, math.MaxInt32))
	if !query.Has("pool_max_conn_lifetime") {
		poolCfg.MaxConnLifetime = maxConnLifetime
	}
	if !query.Has("connect_timeout") {
		cfg.ConnectTimeout = opts.ConnectTimeout
	}
	if _, ok := cfg.RuntimeParams["statement_timeout"]; !ok {
		cfg.RuntimeParams["statement_timeout"] = fmt.Sprint(opts.QueryTimeout.Milliseconds())
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "tether"
	}

	// NewWithConfig connects lazily; the migration below is the first use.
	pool, err := pgxpool.NewWithConfig(context.Background(), poolCfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open: %w: %w", tether.ErrUnavailable, scrub(err, password))
	}
	base, stop := context.WithCancel(context.Background())
	s := &Store{
		pool:    pool,
		connCfg: cfg, password: password, now: opts.Now, opts: opts,
		base: base, stopBase: stop,
	}
	mctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout+30*time.Second)
	defer cancel()
	if err := s.pool.AcquireFunc(mctx, func(c *pgxpool.Conn) error { return migrate(mctx, c.Conn()) }); err != nil {
		s.Close()
		return nil, s.fail("open", err)
	}
	if opts.SweepInterval > 0 {
		s.wg.Add(1)
		go s.sweepLoop()
	}
	return s, nil
}

// Close stops the sweeper and every Watch, waits for them, and closes the
// pool's connections, waiting for calls in flight to give theirs back. Calls
// after Close fail with tether.ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stopBase()
	s.wg.Wait()
	s.pool.Close()
	return nil
}

// op bounds one Store call by QueryTimeout.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.QueryTimeout)
}

// fail wraps a database failure as tether.ErrUnavailable, without the password.
func (s *Store) fail(op string, err error) error {
	return fmt.Errorf("pgstore: %s: %w: %w", op, tether.ErrUnavailable, scrub(err, s.password))
}

// scrub returns err, or a flat copy of its message without the password if it
// contains it (then dropping the chain, which would carry the original text).
func scrub(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "xxxxx"))
}

// live is the liveness test, by the database's clock.
const live = `expires_at > now() AND idle_expires_at > now()`

const recordColumns = `id, secret_hash, subject, created_at, last_seen_at, expires_at,
	idle_expires_at, idle_timeout, metadata, auth_time, auth_method, dpop_jkt, dbsc_jkt,
	origin_iss, origin_sub, origin_sid`

// Create inserts r. An expired row with the same ID counts as absent: it is
// deleted, with its session.expired event, and r takes its place.
//
// The first statement (createSQL) inserts r unless the ID is taken. Only
// then, which random IDs make rare, does replaceSQL delete a dead row and
// insert r in one statement, so that the event of the row it replaces is
// built from that row's values: ON CONFLICT DO UPDATE cannot return them, and
// doing this in every Create costs it about 20 µs of the database's time.
func (s *Store) Create(ctx context.Context, r *tether.Record, evs ...tether.Event) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var authTime pgtype.Timestamptz
	if !r.AuthTime.IsZero() {
		authTime = pgtype.Timestamptz{Time: r.AuthTime, Valid: true}
	}
	var md map[string]string
	if len(r.Metadata) > 0 {
		md = r.Metadata
	}
	args := []any{r.ID, r.SecretHash[:], r.Subject, r.CreatedAt, r.LastSeenAt, r.ExpiresAt,
		r.IdleExpiresAt, interval(r.IdleTimeout), md, authTime, r.AuthMethod, r.JKT, r.DBSC,
		r.Origin.Issuer, r.Origin.Subject, r.Origin.SessionID, eventsParam(evs)}
	err := s.pool.QueryRow(ctx, createSQL, args...).Scan(new(bool))
	if errors.Is(err, pgx.ErrNoRows) {
		expiry := tether.ExpiryEvents(&tether.Record{ID: r.ID}, s.now())
		args = append(args, tether.MarshalEvent(&expiry[0]), tether.BookkeepingPrefixes())
		err = s.pool.QueryRow(ctx, replaceSQL, args...).Scan(new(bool))
	}
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tether.ErrExists
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation
		return tether.ErrExists
	case err != nil:
		return s.fail("create", err)
	}
	return nil
}

// createSQL inserts a record ($1…$16) with its events ($17) unless its ID is
// taken, and then returns no row.
var createSQL = `
WITH c AS (
	INSERT INTO tether_sessions (` + recordColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
	ON CONFLICT (id) DO NOTHING
	RETURNING subject, ` + live + ` AS live
), ` + insertEvents("c", "c.live", 17) + `
SELECT true FROM c`

// replaceSQL is createSQL for an ID that was taken: it deletes the row if it
// has expired, with its session.expired event (expiryRows: $18 and $19) before
// the new record's, and inserts the record. The DELETE takes the dead row's
// lock and the INSERT runs after it (it reads d), so a concurrent Create of
// the same ID, or the sweeper (SKIP LOCKED), finds the row gone: the expiry is
// reported once. The INSERT then conflicts only with a live row, or one a
// concurrent Create inserted after this statement's snapshot (that Create
// won), and returns no row.
var replaceSQL = `
WITH d AS (
	DELETE FROM tether_sessions WHERE id = $1 AND NOT (` + live + `)
	RETURNING id, subject, expires_at, idle_expires_at
), c AS (
	INSERT INTO tether_sessions (` + recordColumns + `)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16
	FROM (SELECT count(*) FROM d) AS after_delete
	ON CONFLICT (id) DO NOTHING
	RETURNING subject, ` + live + ` AS live
), ` + writeEvents(`
	SELECT subject, session_id, body FROM (
		SELECT 0 AS ord, * FROM (`+expiryRows("d", 18, 19)+`) expired
		UNION ALL
		SELECT 1, * FROM (`+eventRows("c", "c.live", 17)+`) created
	) ordered ORDER BY ord`) + `
SELECT true FROM c`

// Get returns the live record with id.
func (s *Store) Get(ctx context.Context, id string) (*tether.Record, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	r, err := scanRecord(s.pool.QueryRow(ctx, `SELECT `+recordColumns+` FROM tether_sessions WHERE id = $1 AND `+live, id))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, tether.ErrNotFound
	case err != nil:
		return nil, s.fail("get", err)
	}
	return r, nil
}

// Touch slides a live record's idle expiry. It sends no notification: other
// nodes' cached copies only carry an earlier idle expiry, which errs towards
// refusing, and announcing every slide would flush caches constantly.
func (s *Store) Touch(ctx context.Context, id string, lastSeen, idleExpires time.Time) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE tether_sessions SET last_seen_at = $2, idle_expires_at = $3
WHERE id = $1 AND `+live, id, lastSeen, idleExpires)
	switch {
	case err != nil:
		return s.fail("touch", err)
	case tag.RowsAffected() == 0:
		return tether.ErrNotFound
	}
	return nil
}

// Rotate swaps the secret hash if the live record still has old; the
// comparison and the write are one statement, so two rotations of one token
// cannot both win.
func (s *Store) Rotate(ctx context.Context, id string, old, new [32]byte, evs ...tether.Event) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	err := s.pool.QueryRow(ctx, `
WITH u AS (
	UPDATE tether_sessions SET secret_hash = $3
	WHERE id = $1 AND secret_hash = $2 AND `+live+`
	RETURNING subject
), `+insertEvents("u", "true", 5)+`
SELECT pg_notify('`+notifyChannel+`', $4) FROM u`,
		id, old[:], new[:], sessionPayload(id), eventsParam(evs)).Scan(nil)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tether.ErrNotFound
	case err != nil:
		return s.fail("rotate", err)
	}
	return nil
}

// Delete removes the live record; ErrNotFound if there is none. An expired
// row is left to the sweeper, which reports its expiry (session.expired).
func (s *Store) Delete(ctx context.Context, id string, evs ...tether.Event) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	err := s.pool.QueryRow(ctx, `
WITH d AS (
	DELETE FROM tether_sessions WHERE id = $1 AND `+live+`
	RETURNING subject
), `+insertEvents("d", "true", 3)+`
SELECT pg_notify('`+notifyChannel+`', $2) FROM d`,
		id, sessionPayload(id), eventsParam(evs)).Scan(nil)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tether.ErrNotFound
	case err != nil:
		return s.fail("delete", err)
	}
	return nil
}

// DeleteSubject removes every live record of subject but keepID in one
// DELETE, so readers see all of them or none, and counts them. Expired rows
// are left to the sweeper, which reports their expiry, not their revocation.
func (s *Store) DeleteSubject(ctx context.Context, subject, keepID string, evs ...tether.Event) (int, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var n int
	err := s.pool.QueryRow(ctx, `
WITH d AS (
	DELETE FROM tether_sessions WHERE subject = $1 AND id <> $2 AND `+live+`
	RETURNING id
), s AS (SELECT $1::text AS subject), `+insertEvents("s", "true", 4)+`
SELECT count(*), pg_notify('`+notifyChannel+`', $3) FROM d`,
		subject, keepID, subjectPayload(subject), eventsParam(evs)).Scan(&n, nil)
	if err != nil {
		return 0, s.fail("delete subject", err)
	}
	return n, nil
}

// List returns the subject's live records, oldest first.
func (s *Store) List(ctx context.Context, subject string) ([]*tether.Record, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	// CollectRows closes rows, which gives the connection back to the pool.
	rows, err := s.pool.Query(ctx, `SELECT `+recordColumns+` FROM tether_sessions
WHERE subject = $1 AND `+live+` ORDER BY created_at, id`, subject)
	var out []*tether.Record
	if err == nil {
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tether.Record, error) {
			return scanRecord(row)
		})
	}
	if err != nil {
		return nil, s.fail("list", err)
	}
	return out, nil
}

// Roles returns the subject's roles; none for an unknown subject.
func (s *Store) Roles(ctx context.Context, subject string) ([]string, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var roles []string
	err := s.pool.QueryRow(ctx, `SELECT roles FROM tether_subjects WHERE subject = $1`, subject).Scan(&roles)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, s.fail("roles", err)
	}
	if len(roles) == 0 {
		return nil, nil
	}
	return roles, nil
}

// SetRoles replaces the subject's roles and announces it in the same statement.
func (s *Store) SetRoles(ctx context.Context, subject string, roles []string, evs ...tether.Event) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if roles == nil {
		roles = []string{} // NOT NULL column; an empty set is no roles
	}
	err := s.pool.QueryRow(ctx, `
WITH u AS (
	INSERT INTO tether_subjects (subject, roles) VALUES ($1, $2)
	ON CONFLICT (subject) DO UPDATE SET roles = EXCLUDED.roles
), s AS (SELECT $1::text AS subject), `+insertEvents("s", "true", 4)+`
SELECT pg_notify('`+notifyChannel+`', $3)`,
		subject, roles, subjectPayload(subject), eventsParam(evs)).Scan(nil)
	if err != nil {
		return s.fail("set roles", err)
	}
	return nil
}

// Consume records key as used until the given time. The WHERE on the
// conflict branch lets an expired key be consumed again, while a live one
// returns no row: PostgreSQL serialises concurrent upserts of one key, so
// exactly one of them inserts (or revives) it.
func (s *Store) Consume(ctx context.Context, key string, until time.Time) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	err := s.pool.QueryRow(ctx, `
INSERT INTO tether_consumed (key, until) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET until = EXCLUDED.until
WHERE tether_consumed.until <= now()
RETURNING true`, consumedKey(key), until).Scan(new(bool))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return tether.ErrReplayed
	case err != nil:
		return s.fail("consume", err)
	}
	return nil
}

// Ping checks that a pooled connection works.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return s.fail("ping", err)
	}
	return nil
}

func scanRecord(row pgx.Row) (*tether.Record, error) {
	var (
		r        tether.Record
		hash     []byte
		idle     pgtype.Interval
		md       map[string]string
		authTime pgtype.Timestamptz
	)
	err := row.Scan(&r.ID, &hash, &r.Subject, &r.CreatedAt, &r.LastSeenAt, &r.ExpiresAt,
		&r.IdleExpiresAt, &idle, &md, &authTime, &r.AuthMethod, &r.JKT, &r.DBSC,
		&r.Origin.Issuer, &r.Origin.Subject, &r.Origin.SessionID)
	if err != nil {
		return nil, err
	}
	if len(hash) != len(r.SecretHash) {
		return nil, fmt.Errorf("session %s: secret hash of %d bytes", r.ID, len(hash))
	}
	copy(r.SecretHash[:], hash)
	r.IdleTimeout = time.Duration(idle.Microseconds)*time.Microsecond +
		time.Duration(idle.Days)*24*time.Hour + time.Duration(idle.Months)*30*24*time.Hour
	if len(md) > 0 {
		r.Metadata = md
	}
	if authTime.Valid {
		r.AuthTime = authTime.Time.UTC()
	}
	r.CreatedAt, r.LastSeenAt = r.CreatedAt.UTC(), r.LastSeenAt.UTC()
	r.ExpiresAt, r.IdleExpiresAt = r.ExpiresAt.UTC(), r.IdleExpiresAt.UTC()
	return &r, nil
}

// interval stores a duration as microseconds only (no days or months), so it
// reads back exactly, whatever the session's time zone.
func interval(d time.Duration) pgtype.Interval {
	return pgtype.Interval{Microseconds: d.Microseconds(), Valid: true}
}

// maxKey bounds a replay-guard key as stored; longer keys are stored as their
// SHA-256, which keeps them under the btree's row size limit.
const maxKey = 256

func consumedKey(key string) string {
	if len(key) <= maxKey {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// maxPayload stays under NOTIFY's 8000-byte limit (minus the prefix).
const maxPayload = 7900

func sessionPayload(id string) string {
	return capped(changefeed.Payload(tether.Change{Kind: tether.SessionChanged, SessionID: id}))
}

func subjectPayload(subject string) string {
	return capped(changefeed.Payload(tether.Change{Kind: tether.SubjectChanged, Subject: subject}))
}

// capped turns a payload too long for NOTIFY into "*" (flush everything):
// failing the write instead would let a long subject block its own revocation.
func capped(p string) string {
	if len(p) > maxPayload {
		return "*"
	}
	return p
}
