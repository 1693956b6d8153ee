// Package boltstore is the durable, embedded tether.Store: one file, no server,
// the default for a single node (URL bolt:///path/tether.db).
//
// Why bbolt: it is a pure-Go B+tree with serializable transactions, a single
// writer and lock-free readers on an mmap, so validation (a read) never waits
// for writes or for the sweeper; and its whole state is one file that is easy
// to back up. Group commit (DB.Batch) amortises the fsync over concurrent
// writers, which is what lets it take thousands of new sessions a second with
// every one synced; BENCHMARKS.md compares it with Pebble on the same machine.
//
// Durability: a write that returned nil has been committed and fsynced
// (fdatasync on Linux) before the call returned, so it survives the process
// being killed and, given a disk that honours flushes, a power cut. The file
// is always left consistent: bbolt never overwrites live pages and switches
// between two checksummed meta pages.
//
// Single process: the file is locked (flock) while open. A second process,
// such as a CLI run next to the server, gets an error saying the database is
// locked instead of a corrupted file; it should use the server's admin API.
//
// Layout, one bucket each:
//
//	sessions   id → record (see encodeRecord)
//	subjects   uvarint(len(subject)) subject id → empty, so List and DeleteSubject
//	           walk one subject's sessions with a prefix cursor
//	roles      subject → roles
//	consumed   replay-guard key → until
//	expiry     when(8) kind(1) name → empty, ordered by time, so the sweeper
//	           reads only what has expired
//	events     sequence(8) → event JSON, in commit order (events.go)
//	state      key → value: the service's own small state (GetState)
//
// A session's expiry entry is at its effective expiry, the earlier of its
// absolute and idle expiries; Touch moves it (Touch is throttled, so this costs
// little) and the sweeper therefore finds idle-expired sessions as well. It
// writes each session's session.expired event in the transaction that
// removes it.
// Reads check liveness themselves and never wait for the sweep.
package boltstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tetherhq/tether"
)

var (
	_ tether.Store   = (*Store)(nil)
	_ tether.Watcher = (*Store)(nil)
)

// Options configures a Store. Zero fields take defaults.
type Options struct {
	// Now is the clock deciding expiry; default time.Now.
	Now func() time.Time
	// SweepInterval is how often expired sessions and replay-guard keys are
	// removed from the file, and the sessions' expiry recorded as events;
	// default 1 minute. Expired records are never returned in between.
	SweepInterval time.Duration
	// Timeout bounds the wait for the file lock; default 1 second, after which
	// Open fails with "database is locked by another process".
	Timeout time.Duration
}

var (
	bucketSessions = []byte("sessions")
	bucketSubjects = []byte("subjects")
	bucketRoles    = []byte("roles")
	bucketConsumed = []byte("consumed")
	bucketExpiry   = []byte("expiry")
	bucketEvents   = []byte("events")
	bucketState    = []byte("state")
)

// Kinds of expiry index entries.
const (
	kindSession  = 's'
	kindConsumed = 'c'
)

// sweepChunk bounds the deletions per sweep transaction, so the sweep holds
// the single write lock only briefly and Create and Touch are not held up.
const sweepChunk = 1000

// batchDelay is how long DB.Batch waits for company before committing. The
// bbolt default, 10ms, is tuned for disks slower than today's; with 2ms a lone
// Create still returns quickly and, under load, batches fill up while the
// previous one is being synced anyway.
const batchDelay = 2 * time.Millisecond

// Store is a tether.Store kept in a bbolt file. It is safe for concurrent use.
// Changes made through it are published to its watchers (tether.Hub), so
// Managers sharing one Store keep their caches honest.
type Store struct {
	tether.Hub
	db     *bolt.DB
	now    func() time.Time
	closed atomic.Bool

	stopSweep context.CancelFunc
	swept     chan struct{} // closed when the sweeper has returned
	closeOnce sync.Once
	closeErr  error
}

// Open opens the database at path, creating it (mode 0600, and its directory,
// mode 0700) if missing, and starts the background sweeper. Close releases it.
func Open(path string, opts Options) (*Store, error) {
	return open(path, opts, bolt.Options{})
}

