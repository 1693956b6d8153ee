package tether

import (
	"context"
	"sync"
)

// Hub fans changes out to watchers in one process. Stores that live in one
// process (in memory, or an embedded file) embed it to implement Watcher, so that several
// Managers sharing one store instance keep their caches honest.
type Hub struct {
	mu       sync.Mutex
	watchers map[*func(Change)]struct{}
}

// Publish delivers c to every current watcher, synchronously: when Publish
// returns, every watcher has seen c.
func (h *Hub) Publish(c Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for fn := range h.watchers {
		(*fn)(c)
	}
}

// Watch implements Watcher. An in-process channel cannot be lost, so it sends
// ChannelRestored once and then only changes.
func (h *Hub) Watch(ctx context.Context, fn func(Change)) error {
	h.mu.Lock()
	if h.watchers == nil {
		h.watchers = make(map[*func(Change)]struct{})
	}
	key := &fn
	h.watchers[key] = struct{}{}
	fn(Change{Kind: ChannelRestored})
	h.mu.Unlock()
	<-ctx.Done()
	h.mu.Lock()
	delete(h.watchers, key)
	h.mu.Unlock()
	return nil
}
