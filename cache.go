package tether

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// cache holds recently validated sessions and their subjects' roles. It is a
// promise with a bound: nothing is served older than maxAge; every
// invalidation bumps seq, so a fill that read the store before the
// invalidation can never put a stale session back; and nothing is served while
// the store's change channel is down or the store has just failed.
type cache struct {
	maxAge     time.Duration
	maxEntries int
	storeDown  atomic.Bool // a store call failed: serve nothing until one succeeds

	mu        sync.RWMutex
	seq       uint64
	channelUp bool // false until the store's change channel is up, and while it is lost
	sessions  map[string]*entry
	subjects  map[string]*subjectEntry
}

// entry is a session as the cache keeps it: a Record in compact form (times as
// Unix nanoseconds, metadata as key-value pairs), a few hundred bytes apiece.
// It is never mutated once cached; a touch replaces it.
type entry struct {
	id, subject, authMethod string
	hash                    [32]byte
	created, lastSeen       int64
	expires, idleExpires    int64
	authTime                int64 // 0: not given
	idleTimeout             time.Duration
	metadata                []string // key, value, key, value…
	origin                  *Origin  // nil for the sessions not made from a handshake
	readAt                  time.Time
	subj                    *subjectEntry // a hit needs this to be the subject's current entry
}

// subjectEntry holds a subject's roles and the IDs of its cached sessions, so
// that invalidating a subject drops all of them.
type subjectEntry struct {
	roles  []string
	readAt time.Time
	ids    []string
}

func newCache(maxAge time.Duration, maxEntries int, channelUp bool) *cache {
	return &cache{
		maxAge: maxAge, maxEntries: maxEntries, channelUp: channelUp,
		sessions: make(map[string]*entry),
		subjects: make(map[string]*subjectEntry),
	}
}

func newEntry(r *Record, readAt time.Time) *entry {
	e := &entry{
		id: r.ID, subject: r.Subject, authMethod: r.AuthMethod, hash: r.SecretHash,
		created: r.CreatedAt.UnixNano(), lastSeen: r.LastSeenAt.UnixNano(),
		expires: r.ExpiresAt.UnixNano(), idleExpires: r.IdleExpiresAt.UnixNano(),
		idleTimeout: r.IdleTimeout, readAt: readAt,
	}
	if !r.AuthTime.IsZero() {
		e.authTime = r.AuthTime.UnixNano()
	}
	if !r.Origin.IsZero() {
		o := r.Origin
		e.origin = &o
	}
	if len(r.Metadata) > 0 {
		e.metadata = make([]string, 0, 2*len(r.Metadata))
		for _, k := range slices.Sorted(maps.Keys(r.Metadata)) {
			e.metadata = append(e.metadata, k, r.Metadata[k])
		}
	}
	return e
}

func (e *entry) live(now time.Time) bool {
	n := now.UnixNano()
	return n < e.expires && n < e.idleExpires
}

func fromNano(n int64) time.Time { return time.Unix(0, n).UTC() }

func (e *entry) session(roles []string) *Session {
	md := make(map[string]string, len(e.metadata)/2)
	for i := 0; i+1 < len(e.metadata); i += 2 {
		md[e.metadata[i]] = e.metadata[i+1]
	}
	if roles == nil {
		roles = []string{}
	}
	s := &Session{
		ID: e.id, Subject: e.subject, Roles: slices.Clone(roles),
		CreatedAt: fromNano(e.created), LastSeenAt: fromNano(e.lastSeen),
		ExpiresAt: fromNano(e.expires), IdleExpiresAt: fromNano(e.idleExpires),
		Metadata: md, AuthMethod: e.authMethod,
	}
	if e.authTime != 0 {
		s.AuthTime = fromNano(e.authTime)
	}
	if e.origin != nil {
		o := *e.origin
		s.Origin = &o
	}
	return s
}

// get returns a fresh cached session and its subject's roles, or the sequence
// number that a fill of this session must present.
func (c *cache) get(id string, now time.Time) (e *entry, roles []string, ok bool, seq uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e = c.sessions[id]
	if e == nil || c.storeDown.Load() || now.Sub(e.readAt) >= c.maxAge {
		return nil, nil, false, c.seq
	}
	s := c.subjects[e.subject]
	if s == nil || s != e.subj || now.Sub(s.readAt) >= c.maxAge {
		return nil, nil, false, c.seq
	}
	return e, s.roles, true, c.seq
}

// fill caches a session and roles read from the store at e.readAt, unless
// something was invalidated since seq was taken.
func (c *cache) fill(seq uint64, e *entry, roles []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.channelUp || c.storeDown.Load() || c.seq != seq {
		return
	}
	if old := c.sessions[e.id]; old != nil {
		c.dropLocked(old)
	} else if len(c.sessions) >= c.maxEntries {
		for _, victim := range c.sessions { // map order is random enough for eviction
			c.dropLocked(victim)
			break
		}
	}
	s := c.subjects[e.subject]
	if s == nil {
		s = &subjectEntry{}
		c.subjects[e.subject] = s
	}
	s.roles, s.readAt = slices.Clip(roles), e.readAt // fresher roles serve every session of the subject
	s.ids = append(s.ids, e.id)
	e.subj = s
	c.sessions[e.id] = e
}

// replace swaps in a touched copy of old, which keeps old's read time so that
// a touch never extends how long an entry may be served. It does nothing
// unless the cache still holds old: a touch in flight while the session was
// rotated and re-read must not put the pre-rotation secret hash back.
func (c *cache) replace(old, touched *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions[old.id] == old {
		c.sessions[old.id] = touched
	}
}

// dropLocked removes one session and, with its last session, its subject.
func (c *cache) dropLocked(e *entry) {
	delete(c.sessions, e.id)
	s := e.subj
	if s == nil || c.subjects[e.subject] != s {
		return
	}
	if i := slices.Index(s.ids, e.id); i >= 0 {
		s.ids = slices.Delete(s.ids, i, i+1)
	}
	if len(s.ids) == 0 {
		delete(c.subjects, e.subject)
	}
}

func (c *cache) invalidateSession(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	if e := c.sessions[id]; e != nil {
		c.dropLocked(e)
	}
}

func (c *cache) invalidateSubject(subject string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	if s := c.subjects[subject]; s != nil {
		for _, id := range s.ids {
			delete(c.sessions, id)
		}
		delete(c.subjects, subject)
	}
}

// flushLocked drops everything and makes in-flight fills moot.
func (c *cache) flushLocked() {
	c.seq++
	clear(c.sessions)
	clear(c.subjects)
}

// setChannel records whether the store's change channel is up, flushing the
// cache either way: changes may have been missed while it was down.
func (c *cache) setChannel(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.channelUp = up
	c.flushLocked()
}

// storeFailed stops the cache serving anything until storeOK: a node that
// cannot reach its store must not go on accepting what it may have revoked.
func (c *cache) storeFailed() {
	if c.storeDown.Swap(true) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
}

func (c *cache) storeOK() {
	if c.storeDown.Load() {
		c.storeDown.Store(false)
	}
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.sessions)
}

func (c *cache) apply(ch Change) {
	switch ch.Kind {
	case SessionChanged:
		c.invalidateSession(ch.SessionID)
	case SubjectChanged:
		c.invalidateSubject(ch.Subject)
	case ChannelLost:
		c.setChannel(false)
	case ChannelRestored:
		c.setChannel(true)
	}
}
