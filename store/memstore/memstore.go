// Package memstore is an in-process, non-durable tether.Store for tests and
// throw-away demos. Everything is lost when the process ends.
package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tetherhq/tether"
)

// Store is an in-memory tether.Store. Its zero value is not usable; call New.
type Store struct {
	tether.Hub
	now func() time.Time

	mu        sync.RWMutex
	sessions  map[string]*tether.Record
	bySubject map[string]map[string]struct{}
	roles     map[string][]string
	consumed  map[string]time.Time
	events    []tether.Event // oldest first; the cursor is the index after the last one read, plus trimmed
	trimmed   int            // how many events TrimEvents dropped from the front
	state     map[string][]byte
	closed    bool

	stopSweep chan struct{} // closed by Close; nil without a background sweep
	swept     sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ tether.Store   = (*Store)(nil)
	_ tether.Watcher = (*Store)(nil)
)

// Options configures a Store. Zero fields take defaults.
type Options struct {
	Now func() time.Time // the clock deciding expiry; default time.Now
	// SweepInterval is how often a background sweep drops expired sessions
	// and records their expiry (session.expired); Close stops it. Zero: no
	// background sweep, so an expired session is dropped and reported only
	// when it is next accessed, or by Sweep.
	SweepInterval time.Duration
}

// New returns an empty Store.
func New() *Store { return NewWithOptions(Options{}) }

// NewWithOptions returns an empty Store with the given options.
func NewWithOptions(o Options) *Store {
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{
		now:       o.Now,
		sessions:  make(map[string]*tether.Record),
		bySubject: make(map[string]map[string]struct{}),
		roles:     make(map[string][]string),
		consumed:  make(map[string]time.Time),
		state:     make(map[string][]byte),
	}
	if o.SweepInterval > 0 {
		s.stopSweep = make(chan struct{})
		s.swept.Add(1)
		go s.sweepLoop(o.SweepInterval)
	}
	return s
}

func (s *Store) check() error {
	if s.closed {
		return fmt.Errorf("%w: memstore closed", tether.ErrUnavailable)
	}
	return nil
}

// liveLocked returns the live record with id, dropping it if it has expired;
// expired records are swept lazily, on access and by Sweep.
func (s *Store) liveLocked(id string) *tether.Record {
	r := s.sessions[id]
	if now := s.now(); r != nil && !r.Live(now) {
		s.expireLocked(r, now)
		return nil
	}
	return r
}

// expireLocked drops r, which has expired, and records that it did, under
// the same lock; whichever path finds r first does both, so once.
func (s *Store) expireLocked(r *tether.Record, now time.Time) {
	s.deleteLocked(r)
	s.events = append(s.events, tether.ExpiryEvents(r, now)...)
}

func (s *Store) deleteLocked(r *tether.Record) {
	delete(s.sessions, r.ID)
	if ids := s.bySubject[r.Subject]; ids != nil {
		delete(ids, r.ID)
		if len(ids) == 0 {
			delete(s.bySubject, r.Subject)
		}
	}
}

func (s *Store) Create(_ context.Context, r *tether.Record, evs ...tether.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	if s.liveLocked(r.ID) != nil {
		return tether.ErrExists
	}
	if !r.Live(s.now()) {
		return nil // born dead: nothing to keep
	}
	s.sessions[r.ID] = r.Clone()
	ids := s.bySubject[r.Subject]
	if ids == nil {
		ids = make(map[string]struct{})
		s.bySubject[r.Subject] = ids
	}
	ids[r.ID] = struct{}{}
	s.events = append(s.events, evs...)
	return nil
}

func (s *Store) Get(_ context.Context, id string) (*tether.Record, error) {
	s.mu.Lock() // liveLocked may delete
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return nil, err
	}
	r := s.liveLocked(id)
	if r == nil {
		return nil, tether.ErrNotFound
	}
	return r.Clone(), nil
}

func (s *Store) Touch(_ context.Context, id string, lastSeen, idleExpires time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	r := s.liveLocked(id)
	if r == nil {
		return tether.ErrNotFound
	}
	c := r.Clone()
	c.LastSeenAt, c.IdleExpiresAt = lastSeen, idleExpires
	s.sessions[id] = c
	return nil
}

func (s *Store) Rotate(_ context.Context, id string, old, new [32]byte, evs ...tether.Event) error {
	s.mu.Lock()
	err := s.check()
	if err == nil {
		r := s.liveLocked(id)
		if r == nil || r.SecretHash != old {
			err = tether.ErrNotFound
		} else {
			c := r.Clone()
			c.SecretHash = new
			s.sessions[id] = c
			s.events = append(s.events, evs...)
		}
	}
	s.mu.Unlock()
	if err == nil {
		s.Publish(tether.Change{Kind: tether.SessionChanged, SessionID: id})
	}
	return err
}

