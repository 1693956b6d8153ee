package tether_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

// A validation as a linearizability checker sees it: when it started and ended
// on one global sequence, and what it returned.
type observation struct {
	start, end uint64
	ok         bool
	roles      []string
}

// race runs validators validating token while change runs once, on a random
// schedule, and returns what each validation saw plus the sequence numbers at
// which change started and returned.
func race(t *testing.T, rng *rand.Rand, m *tether.Manager, token string, change func() error) (obs []observation, changeEnd uint64) {
	t.Helper()
	const validators, perValidator = 3, 40
	var (
		seq     atomic.Uint64
		mu      sync.Mutex
		wg      sync.WaitGroup
		startCh = make(chan struct{})
	)
	for range validators {
		yields := rng.IntN(4)
		wg.Go(func() {
			<-startCh
			local := make([]observation, 0, perValidator)
			for i := range perValidator {
				if i%(yields+1) == 0 {
					runtime.Gosched() // vary the interleaving from round to round
				}
				o := observation{start: seq.Add(1)}
				s, err := m.Validate(ctx, token)
				o.end = seq.Add(1)
				if err == nil {
					o.ok, o.roles = true, s.Roles
				} else if !errors.Is(err, tether.ErrInvalidToken) {
					t.Errorf("Validate: unexpected error %v", err)
				}
				local = append(local, o)
			}
			mu.Lock()
			obs = append(obs, local...)
			mu.Unlock()
		})
	}
	delay := rng.IntN(60)
	var changeErr error
	wg.Go(func() {
		<-startCh
		for range delay {
			runtime.Gosched()
		}
		seq.Add(1)
		changeErr = change()
		changeEnd = seq.Add(1)
	})
	close(startCh)
	wg.Wait()
	if changeErr != nil {
		t.Fatalf("change: %v", changeErr)
	}
	return obs, changeEnd
}

// linearizabilityRounds keeps the race tests well under a second with -race as well.
const linearizabilityRounds = 200

// TestRevokeIsLinearizable: once Revoke has returned, no validation that starts
// afterwards may succeed, whatever the cache was doing meanwhile. A cache that
// let a fill begun before the revocation land after it (the classic
// cache-fill race) would serve the revoked session again.
func TestRevokeIsLinearizable(t *testing.T) {
	for _, watch := range []bool{false, true} {
		t.Run(fmt.Sprintf("watch=%v", watch), func(t *testing.T) {
			seed := rand.Uint64()
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 0))
			// A fixed fake clock: entries never go stale, so only invalidation
			// can keep a revoked session out of the cache.
			e := newEnv(t, tether.Config{MaxStaleness: time.Hour}, watch)
			var okBefore int
			for round := range linearizabilityRounds {
				token, s := e.create(t, "alice")
				if rng.IntN(2) == 0 { // half the rounds start with a cached entry
					if _, err := e.m.Validate(ctx, token); err != nil {
						t.Fatalf("Validate: %v", err)
					}
				}
				obs, revoked := race(t, rng, e.m, token, func() error { return e.m.Revoke(ctx, s.ID) })
				for _, o := range obs {
					switch {
					case o.start > revoked && o.ok:
						t.Fatalf("round %d: a validation that started after Revoke returned succeeded", round)
					case o.ok:
						okBefore++
					}
				}
				if _, err := e.m.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) {
					t.Fatalf("round %d: Validate after the race = %v, want ErrInvalidToken", round, err)
				}
			}
			if okBefore == 0 {
				t.Errorf("no validation ever succeeded before a Revoke: the schedules never overlapped")
			}
		})
	}
}

// TestSetRolesIsLinearizable: once SetRoles has returned, no validation that
// starts afterwards sees the old roles.
func TestSetRolesIsLinearizable(t *testing.T) {
	for _, watch := range []bool{false, true} {
		t.Run(fmt.Sprintf("watch=%v", watch), func(t *testing.T) {
			seed := rand.Uint64()
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			e := newEnv(t, tether.Config{MaxStaleness: time.Hour}, watch)
			token, _, err := e.m.Create(ctx, tether.CreateParams{Subject: "alice", Roles: []string{"r0"}})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			for round := range linearizabilityRounds {
				oldRoles := []string{fmt.Sprint("r", round)}
				newRoles := []string{fmt.Sprint("r", round+1)}
				if rng.IntN(2) == 0 {
					if _, err := e.m.Validate(ctx, token); err != nil {
						t.Fatalf("Validate: %v", err)
					}
				}
				obs, changed := race(t, rng, e.m, token, func() error { return e.m.SetRoles(ctx, "alice", newRoles) })
				for _, o := range obs {
					switch {
					case !o.ok:
						t.Fatalf("round %d: a validation failed during a role change", round)
					case o.start > changed && !slices.Equal(o.roles, newRoles):
						t.Fatalf("round %d: a validation that started after SetRoles returned saw %v, want %v", round, o.roles, newRoles)
					case !slices.Equal(o.roles, oldRoles) && !slices.Equal(o.roles, newRoles):
						t.Fatalf("round %d: a validation saw %v, want %v or %v", round, o.roles, oldRoles, newRoles)
					}
				}
			}
		})
	}
}

// A touch that was in flight while the session was rotated must not put the
// pre-rotation record back in the cache: that would revive the old token and
// refuse the new one until the entry went stale.
func TestTouchDoesNotResurrectARotatedRecord(t *testing.T) {
	e := newEnv(t, tether.Config{MaxStaleness: time.Hour, TouchInterval: time.Minute}, false)
	old, s := e.create(t, "alice")
	if _, err := e.m.Validate(ctx, old); err != nil { // cached, no touch due yet
		t.Fatalf("Validate: %v", err)
	}
	e.clock.Advance(2 * time.Minute) // a touch is due on the next validation

	inTouch, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	e.store.beforeTouch = func() {
		if held.CompareAndSwap(false, true) { // hold only the first touch: the one for the old token
			close(inTouch)
			<-release
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Validate(ctx, old) // cache hit, touch due: blocks in Touch
		done <- err
	}()
	<-inTouch
	fresh, _, err := e.m.Rotate(ctx, old)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if _, err := e.m.Validate(ctx, fresh); err != nil { // refills the cache
		t.Fatalf("Validate(new token): %v", err)
	}
	close(release)
	<-done // it began before Rotate returned: either answer is fine

	if _, err := e.m.Validate(ctx, old); !errors.Is(err, tether.ErrInvalidToken) {
		t.Errorf("Validate(old token) after Rotate = %v, want ErrInvalidToken", err)
	}
	if got, err := e.m.Validate(ctx, fresh); err != nil || got.ID != s.ID {
		t.Errorf("Validate(new token) after Rotate = %+v, %v; want session %s", got, err, s.ID)
	}
}
