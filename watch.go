package tether

// Watcher returns what announces the changes of the Manager's store, the
// channel its own cache follows, so that caches outside the process (the
// server's GET /v1/changes) can follow it too. ok is false for a store that
// announces nothing, whose caches rely on the staleness bound alone.
func (m *Manager) Watcher() (w Watcher, ok bool) {
	w, ok = m.store.(Watcher)
	return w, ok
}

// Invalidate drops from the Manager's cache what a session or subject change
// makes stale, as the store's change channel does; other kinds are ignored,
// since only the Manager's own channel says whether that channel is up. A
// server that forwards the channel's changes to caches elsewhere calls it
// before forwarding, so that a cache told of a change can never read the
// stale answer back from this Manager's cache.
func (m *Manager) Invalidate(c Change) {
	switch c.Kind {
	case SessionChanged:
		m.invalidateSession(c.SessionID)
	case SubjectChanged:
		m.invalidateSubject(c.Subject)
	}
}