func (s *Store) Delete(_ context.Context, id string, evs ...tether.Event) error {
	s.mu.Lock()
	err := s.check()
	if err == nil {
		if r := s.liveLocked(id); r != nil {
			s.deleteLocked(r)
			for _, e := range evs {
				e.Subject = cmp.Or(e.Subject, r.Subject)
				s.events = append(s.events, e)
			}
		} else {
			err = tether.ErrNotFound
		}
	}
	s.mu.Unlock()
	if err == nil {
		s.Publish(tether.Change{Kind: tether.SessionChanged, SessionID: id})
	}
	return err
}

func (s *Store) DeleteSubject(_ context.Context, subject, keepID string, evs ...tether.Event) (int, error) {
	s.mu.Lock()
	if err := s.check(); err != nil {
		s.mu.Unlock()
		return 0, err
	}
	n := 0
	for id := range s.bySubject[subject] {
		if id == keepID {
			continue
		}
		if r := s.sessions[id]; r != nil {
			if now := s.now(); r.Live(now) {
				n++
				s.deleteLocked(r)
			} else {
				s.expireLocked(r, now)
			}
		}
	}
	s.events = append(s.events, evs...)
	s.mu.Unlock()
	s.Publish(tether.Change{Kind: tether.SubjectChanged, Subject: subject})
	return n, nil
}

func (s *Store) List(_ context.Context, subject string) ([]*tether.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return nil, err
	}
	var out []*tether.Record
	for id := range s.bySubject[subject] {
		if r := s.liveLocked(id); r != nil {
			out = append(out, r.Clone())
		}
	}
	slices.SortFunc(out, func(a, b *tether.Record) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (s *Store) Roles(_ context.Context, subject string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return nil, err
	}
	return slices.Clone(s.roles[subject]), nil
}

func (s *Store) SetRoles(_ context.Context, subject string, roles []string, evs ...tether.Event) error {
	s.mu.Lock()
	err := s.check()
	if err == nil {
		s.events = append(s.events, evs...)
		if len(roles) == 0 {
			delete(s.roles, subject)
		} else {
			s.roles[subject] = slices.Clone(roles)
		}
	}
	s.mu.Unlock()
	if err == nil {
		s.Publish(tether.Change{Kind: tether.SubjectChanged, Subject: subject})
	}
	return err
}

func (s *Store) Consume(_ context.Context, key string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	if exp, ok := s.consumed[key]; ok && s.now().Before(exp) {
		return tether.ErrReplayed
	}
	s.consumed[key] = until
	return nil
}

// Sweep drops expired sessions, recording their expiry, and replay-guard
// keys. Memstore also drops them lazily on access; Sweep bounds the memory of
// ones never touched again, and reports the expiry of those.
func (s *Store) Sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := s.now()
	for _, r := range s.sessions {
		if !r.Live(now) {
			s.expireLocked(r, now)
		}
	}
	for k, exp := range s.consumed {
		if !now.Before(exp) {
			delete(s.consumed, k)
		}
	}
}

func (s *Store) AppendEvents(_ context.Context, evs ...tether.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	s.events = append(s.events, evs...)
	return nil
}

// Events pages through the log; the cursor counts events since the store
// began, so trimming never shifts it.
func (s *Store) Events(_ context.Context, q tether.EventQuery) (tether.EventPage, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return tether.EventPage{}, err
	}
	pos := 0
	if q.After != "" {
		n, err := strconv.Atoi(q.After)
		if err != nil || n < 0 {
			return tether.EventPage{}, tether.BadInput("malformed cursor")
		}
		pos = n
	}
	p := tether.EventPage{Next: q.After}
	for i := max(pos-s.trimmed, 0); i < len(s.events) && len(p.Events) < q.Limit; i++ {
		p.Next = strconv.Itoa(s.trimmed + i + 1)
		if q.Match(&s.events[i]) {
			e := s.events[i]
			e.Cursor = p.Next
			p.Events = append(p.Events, e)
		}
	}
	return p, nil
}

func (s *Store) TrimEvents(_ context.Context, before time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	n := 0
	for n < len(s.events) && s.events[n].Time.Before(before) {
		n++
	}
	s.events = slices.Delete(s.events, 0, n)
	s.trimmed += n
	return nil
}

func (s *Store) GetState(_ context.Context, key string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(); err != nil {
		return nil, err
	}
	return slices.Clone(s.state[key]), nil
}

func (s *Store) PutState(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(); err != nil {
		return err
	}
	s.state[key] = slices.Clone(value)
	return nil
}

func (s *Store) Ping(context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.check()
}

// sweepLoop runs Sweep every interval until Close.
func (s *Store) sweepLoop(every time.Duration) {
	defer s.swept.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stopSweep:
			return
		case <-t.C:
			s.Sweep()
		}
	}
}

// Close stops the background sweep and makes every later call fail with
// tether.ErrUnavailable, which is what tests of fail-closed behaviour need.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeOnce.Do(func() {
		if s.stopSweep != nil {
			close(s.stopSweep)
		}
	})
	s.swept.Wait()
	return nil
}
