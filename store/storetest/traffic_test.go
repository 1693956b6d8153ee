package storetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
	"github.com/tetherhq/tether/store/storetest"
)

// forgetful wraps a store and, like a failover that lost the last writes,
// acknowledges some writes without making them.
type forgetful struct {
	tether.Store
	drop func(op string) bool
}

func (f forgetful) Create(ctx context.Context, r *tether.Record, evs ...tether.Event) error {
	if f.drop("Create") {
		return nil
	}
	return f.Store.Create(ctx, r, evs...)
}

func (f forgetful) Delete(ctx context.Context, id string, evs ...tether.Event) error {
	if f.drop("Delete") {
		return nil
	}
	return f.Store.Delete(ctx, id, evs...)
}

func (f forgetful) DeleteSubject(ctx context.Context, subject, keepID string, evs ...tether.Event) (int, error) {
	if f.drop("DeleteSubject") {
		return 0, nil
	}
	return f.Store.DeleteSubject(ctx, subject, keepID, evs...)
}

func (f forgetful) Rotate(ctx context.Context, id string, old, new [32]byte, evs ...tether.Event) error {
	if f.drop("Rotate") {
		return nil
	}
	return f.Store.Rotate(ctx, id, old, new, evs...)
}

func (f forgetful) Consume(ctx context.Context, key string, until time.Time) error {
	if f.drop("Consume") {
		return nil
	}
	return f.Store.Consume(ctx, key, until)
}

func (f forgetful) SetRoles(ctx context.Context, subject string, roles []string, evs ...tether.Event) error {
	if f.drop("SetRoles") {
		return nil
	}
	return f.Store.SetRoles(ctx, subject, roles, evs...)
}

// TestTrafficCheck checks the checker: a faithful store loses nothing, and
// one that acknowledges writes it did not make is caught, write by write.
func TestTrafficCheck(t *testing.T) {
	tests := []struct {
		name string
		drop string
		want func(storetest.Losses) bool
	}{
		{"faithful", "", func(l storetest.Losses) bool { return l.Zero() && l.Rounds > 0 }},
		{"lost revocations", "Delete", func(l storetest.Losses) bool { return l.Revocations > 0 && l.Sessions == 0 && l.Replays == 0 }},
		{"lost revocations of a subject", "DeleteSubject", func(l storetest.Losses) bool { return l.Revocations > 0 && l.Sessions == 0 && l.Replays == 0 }},
		{"lost sessions", "Create", func(l storetest.Losses) bool { return l.Sessions > 0 && len(l.Wrong) == 0 }},
		{"lost rotations", "Rotate", func(l storetest.Losses) bool { return l.Revocations > 0 && l.Sessions == 0 }},
		{"lost consumes", "Consume", func(l storetest.Losses) bool { return l.Replays > 0 && l.Revocations == 0 }},
		{"lost role changes", "SetRoles", func(l storetest.Losses) bool { return l.Roles > 0 && l.Replays == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := memstore.New()
			tr := storetest.StartTraffic(forgetful{s, func(op string) bool { return op == tt.drop }}, 2)
			tr.WaitCalls(t, 50)
			if l := tr.Check(t, s); !tt.want(l) {
				t.Fatalf("Check = %v", l)
			}
		})
	}
}
