package tether_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/memstore"
	"github.com/tetherhq/tether/store/redisstore"
)

// Someone who knows a session ID must not learn from a refusal's timing
// whether it is live. So a wrong secret for a known ID does the work an
// unknown ID does: one store read and no roles read, cached or not.
func TestWrongSecretCostsWhatUnknownCosts(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, tether.Config{}, true)
	used, _ := e.create(t, "alice")
	if _, err := e.m.Validate(ctx, used); err != nil { // now cached
		t.Fatal(err)
	}
	fresh, _ := e.create(t, "bob") // never validated: not cached
	zero := make([]byte, 20)
	for _, tt := range []struct {
		name             string
		token            string
		wantGets, wantRR int64
		wantErr          error
	}{
		{"unknown id", tokenFor("0000000000000000", zero), 1, 0, tether.ErrInvalidToken},
		{"known id, wrong secret, cached", tokenFor(used[4:20], zero), 1, 0, tether.ErrInvalidToken},
		{"known id, wrong secret, not cached", tokenFor(fresh[4:20], zero), 1, 0, tether.ErrInvalidToken},
		{"the real token, cached all along", used, 0, 0, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gets, rr := e.store.gets.Load(), e.store.roleReads.Load()
			_, err := e.m.Validate(ctx, tt.token)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("Validate: got %v, want %v", err, tt.wantErr)
			}
			if g, r := e.store.gets.Load()-gets, e.store.roleReads.Load()-rr; g != tt.wantGets || r != tt.wantRR {
				t.Errorf("store reads: got %d Get and %d Roles, want %d and %d", g, r, tt.wantGets, tt.wantRR)
			}
		})
	}
}

// TestValidationTiming measures what the test above keeps equal: how long
// refusing an unknown ID takes against a known ID with a wrong secret, over
// memstore and Redis, with the cache on (the ID recently used) and off. It
// logs the figures (SECURITY.md quotes them) and asserts nothing about time.
func TestValidationTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("measures")
	}
	for _, backend := range []struct {
		name   string
		rounds int
		open   func(t *testing.T) tether.Store
	}{
		{"memstore", 20000, func(t *testing.T) tether.Store { return memstore.New() }},
		{"redis", 1000, func(t *testing.T) tether.Store {
			addr := servicetest.SharedRedis(t)
			s, err := redisstore.Open(context.Background(), "redis://"+addr+"/0?prefix="+servicetest.RedisPrefix(t, addr), redisstore.Options{Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	} {
		t.Run(backend.name, func(t *testing.T) {
			st := backend.open(t)
			for _, cache := range []struct {
				name      string
				staleness time.Duration
			}{{"cache on, ID recently used", 0}, {"cache off", -1}} {
				m, err := tether.NewManager(tether.Config{Store: st, MaxStaleness: cache.staleness})
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				got := timeRefusals(t, m, cache.staleness >= 0, backend.rounds)
				t.Logf("%s, %s: median unknown ID %v, known ID with a wrong secret %v (difference %v); p90 %v and %v; %d rounds",
					backend.name, cache.name, got[0].median, got[1].median, got[1].median-got[0].median, got[0].p90, got[1].p90, backend.rounds)
			}
		})
	}
}

type timing struct{ median, p90 time.Duration }

// timeRefusals validates, alternately, a token with an unknown ID and one
// with a live session's ID and a wrong secret, rounds times each, after
// validating the real token (so a cache holds it).
func timeRefusals(t *testing.T, m *tether.Manager, cached bool, rounds int) [2]timing {
	ctx := context.Background()
	real, _, err := m.Create(ctx, tether.CreateParams{Subject: "timing-" + strings.ToLower(tether.NewID())})
	if err != nil {
		t.Fatal(err)
	}
	// With the cache on, wait until it serves the session (its change
	// channel is up), or "recently used" would mean nothing.
	for deadline := time.Now().Add(5 * time.Second); ; {
		hits := m.Stats().CacheHits
		if _, err := m.Validate(ctx, real); err != nil {
			t.Fatal(err)
		}
		if !cached || m.Stats().CacheHits > hits {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache never served the session")
		}
		time.Sleep(time.Millisecond)
	}
	zero := make([]byte, 20)
	tokens := [2]string{tokenFor("0000000000000000", zero), tokenFor(real[4:20], zero)}
	var lat [2][]time.Duration
	for i := range 2 * rounds {
		k := i % 2
		t0 := time.Now()
		_, err := m.Validate(ctx, tokens[k])
		lat[k] = append(lat[k], time.Since(t0))
		if !errors.Is(err, tether.ErrInvalidToken) {
			t.Fatalf("Validate(%s): got %v, want ErrInvalidToken", []string{"unknown", "wrong secret"}[k], err)
		}
	}
	var out [2]timing
	for k := range lat {
		slices.Sort(lat[k])
		out[k] = timing{median: lat[k][len(lat[k])/2], p90: lat[k][len(lat[k])*9/10]}
	}
	return out
}