// open is Open with bbolt options to start from, which tests use to inject
// faults.
func open(path string, o Options, bo bolt.Options) (*Store, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, unavailable("create data directory", err)
	}
	bo.Timeout = o.Timeout
	// The hashmap freelist stays fast when churn (sessions come and go all
	// day) fragments the file; the array default degrades.
	bo.FreelistType = bolt.FreelistMapType
	// Statistics take a mutex on every transaction begin: pure contention
	// for concurrent validations, and nobody reads them.
	bo.NoStatistics = true
	// Map 1 GiB of address space up front (not memory): growing the mapping
	// waits for every open read transaction and blocks new ones, so doing it
	// rarely keeps reads from stalling behind a growing file.
	bo.InitialMmapSize = 1 << 30
	db, err := bolt.Open(path, 0o600, &bo)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: boltstore: %s: database is locked by another process", tether.ErrUnavailable, path)
	}
	if err != nil {
		return nil, unavailable("open "+path, err)
	}
	db.MaxBatchDelay = batchDelay
	if err := createBuckets(db); err != nil {
		db.Close()
		return nil, unavailable("initialise "+path, err)
	}
	sweepCtx, stop := context.WithCancel(context.Background())
	s := &Store{db: db, now: o.Now, stopSweep: stop, swept: make(chan struct{})}
	go s.sweepLoop(sweepCtx, o.SweepInterval)
	return s, nil
}

