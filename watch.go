package tether

// Watcher returns what announces the changes of the Manager's store, the
// channel its own cache follows, so that caches outside the process (the
// server's GET /v1/changes) can follow it too. ok is false for a store that
// announces nothing, whose caches rely on the staleness bound alone.
func (m *Manager) Watcher() (w Watcher, ok bool) {
	w, ok = m.store.(Watcher)
	return w, ok
}
