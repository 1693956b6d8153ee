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
//
// A hit takes no lock that other validations share: sessions are spread over
// shards by ID, each with its own read lock, and a subject's roles are read
// through an atomic pointer. Fills and invalidations, which are rare, take
// the shard's lock and then subjMu, always in that order; a fill checks seq
// while holding both, and an invalidation bumps seq before taking either, so
// a fill either sees the bump or lands before the invalidation clears it.
type cache struct {
	maxAge    time.Duration
	storeDown atomic.Bool // a store call failed: serve nothing until one succeeds
	channelUp atomic.Bool // false until the store's change channel is up, and while it is lost
	seq       atomic.Uint64

	shards     []cacheShard // a power of two of them
	maxEntries int
	size       atomic.Int64 // cached sessions, never above maxEntries

	subjMu   sync.Mutex
	subjects map[string]*subjectEntry
}

// cacheShard is padded to its own cache lines so that readers of neighbouring
// shards do not bounce one line between cores.
type cacheShard struct {
	mu       sync.RWMutex
	sessions map[string]*entry
	_        [128 - 32]byte
}

// entry is a session as the cache keeps it: a Record in compact form (times as
// Unix nanoseconds, metadata as key-value pairs), a few hundred bytes apiece.
// It is never mutated once cached; a touch replaces it.
type entry struct {
	id, subject, authMethod string
	jkt, dbsc               string
	hash                    [32]byte
	created, lastSeen       int64
	expires, idleExpires    int64
	authTime                int64 // 0: not given
	idleTimeout             time.Duration
	metadata                []string // key, value, key, value…
	origin                  *Origin  // nil for the sessions not made from a handshake
	readAt                  time.Time
	subj                    *subjectEntry // a hit needs this subject entry to be alive
}

// subjectEntry holds a subject's roles and the IDs of its cached sessions, so
// that invalidating a subject drops all of them.
type subjectEntry struct {
	roles atomic.Pointer[roleSet] // nil once the subject is invalidated: its sessions are misses
	ids   []string                // guarded by cache.subjMu
}

// roleSet is a subject's roles as read from the store at readAt. It is never
// mutated; fresher roles replace it whole.
type roleSet struct {
	roles  []string
	readAt time.Time
}

// maxCacheShards spreads readers thinly enough that cores rarely meet on one
// shard's lock word even on large machines.
const maxCacheShards = 64

func newCache(maxAge time.Duration, maxEntries int, channelUp bool) *cache {
	n := 1 // every shard should hold enough sessions to evict one when full
	for n < maxCacheShards && n*2*16 <= maxEntries {
		n *= 2
	}
	c := &cache{
		maxAge: maxAge, shards: make([]cacheShard, n), maxEntries: maxEntries,
		subjects: make(map[string]*subjectEntry),
	}
	for i := range c.shards {
		c.shards[i].sessions = make(map[string]*entry)
	}
	c.channelUp.Store(channelUp)
	return c
}

// shard picks a session's shard from the first characters of its ID, which
// are random: the server generated them.
func (c *cache) shard(id string) *cacheShard {
	var h uint
	for i := range min(len(id), 4) {
		h = h<<5 | uint(alphabetIndex[id[i]])
	}
	return &c.shards[h&uint(len(c.shards)-1)]
}