// createBuckets makes the buckets of a new file. An existing file is only
// read, so opening it commits nothing.
func createBuckets(db *bolt.DB) error {
	names := [][]byte{bucketSessions, bucketSubjects, bucketRoles, bucketConsumed, bucketExpiry, bucketEvents, bucketState}
	missing := false
	err := db.View(func(tx *bolt.Tx) error {
		for _, name := range names {
			missing = missing || tx.Bucket(name) == nil
		}
		return nil
	})
	if err != nil || !missing {
		return err
	}
	return db.Update(func(tx *bolt.Tx) error {
		for _, name := range names {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
}

// unavailable wraps a bbolt or I/O error. Keys and values never appear in
// bbolt's messages, so no token or hash can leak through it.
func unavailable(op string, err error) error {
	if diskFull(err) {
		return fmt.Errorf("%w: %w: boltstore: %s: %w", tether.ErrUnavailable, tether.ErrStorageFull, op, err)
	}
	return fmt.Errorf("%w: boltstore: %s: %w", tether.ErrUnavailable, op, err)
}

// diskFull reports whether err is the file system running out of room. A
// failed commit is rolled back whole (bbolt writes the meta page last), so
// the file stays consistent and the next write after space returns succeeds.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		// bbolt formats a failed file resize with %s, losing the errno.
		strings.Contains(err.Error(), syscall.ENOSPC.Error())
}

// fail classifies an error from a transaction: bbolt's size limits mean the
// caller passed something out of range; everything else is a storage fault.
func fail(op string, err error) error {
	if errors.Is(err, bolterrors.ErrKeyRequired) || errors.Is(err, bolterrors.ErrKeyTooLarge) ||
		errors.Is(err, bolterrors.ErrValueTooLarge) {
		return fmt.Errorf("%w: boltstore: %s: %w", tether.ErrBadInput, op, err)
	}
	return unavailable(op, err)
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("%w: boltstore: closed", tether.ErrUnavailable)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: boltstore: %w", tether.ErrUnavailable, err)
	}
	return nil
}

// buckets are one transaction's view of the store. Buckets are looked up
// when used, so that a Get opens only one (write transactions cache them).
type buckets struct{ tx *bolt.Tx }

func bucketsOf(tx *bolt.Tx) buckets { return buckets{tx} }

func (b buckets) sessions() *bolt.Bucket { return b.tx.Bucket(bucketSessions) }
func (b buckets) subjects() *bolt.Bucket { return b.tx.Bucket(bucketSubjects) }
func (b buckets) roles() *bolt.Bucket    { return b.tx.Bucket(bucketRoles) }
func (b buckets) consumed() *bolt.Bucket { return b.tx.Bucket(bucketConsumed) }
func (b buckets) expiry() *bolt.Bucket   { return b.tx.Bucket(bucketExpiry) }
func (b buckets) events() *bolt.Bucket   { return b.tx.Bucket(bucketEvents) }
func (b buckets) state() *bolt.Bucket    { return b.tx.Bucket(bucketState) }

func subjectPrefix(subject string) []byte {
	return appendString(make([]byte, 0, binary.MaxVarintLen64+len(subject)+32), subject)
}

func subjectKey(subject, id string) []byte { return append(subjectPrefix(subject), id...) }

func expiryKey(when time.Time, kind byte, name string) []byte {
	k := appendTime(make([]byte, 0, 9+len(name)), when)
	return append(append(k, kind), name...)
}

// effectiveExpiry is when r stops being live.
func effectiveExpiry(r *tether.Record) time.Time {
	if r.IdleExpiresAt.Before(r.ExpiresAt) {
		return r.IdleExpiresAt
	}
	return r.ExpiresAt
}

// session returns the stored record with id, live or not, or nil.
func (b buckets) session(id string) (*tether.Record, error) {
	v := b.sessions().Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	return decodeRecord(id, v)
}

// putSession writes r, whose encoding is val, and its index entries. Any
// previous version of r must have been removed with deleteSession, or have
// the same subject and effective expiry.
func (b buckets) putSession(r *tether.Record, val []byte) error {
	if err := b.sessions().Put([]byte(r.ID), val); err != nil {
		return err
	}
	if err := b.subjects().Put(subjectKey(r.Subject, r.ID), nil); err != nil {
		return err
	}
	return b.expiry().Put(expiryKey(effectiveExpiry(r), kindSession, r.ID), nil)
}

func (b buckets) deleteSession(r *tether.Record) error {
	if err := b.sessions().Delete([]byte(r.ID)); err != nil {
		return err
	}
	if err := b.subjects().Delete(subjectKey(r.Subject, r.ID)); err != nil {
		return err
	}
	return b.expiry().Delete(expiryKey(effectiveExpiry(r), kindSession, r.ID))
}

// expireSession removes r, which has expired, and records that it did in the
// same transaction: whichever write finds r first does both, so once.
func (b buckets) expireSession(r *tether.Record, now time.Time) error {
	if err := b.deleteSession(r); err != nil {
		return err
	}
	return b.putEvents(tether.ExpiryEvents(r, now), "")
}

// update runs fn in a write transaction shared with concurrent callers
// (group commit: one fsync for the lot). bbolt may run fn more than once, and
// re-runs it alone if it fails, so fn must start from scratch each time and
// report outcomes such as ErrExists through variables it sets, not as its
// error: an error would roll back everyone else's writes in the batch.
func (s *Store) update(op string, fn func(buckets) error) error {
	if err := s.db.Batch(func(tx *bolt.Tx) error { return fn(bucketsOf(tx)) }); err != nil {
		return fail(op, err)
	}
	return nil
}

func (s *Store) view(op string, fn func(buckets) error) error {
	if err := s.db.View(func(tx *bolt.Tx) error { return fn(bucketsOf(tx)) }); err != nil {
		return fail(op, err)
	}
	return nil
}

// Create implements tether.Store.
func (s *Store) Create(ctx context.Context, r *tether.Record, evs ...tether.Event) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	val := encodeRecord(r)
	var exists bool
	err := s.update("create", func(b buckets) error {
		exists = false
		now := s.now()
		old, err := b.session(r.ID)
		if err != nil {
			return err
		}
		if old != nil {
			if old.Live(now) {
				exists = true
				return nil
			}
			if err := b.expireSession(old, now); err != nil {
				return err
			}
		}
		if !r.Live(now) {
			return nil // born dead: nothing to keep
		}
		if err := b.putSession(r, val); err != nil {
			return err
		}
		return b.putEvents(evs, "")
	})
	if err == nil && exists {
		err = tether.ErrExists
	}
	return err
}

