package tether

import (
	"slices"
	"sync"
	"time"
)

// cache holds recently validated records and subjects' roles. It is a promise
// with a bound: no entry is served older than maxAge, and every invalidation
// bumps seq so that a fill which read the store before the invalidation can
// never put a stale record back.
type cache struct {
	maxAge     time.Duration
	maxEntries int

	mu        sync.RWMutex
	seq       uint64
	enabled   bool // false until the store's change channel is up, and while it is lost
	sessions  map[string]*cachedRecord
	subjects  map[string]*cachedRoles
	bySubject map[string]map[string]struct{}
}

type cachedRecord struct {
	rec *Record // never mutated once cached; a touch replaces the entry
	at  time.Time
}

type cachedRoles struct {
	roles []string
	at    time.Time
}

func newCache(maxAge time.Duration, maxEntries int, enabled bool) *cache {
	return &cache{
		maxAge: maxAge, maxEntries: maxEntries, enabled: enabled,
		sessions:  make(map[string]*cachedRecord),
		subjects:  make(map[string]*cachedRoles),
		bySubject: make(map[string]map[string]struct{}),
	}
}

// get returns a fresh cached record and its subject's roles, and the sequence
// number a fill must present if they are not both there.
func (c *cache) get(id string, now time.Time) (rec *Record, roles []string, ok bool, seq uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.sessions[id]
	if e == nil || now.Sub(e.at) >= c.maxAge {
		return nil, nil, false, c.seq
	}
	r := c.subjects[e.rec.Subject]
	if r == nil || now.Sub(r.at) >= c.maxAge {
		return nil, nil, false, c.seq
	}
	return e.rec, r.roles, true, c.seq
}

// fill caches what was read from the store at readAt, unless something was
// invalidated since seq was taken.
func (c *cache) fill(seq uint64, rec *Record, roles []string, readAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enabled || c.seq != seq {
		return
	}
	if _, ok := c.sessions[rec.ID]; !ok && len(c.sessions) >= c.maxEntries {
		c.evictOneLocked()
	}
	c.sessions[rec.ID] = &cachedRecord{rec: rec, at: readAt}
	c.subjects[rec.Subject] = &cachedRoles{roles: slices.Clip(roles), at: readAt}
	ids := c.bySubject[rec.Subject]
	if ids == nil {
		ids = make(map[string]struct{}, 1)
		c.bySubject[rec.Subject] = ids
	}
	ids[rec.ID] = struct{}{}
}

// replace swaps in a touched record for old, keeping the entry's original read
// time so that a touch never extends how long the roles and record may be
// served. It does nothing unless the entry still holds old: a touch that was
// in flight while the session was rotated and re-read must not put the
// pre-rotation record (and its secret hash) back.
func (c *cache) replace(old, touched *Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.sessions[old.ID]; e != nil && e.rec == old {
		c.sessions[old.ID] = &cachedRecord{rec: touched, at: e.at}
	}
}

func (c *cache) evictOneLocked() {
	for id, e := range c.sessions { // map order is random enough for eviction
		c.dropSessionLocked(id, e.rec.Subject)
		return
	}
}

func (c *cache) dropSessionLocked(id, subject string) {
	delete(c.sessions, id)
	if ids := c.bySubject[subject]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(c.bySubject, subject)
			delete(c.subjects, subject)
		}
	}
}

func (c *cache) invalidateSession(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	if e := c.sessions[id]; e != nil {
		c.dropSessionLocked(id, e.rec.Subject)
	}
}

func (c *cache) invalidateSubject(subject string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	for id := range c.bySubject[subject] {
		delete(c.sessions, id)
	}
	delete(c.bySubject, subject)
	delete(c.subjects, subject)
}

// setEnabled flushes the cache and turns filling on or off.
func (c *cache) setEnabled(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.enabled = on
	clear(c.sessions)
	clear(c.subjects)
	clear(c.bySubject)
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
		c.setEnabled(false)
	case ChannelRestored:
		c.setEnabled(true)
	}
}
