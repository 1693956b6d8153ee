package servicetest

import (
	"context"
	"sync/atomic"

	"github.com/tetherhq/tether"
)

// FailingDeletes is a Store whose session deletes a test can make fail
// with tether.ErrUnavailable, and succeed again: a store that goes away in
// the middle of a revocation and comes back.
type FailingDeletes struct {
	tether.Store
	Down atomic.Bool
}

// Delete fails while Down is set.
func (s *FailingDeletes) Delete(ctx context.Context, id string, evs ...tether.Event) error {
	if s.Down.Load() {
		return tether.ErrUnavailable
	}
	return s.Store.Delete(ctx, id, evs...)
}