// Get implements tether.Store.
func (s *Store) Get(ctx context.Context, id string) (*tether.Record, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var r *tether.Record
	err := s.view("get", func(b buckets) (err error) {
		r, err = b.session(id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if r == nil || !r.Live(s.now()) {
		return nil, tether.ErrNotFound
	}
	return r, nil
}

// modify applies change to the live record with id and reports whether there
// was one. change must not alter the subject.
func (s *Store) modify(ctx context.Context, op, id string, change func(*tether.Record) bool, evs ...tether.Event) (bool, error) {
	if err := s.check(ctx); err != nil {
		return false, err
	}
	var found bool
	err := s.update(op, func(b buckets) error {
		found = false
		r, err := b.session(id)
		if err != nil || r == nil || !r.Live(s.now()) {
			return err
		}
		oldExpiry := effectiveExpiry(r)
		if !change(r) {
			return nil
		}
		found = true
		if e := effectiveExpiry(r); !e.Equal(oldExpiry) {
			if err := b.expiry().Delete(expiryKey(oldExpiry, kindSession, id)); err != nil {
				return err
			}
		}
		if err := b.putSession(r, encodeRecord(r)); err != nil {
			return err
		}
		return b.putEvents(evs, r.Subject)
	})
	return found, err
}

// Touch implements tether.Store.
func (s *Store) Touch(ctx context.Context, id string, lastSeen, idleExpires time.Time) error {
	found, err := s.modify(ctx, "touch", id, func(r *tether.Record) bool {
		r.LastSeenAt, r.IdleExpiresAt = lastSeen, idleExpires
		return true
	})
	if err == nil && !found {
		err = tether.ErrNotFound
	}
	return err
}

// Rotate implements tether.Store.
func (s *Store) Rotate(ctx context.Context, id string, old, new [32]byte, evs ...tether.Event) error {
	found, err := s.modify(ctx, "rotate", id, func(r *tether.Record) bool {
		if subtle.ConstantTimeCompare(r.SecretHash[:], old[:]) != 1 {
			return false
		}
		r.SecretHash = new
		return true
	}, evs...)
	if err != nil {
		return err
	}
	if !found {
		return tether.ErrNotFound
	}
	s.Publish(tether.Change{Kind: tether.SessionChanged, SessionID: id})
	return nil
}

// Delete implements tether.Store.
func (s *Store) Delete(ctx context.Context, id string, evs ...tether.Event) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	var found bool
	err := s.update("delete", func(b buckets) error {
		found = false
		r, err := b.session(id)
		if err != nil || r == nil || !r.Live(s.now()) {
			return err // an expired one is left to the sweeper
		}
		found = true
		if err := b.deleteSession(r); err != nil {
			return err
		}
		return b.putEvents(evs, r.Subject)
	})
	if err != nil {
		return err
	}
	if !found {
		return tether.ErrNotFound
	}
	s.Publish(tether.Change{Kind: tether.SessionChanged, SessionID: id})
	return nil
}

// subjectIDs returns the IDs in the subject index for subject.
func (b buckets) subjectIDs(subject string) []string {
	prefix := subjectPrefix(subject)
	var ids []string
	c := b.subjects().Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ids = append(ids, string(k[len(prefix):]))
	}
	return ids
}

// DeleteSubject implements tether.Store. It is one transaction, so no reader
// ever sees some of the subject's sessions gone and others not.
func (s *Store) DeleteSubject(ctx context.Context, subject, keepID string, evs ...tether.Event) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	var n int
	err := s.update("delete subject", func(b buckets) error {
		n = 0
		now := s.now()
		// Collect first: deleting under a bbolt cursor makes it skip keys.
		for _, id := range b.subjectIDs(subject) {
			if id == keepID {
				continue
			}
			r, err := b.session(id)
			if err != nil {
				return err
			}
			if r == nil { // an index entry without a record: drop it
				if err := b.subjects().Delete(subjectKey(subject, id)); err != nil {
					return err
				}
				continue
			}
			if !r.Live(now) {
				// It ended by itself, before this revoke: say so.
				if err := b.expireSession(r, now); err != nil {
					return err
				}
				continue
			}
			n++
			if err := b.deleteSession(r); err != nil {
				return err
			}
		}
		return b.putEvents(evs, subject)
	})
	if err != nil {
		return 0, err
	}
	s.Publish(tether.Change{Kind: tether.SubjectChanged, Subject: subject})
	return n, nil
}