func newEntry(r *Record, readAt time.Time) *entry {
	e := &entry{
		id: r.ID, subject: r.Subject, authMethod: r.AuthMethod, jkt: r.JKT, dbsc: r.DBSC, hash: r.SecretHash,
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

// sessionRoles is a Session and room for its roles in one allocation: the
// cached path allocates nothing else for a session without metadata. Two
// roles fill the 256-byte size class; a subject with more costs one more
// allocation.
type sessionRoles struct {
	s     Session
	roles [2]string
}

func (e *entry) session(roles []string) *Session {
	var s *Session
	if len(roles) <= len(sessionRoles{}.roles) {
		sr := new(sessionRoles)
		s = &sr.s
		s.Roles = sr.roles[:len(roles):len(roles)] // never nil, even when empty
		copy(s.Roles, roles)
	} else {
		s = &Session{Roles: slices.Clone(roles)}
	}
	s.ID, s.Subject, s.AuthMethod, s.JKT, s.DBSC = e.id, e.subject, e.authMethod, e.jkt, e.dbsc
	s.CreatedAt, s.LastSeenAt = fromNano(e.created), fromNano(e.lastSeen)
	s.ExpiresAt, s.IdleExpiresAt = fromNano(e.expires), fromNano(e.idleExpires)
	if len(e.metadata) > 0 { // nil otherwise: a map costs an allocation on every validation
		s.Metadata = make(map[string]string, len(e.metadata)/2)
		for i := 0; i+1 < len(e.metadata); i += 2 {
			s.Metadata[e.metadata[i]] = e.metadata[i+1]
		}
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
	seq = c.seq.Load() // before the lookup: an invalidation after it makes the fill moot
	sh := c.shard(id)
	sh.mu.RLock()
	e = sh.sessions[id]
	sh.mu.RUnlock()
	if e == nil || c.storeDown.Load() || now.Sub(e.readAt) >= c.maxAge {
		return nil, nil, false, seq
	}
	rs := e.subj.roles.Load()
	if rs == nil || now.Sub(rs.readAt) >= c.maxAge {
		return nil, nil, false, seq
	}
	return e, rs.roles, true, seq
}

// fill caches a session and roles read from the store at e.readAt, unless
// something was invalidated since seq was taken.
func (c *cache) fill(seq uint64, e *entry, roles []string) {
	sh := c.shard(e.id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c.subjMu.Lock()
	defer c.subjMu.Unlock()
	if !c.channelUp.Load() || c.storeDown.Load() || c.seq.Load() != seq {
		return
	}
	// The new entry takes the slot of the one it replaces, a free slot, or
	// the slot of a victim from this shard (map order is random enough for
	// eviction); failing all three, it is not cached.
	if old := sh.sessions[e.id]; old != nil {
		c.unlinkLocked(sh, old)
	} else if !c.reserve() {
		var victim *entry
		for _, victim = range sh.sessions {
			break
		}
		if victim == nil {
			return
		}
		c.unlinkLocked(sh, victim)
	}
	s := c.subjects[e.subject]
	if s == nil {
		s = &subjectEntry{}
		c.subjects[e.subject] = s
	}
	// Fresher roles serve every session of the subject.
	s.roles.Store(&roleSet{roles: slices.Clip(roles), readAt: e.readAt})
	s.ids = append(s.ids, e.id)
	e.subj = s
	sh.sessions[e.id] = e
}

// replace swaps in a touched copy of old, which keeps old's read time so that
// a touch never extends how long an entry may be served. It does nothing
// unless the cache still holds old: a touch in flight while the session was
// rotated and re-read must not put the pre-rotation secret hash back.
func (c *cache) replace(old, touched *entry) {
	sh := c.shard(old.id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.sessions[old.id] == old {
		sh.sessions[old.id] = touched
	}
}

// reserve takes a free slot, if there is one.
func (c *cache) reserve() bool {
	for {
		n := c.size.Load()
		if n >= int64(c.maxEntries) {
			return false
		}
		if c.size.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// dropLocked removes one session, freeing its slot. The caller holds sh.mu
// and c.subjMu.
func (c *cache) dropLocked(sh *cacheShard, e *entry) {
	c.unlinkLocked(sh, e)
	c.size.Add(-1)
}

// unlinkLocked removes one session and, with its last session, its subject;
// its slot passes to whoever called it.
func (c *cache) unlinkLocked(sh *cacheShard, e *entry) {
	delete(sh.sessions, e.id)
	s := e.subj
	if s == nil || c.subjects[e.subject] != s {
		return
	}
	if i := slices.Index(s.ids, e.id); i >= 0 {
		s.ids = slices.Delete(s.ids, i, i+1)
	}
	if len(s.ids) == 0 {
		s.roles.Store(nil)
		delete(c.subjects, e.subject)
	}
}

func (c *cache) invalidateSession(id string) {
	c.seq.Add(1)
	sh := c.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.sessions[id]; e != nil {
		c.subjMu.Lock()
		c.dropLocked(sh, e)
		c.subjMu.Unlock()
	}
}

func (c *cache) invalidateSubject(subject string) {
	c.seq.Add(1)
	c.subjMu.Lock()
	s := c.subjects[subject]
	var ids []string
	if s != nil {
		s.roles.Store(nil) // from here on, every session of the subject is a miss
		delete(c.subjects, subject)
		ids, s.ids = s.ids, nil
	}
	c.subjMu.Unlock()
	// Free the memory; the entries stopped being served above.
	for _, id := range ids {
		sh := c.shard(id)
		sh.mu.Lock()
		if e := sh.sessions[id]; e != nil && e.subj == s {
			delete(sh.sessions, id)
			c.size.Add(-1)
		}
		sh.mu.Unlock()
	}
}

// flush drops everything and makes in-flight fills moot.
func (c *cache) flush() {
	c.seq.Add(1)
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		c.size.Add(-int64(len(sh.sessions)))
		clear(sh.sessions)
		sh.mu.Unlock()
	}
	c.subjMu.Lock()
	defer c.subjMu.Unlock()
	for _, s := range c.subjects {
		s.roles.Store(nil)
	}
	clear(c.subjects)
}

// setChannel records whether the store's change channel is up, flushing the
// cache either way: changes may have been missed while it was down.
func (c *cache) setChannel(up bool) {
	c.channelUp.Store(up)
	c.flush()
}

// storeFailed stops the cache serving anything until storeOK: a node that
// cannot reach its store must not go on accepting what it may have revoked.
func (c *cache) storeFailed() {
	if c.storeDown.Swap(true) {
		return
	}
	c.flush()
}

func (c *cache) storeOK() {
	if c.storeDown.Load() {
		c.storeDown.Store(false)
	}
}

func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.sessions)
		sh.mu.RUnlock()
	}
	return n
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