// List implements tether.Store.
func (s *Store) List(ctx context.Context, subject string) ([]*tether.Record, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var out []*tether.Record
	err := s.view("list", func(b buckets) error {
		now := s.now()
		for _, id := range b.subjectIDs(subject) {
			r, err := b.session(id)
			if err != nil {
				return err
			}
			if r != nil && r.Live(now) {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *tether.Record) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Roles implements tether.Store.
func (s *Store) Roles(ctx context.Context, subject string) ([]string, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var roles []string
	err := s.view("roles", func(b buckets) (err error) {
		if v := b.roles().Get([]byte(subject)); v != nil {
			roles, err = decodeRoles(v)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return roles, nil
}

// SetRoles implements tether.Store.
func (s *Store) SetRoles(ctx context.Context, subject string, roles []string, evs ...tether.Event) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	val := encodeRoles(roles)
	err := s.update("set roles", func(b buckets) error {
		var err error
		if len(roles) == 0 {
			err = b.roles().Delete([]byte(subject))
		} else {
			err = b.roles().Put([]byte(subject), val)
		}
		if err != nil {
			return err
		}
		return b.putEvents(evs, subject)
	})
	if err != nil {
		return err
	}
	s.Publish(tether.Change{Kind: tether.SubjectChanged, Subject: subject})
	return nil
}

// Consume implements tether.Store. bbolt has one writer at a time and this
// process holds the file lock, so the check and the write are atomic.
func (s *Store) Consume(ctx context.Context, key string, until time.Time) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	val := appendTime(nil, until)
	var replayed bool
	err := s.update("consume", func(b buckets) error {
		replayed = false
		if v := b.consumed().Get([]byte(key)); v != nil {
			if len(v) != 8 {
				return errCorrupt
			}
			prev := decodeTime(v)
			if s.now().Before(prev) {
				replayed = true
				return nil
			}
			if err := b.expiry().Delete(expiryKey(prev, kindConsumed, key)); err != nil {
				return err
			}
		}
		if err := b.consumed().Put([]byte(key), val); err != nil {
			return err
		}
		return b.expiry().Put(expiryKey(until, kindConsumed, key), nil)
	})
	if err == nil && replayed {
		err = tether.ErrReplayed
	}
	return err
}

// Ping implements tether.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return s.view("ping", func(buckets) error { return nil }) // fails once the file is closed
}

// Sweep removes expired sessions, recording their expiry, and replay-guard
// keys, at most sweepChunk index entries per transaction, and returns how
// many sessions and keys it removed. The background sweeper calls it every SweepInterval; it stops
// early when ctx ends.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		if err := s.check(ctx); err != nil {
			return total, err
		}
		var visited, removed int
		err := s.db.Update(func(tx *bolt.Tx) (err error) {
			visited, removed, err = sweepOnce(bucketsOf(tx), s.now())
			return err
		})
		if err != nil {
			return total, fail("sweep", err)
		}
		total += removed
		if visited < sweepChunk {
			return total, nil
		}
	}
}

// sweepOnce deletes up to sweepChunk expiry entries that are due, with the
// sessions and keys they point at, and writes a session.expired event for
// each session.
func sweepOnce(b buckets, now time.Time) (visited, removed int, err error) {
	var due [][]byte
	c := b.expiry().Cursor()
	for k, _ := c.First(); k != nil && len(due) < sweepChunk; k, _ = c.Next() {
		if len(k) >= 9 && now.Before(decodeTime(k[:8])) {
			break
		}
		due = append(due, slices.Clone(k)) // k dies when the tree changes
	}
	for _, k := range due {
		var kind byte
		var name string
		if len(k) >= 9 { // shorter ones are not ours: just drop them
			kind, name = k[8], string(k[9:])
		}
		switch kind {
		case kindSession:
			// The entry may be stale if the record's expiry moved; the record
			// itself decides.
			r, err := b.session(name)
			if err != nil {
				return 0, 0, err
			}
			if r != nil && !r.Live(now) {
				if err := b.expireSession(r, now); err != nil {
					return 0, 0, err
				}
				removed++
			}
		case kindConsumed:
			if v := b.consumed().Get([]byte(name)); len(v) == 8 && !now.Before(decodeTime(v)) {
				if err := b.consumed().Delete([]byte(name)); err != nil {
					return 0, 0, err
				}
				removed++
			}
		}
		if err := b.expiry().Delete(k); err != nil {
			return 0, 0, err
		}
	}
	return len(due), removed, nil
}

// sweepLoop is the background sweeper; Close stops it. Its errors are not
// reported: the next round retries, and a failing disk shows up in the write
// paths, which return it.
func (s *Store) sweepLoop(ctx context.Context, every time.Duration) {
	defer close(s.swept)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = s.Sweep(ctx)
		}
	}
}

// Close stops the sweeper and closes the file, waiting for transactions in
// flight. Every later call fails with tether.ErrUnavailable.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.stopSweep()
		<-s.swept
		if err := s.db.Close(); err != nil {
			s.closeErr = unavailable("close", err)
		}
	})
	return s.closeErr
}
