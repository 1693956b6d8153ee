package tether_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

var ctx = context.Background()

func TestCreateValidate(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	if err := e.m.SetRoles(ctx, "alice", []string{"reader"}); err != nil {
		t.Fatalf("SetRoles: %v", err)
	}
	md := map[string]string{"ip": "192.0.2.1", "user_agent": "test"}
	authAt := e.clock.Now().Add(-time.Minute)
	token, created, err := e.m.Create(ctx, tether.CreateParams{
		Subject: "alice", Metadata: md, AuthTime: authAt, AuthMethod: "password",
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	md["ip"] = "changed after Create" // the session must not share the caller's map

	now := e.clock.Now()
	want := &tether.Session{
		ID: created.ID, Subject: "alice", Roles: []string{"reader"},
		CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(24 * time.Hour), IdleExpiresAt: now.Add(2 * time.Hour),
		Metadata: map[string]string{"ip": "192.0.2.1", "user_agent": "test"},
		AuthTime: authAt, AuthMethod: "password",
	}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("Create session mismatch (-want +got):\n%s", diff)
	}
	for i := range 3 { // the first reads the store, the others the cache
		got, err := e.m.Validate(ctx, token)
		if err != nil {
			t.Fatalf("Validate #%d: %v", i, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Validate #%d mismatch (-want +got):\n%s", i, diff)
		}
		got.Roles[0], got.Metadata["ip"] = "mutated", "mutated" // must not reach the cache
	}
	if got := e.store.gets.Load(); got != 1 {
		t.Errorf("store reads for 3 validations: got %d, want 1 (the cache serves the rest)", got)
	}
	st := e.m.Stats()
	if st.ValidationsOK != 3 || st.CacheHits != 2 || st.CacheMisses != 1 || st.Created != 1 {
		t.Errorf("Stats = %+v, want 3 ok, 2 hits, 1 miss, 1 created", st)
	}
	if got, err := e.m.Get(ctx, created.ID); err != nil || got.ID != created.ID {
		t.Errorf("Get(%s) = %+v, %v; want the session", created.ID, got, err)
	}
}

func TestNewManagerConfig(t *testing.T) {
	mem := memstore.New()
	tests := []struct {
		name string
		cfg  tether.Config
	}{
		{"no store", tether.Config{}},
		{"negative lifetime", tether.Config{Store: mem, Lifetime: -time.Hour}},
		{"oversize lifetime", tether.Config{Store: mem, Lifetime: tether.MaxLifetime + time.Hour}},
		{"negative idle timeout", tether.Config{Store: mem, IdleTimeout: -time.Hour}},
		{"negative cache size", tether.Config{Store: mem, CacheSize: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tether.NewManager(tt.cfg)
			if err == nil {
				m.Close()
				t.Fatal("NewManager succeeded, want an error")
			}
			if m != nil {
				t.Errorf("NewManager returned a Manager together with error %v", err)
			}
		})
	}
}

// tokenFor builds a token with a valid checksum for id and secret, as an
// attacker who knows the format could.
func tokenFor(id string, secret []byte) string {
	body := tether.TokenPrefix + id + testB32.EncodeToString(secret)
	return body + testChecksum(body)
}

func TestMalformedTokensNeverReachTheStore(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	valid, _ := e.create(t, "alice")
	id := valid[4:20]
	withSum := func(body string) string { return body + testChecksum(body) }
	flip := func(s string, i int) string {
		c := byte('0')
		if s[i] == '0' {
			c = '1'
		}
		return s[:i] + string(c) + s[i+1:]
	}

	tests := []struct {
		name      string
		token     string
		wantReads int64
	}{
		{"empty", "", 0},
		{"prefix only", "tts_", 0},
		{"wrong prefix", "ttx_" + valid[4:], 0},
		{"wrong prefix, valid checksum", withSum("ttx_" + valid[4:52]), 0},
		{"one short", valid[:len(valid)-1], 0},
		{"one long", valid + "0", 0},
		{"whitespace around", " " + valid + " ", 0},
		{"bad checksum", flip(valid, len(valid)-1), 0},
		{"id altered", flip(valid, 6), 0},
		{"secret altered", flip(valid, 30), 0},
		{"upper case", strings.ToUpper(valid[:4]) + strings.ToUpper(valid[4:]), 0},
		{"upper case body, valid checksum", withSum("tts_" + strings.ToUpper(valid[4:52])), 0},
		{"letter outside the alphabet, valid checksum", withSum(valid[:10] + "u" + valid[11:52]), 0},
		{"newline in id, valid checksum", withSum(valid[:19] + "\n" + valid[20:52]), 0},
		{"newline in secret, valid checksum", withSum(valid[:51] + "\r"), 0},
		{"JWT", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig", 0},
		{"unknown id, valid checksum", tokenFor("0000000000000000", make([]byte, 20)), 1},
		{"known id, wrong secret, valid checksum", tokenFor(id, make([]byte, 20)), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.store.gets.Load()
			s, err := e.m.Validate(ctx, tt.token)
			if !errors.Is(err, tether.ErrInvalidToken) || s != nil {
				t.Errorf("Validate = %v, %v; want nil, ErrInvalidToken", s, err)
			}
			if got := e.store.gets.Load() - before; got != tt.wantReads {
				t.Errorf("store reads: got %d, want %d", got, tt.wantReads)
			}
		})
	}
	// The real token still works: nothing above disturbed it.
	if _, err := e.m.Validate(ctx, valid); err != nil {
		t.Errorf("Validate(valid) after the malformed ones: %v", err)
	}
}

func TestTouchThrottled(t *testing.T) {
	for _, cache := range []struct {
		name         string
		maxStaleness time.Duration
	}{{"cache on", time.Second}, {"cache off", -1}} {
		t.Run(cache.name, func(t *testing.T) {
			e := newEnv(t, tether.Config{
				IdleTimeout: time.Hour, TouchInterval: time.Minute, MaxStaleness: cache.maxStaleness,
			}, false)
			token, _ := e.create(t, "alice")
			validate := func(n int, step time.Duration) {
				t.Helper()
				for range n {
					if _, err := e.m.Validate(ctx, token); err != nil {
						t.Fatalf("Validate at %v: %v", e.clock.Now(), err)
					}
					e.clock.Advance(step)
				}
			}
			validate(59, time.Second) // all within the first minute
			if got := e.store.touches.Load(); got != 0 {
				t.Fatalf("touches within the first TouchInterval: got %d, want 0", got)
			}
			e.clock.Advance(2 * time.Second) // now past one minute since creation
			validate(100, 0)                 // a burst at one instant: one touch
			if got := e.store.touches.Load(); got != 1 {
				t.Fatalf("touches for a burst after TouchInterval: got %d, want 1", got)
			}
			validate(50, time.Second) // the next 50s: still inside the new interval
			if got := e.store.touches.Load(); got != 1 {
				t.Fatalf("touches within the second TouchInterval: got %d, want 1", got)
			}
		})
	}
}

func TestIdleAndAbsoluteExpiry(t *testing.T) {
	e := newEnv(t, tether.Config{
		Lifetime: 30 * time.Minute, IdleTimeout: 10 * time.Minute, TouchInterval: time.Minute,
	}, false)
	token, created := e.create(t, "alice")
	t0 := created.CreatedAt

	type step struct {
		at      time.Duration // since creation
		wantOK  bool
		wantIdl time.Duration // the idle expiry the session reports, since creation
	}
	steps := []step{
		{9 * time.Minute, true, 19 * time.Minute},  // slides: 9m + 10m
		{18 * time.Minute, true, 28 * time.Minute}, // alive only because it slid
		{27 * time.Minute, true, 30 * time.Minute}, // the slide stops at the absolute lifetime
		{29*time.Minute + 59*time.Second, true, 30 * time.Minute},
		{30 * time.Minute, false, 0}, // used every few minutes, still ends at 30m
	}
	for _, s := range steps {
		e.clock.Advance(t0.Add(s.at).Sub(e.clock.Now()))
		got, err := e.m.Validate(ctx, token)
		if !s.wantOK {
			if !errors.Is(err, tether.ErrInvalidToken) {
				t.Errorf("at +%v: Validate = %v, %v; want ErrInvalidToken", s.at, got, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("at +%v: Validate: %v", s.at, err)
		}
		if want := t0.Add(30 * time.Minute); !got.ExpiresAt.Equal(want) {
			t.Errorf("at +%v: ExpiresAt = %v, want %v (sliding must never move it)", s.at, got.ExpiresAt, want)
		}
		if want := t0.Add(s.wantIdl); !got.IdleExpiresAt.Equal(want) {
			t.Errorf("at +%v: IdleExpiresAt = %v, want %v", s.at, got.IdleExpiresAt, want)
		}
	}

	t.Run("idle", func(t *testing.T) {
		token, _ := e.create(t, "bob")
		e.clock.Advance(5 * time.Minute)
		if _, err := e.m.Validate(ctx, token); err != nil {
			t.Fatalf("Validate at +5m: %v", err)
		}
		e.clock.Advance(10 * time.Minute) // idle since +5m: ended at +15m
		if _, err := e.m.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) {
			t.Errorf("Validate after 10m idle: got %v, want ErrInvalidToken", err)
		}
	})
}

func TestRotate(t *testing.T) {
	for _, watch := range []bool{false, true} {
		t.Run(fmt.Sprintf("watch=%v", watch), func(t *testing.T) {
			e := newEnv(t, tether.Config{}, watch)
			old, s1 := e.create(t, "alice")
			other, s2 := e.create(t, "alice")
			for _, tok := range []string{old, other} { // both cached
				if _, err := e.m.Validate(ctx, tok); err != nil {
					t.Fatalf("Validate: %v", err)
				}
			}
			fresh, rs, err := e.m.Rotate(ctx, old)
			if err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			if fresh == old || rs.ID != s1.ID || fresh[4:20] != s1.ID {
				t.Errorf("Rotate = token for %s, session %s; want a new token for the same session %s", fresh[4:20], rs.ID, s1.ID)
			}
			if got, err := e.m.Validate(ctx, fresh); err != nil || got.ID != s1.ID {
				t.Errorf("Validate(new token) = %+v, %v; want session %s", got, err, s1.ID)
			}
			if _, err := e.m.Validate(ctx, old); !errors.Is(err, tether.ErrInvalidToken) {
				t.Errorf("Validate(old token) = %v, want ErrInvalidToken", err)
			}
			if got, err := e.m.Validate(ctx, other); err != nil || got.ID != s2.ID {
				t.Errorf("Validate(other session) = %+v, %v; want session %s", got, err, s2.ID)
			}
			if _, _, err := e.m.Rotate(ctx, old); !errors.Is(err, tether.ErrInvalidToken) {
				t.Errorf("Rotate(old token) = %v, want ErrInvalidToken", err)
			}
			if err := e.m.Revoke(ctx, s1.ID); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if tok, s, err := e.m.Rotate(ctx, fresh); !errors.Is(err, tether.ErrInvalidToken) || tok != "" || s != nil {
				t.Errorf("Rotate(revoked) = %q, %v, %v; want ErrInvalidToken and nothing else", tok, s, err)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	e := newEnv(t, tether.Config{}, true)
	token, s := e.create(t, "alice")
	other, _ := e.create(t, "alice")
	for range 2 {
		if _, err := e.m.Validate(ctx, token); err != nil {
			t.Fatalf("Validate: %v", err)
		}
	}
	if err := e.m.Revoke(ctx, s.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if got, err := e.m.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) || got != nil {
		t.Errorf("Validate after Revoke = %v, %v; want nil, ErrInvalidToken", got, err)
	}
	if _, err := e.m.Validate(ctx, other); err != nil {
		t.Errorf("Validate(another session of the subject) after Revoke: %v", err)
	}
	if _, err := e.m.Get(ctx, s.ID); !errors.Is(err, tether.ErrNotFound) {
		t.Errorf("Get after Revoke = %v, want ErrNotFound", err)
	}
	for _, id := range []string{s.ID, "0000000000000000", "", "not an id"} {
		if err := e.m.Revoke(ctx, id); !errors.Is(err, tether.ErrNotFound) {
			t.Errorf("Revoke(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if got := e.m.Stats().Revoked; got != 1 {
		t.Errorf("Stats().Revoked = %d, want 1", got)
	}
}

func TestRevokeSubject(t *testing.T) {
	tests := []struct {
		name   string
		keep   int // index of the session to keep, or -1
		wantN  int
		wantOK []bool
	}{
		{"all", -1, 3, []bool{false, false, false}},
		{"keep current", 1, 2, []bool{false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tether.Config{}, false)
			var tokens []string
			var ids []string
			for range 3 {
				tok, s := e.create(t, "alice")
				if _, err := e.m.Validate(ctx, tok); err != nil { // cached
					t.Fatalf("Validate: %v", err)
				}
				tokens, ids = append(tokens, tok), append(ids, s.ID)
			}
			bob, _ := e.create(t, "bob")
			keep := ""
			if tt.keep >= 0 {
				keep = ids[tt.keep]
			}
			n, err := e.m.RevokeSubject(ctx, "alice", keep)
			if err != nil || n != tt.wantN {
				t.Fatalf("RevokeSubject = %d, %v; want %d, nil", n, err, tt.wantN)
			}
			for i, tok := range tokens {
				_, err := e.m.Validate(ctx, tok)
				if got := err == nil; got != tt.wantOK[i] {
					t.Errorf("session %d: Validate ok = %v (%v), want %v", i, got, err, tt.wantOK[i])
				}
			}
			if _, err := e.m.Validate(ctx, bob); err != nil {
				t.Errorf("another subject's session after RevokeSubject: %v", err)
			}
		})
	}
}

func TestList(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	if err := e.m.SetRoles(ctx, "alice", []string{"a", "b"}); err != nil {
		t.Fatalf("SetRoles: %v", err)
	}
	var want []string
	for range 3 {
		_, s := e.create(t, "alice")
		want = append(want, s.ID)
		e.clock.Advance(time.Second)
	}
	e.create(t, "bob")
	if err := e.m.Revoke(ctx, want[1]); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	want = append(want[:1], want[2:]...)

	got, err := e.m.List(ctx, "alice")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var gotIDs []string
	for _, s := range got {
		gotIDs = append(gotIDs, s.ID)
		if diff := cmp.Diff([]string{"a", "b"}, s.Roles); diff != "" {
			t.Errorf("session %s roles (-want +got):\n%s", s.ID, diff)
		}
	}
	if diff := cmp.Diff(want, gotIDs); diff != "" {
		t.Errorf("List IDs, oldest first (-want +got):\n%s", diff)
	}
	if got, err := e.m.List(ctx, "nobody"); err != nil || len(got) != 0 {
		t.Errorf("List(unknown subject) = %v, %v; want none, nil", got, err)
	}
}

func TestSetRolesVisibleOnNextValidate(t *testing.T) {
	for _, watch := range []bool{false, true} {
		t.Run(fmt.Sprintf("watch=%v", watch), func(t *testing.T) {
			e := newEnv(t, tether.Config{MaxStaleness: time.Hour}, watch) // only invalidation can refresh
			token, _, err := e.m.Create(ctx, tether.CreateParams{Subject: "alice", Roles: []string{"reader"}})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			for _, roles := range [][]string{{"reader"}, {"admin", "reader"}, {}, {"viewer"}} {
				if err := e.m.SetRoles(ctx, "alice", roles); err != nil {
					t.Fatalf("SetRoles(%v): %v", roles, err)
				}
				for range 2 { // the second is served from the cache
					got, err := e.m.Validate(ctx, token)
					if err != nil {
						t.Fatalf("Validate: %v", err)
					}
					if diff := cmp.Diff(roles, got.Roles); diff != "" {
						t.Errorf("roles after SetRoles (-want +got):\n%s", diff)
					}
				}
			}
			if got, err := e.m.Roles(ctx, "alice"); err != nil || !cmp.Equal(got, []string{"viewer"}) {
				t.Errorf("Roles = %v, %v; want [viewer]", got, err)
			}
		})
	}
}

// Two Managers over one store stand for two nodes: what one revokes or
// changes, the other refuses or sees on its very next validation.
func TestTwoManagersShareOneStore(t *testing.T) {
	c := newClock()
	mem := memstore.NewWithOptions(memstore.Options{Now: c.Now})
	cfg := tether.Config{MaxStaleness: time.Hour} // so only the change channel can explain a refusal
	a := newEnvOn(t, cfg, mem, c, true)
	b := newEnvOn(t, cfg, mem, c, true)

	validateTwice := func(t *testing.T, token string) *tether.Session {
		t.Helper()
		var s *tether.Session
		for range 2 {
			var err error
			if s, err = b.m.Validate(ctx, token); err != nil {
				t.Fatalf("B.Validate: %v", err)
			}
		}
		return s
	}

	t.Run("revoke", func(t *testing.T) {
		token, s := a.create(t, "alice")
		before := b.store.gets.Load()
		validateTwice(t, token)
		if got := b.store.gets.Load() - before; got != 1 {
			t.Fatalf("B's store reads for two validations: got %d, want 1 (cached)", got)
		}
		if err := a.m.Revoke(ctx, s.ID); err != nil {
			t.Fatalf("A.Revoke: %v", err)
		}
		if _, err := b.m.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) {
			t.Errorf("B.Validate after A.Revoke = %v, want ErrInvalidToken", err)
		}
	})
	t.Run("revoke subject", func(t *testing.T) {
		token, _ := a.create(t, "carol")
		validateTwice(t, token)
		if _, err := a.m.RevokeSubject(ctx, "carol", ""); err != nil {
			t.Fatalf("A.RevokeSubject: %v", err)
		}
		if _, err := b.m.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) {
			t.Errorf("B.Validate after A.RevokeSubject = %v, want ErrInvalidToken", err)
		}
	})
	t.Run("rotate", func(t *testing.T) {
		token, _ := a.create(t, "dave")
		validateTwice(t, token)
		fresh, _, err := a.m.Rotate(ctx, token)
		if err != nil {
			t.Fatalf("A.Rotate: %v", err)
		}
		if _, err := b.m.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) {
			t.Errorf("B.Validate(old token) after A.Rotate = %v, want ErrInvalidToken", err)
		}
		if _, err := b.m.Validate(ctx, fresh); err != nil {
			t.Errorf("B.Validate(new token) after A.Rotate: %v", err)
		}
	})
	t.Run("roles", func(t *testing.T) {
		token, _ := a.create(t, "erin")
		validateTwice(t, token)
		if err := a.m.SetRoles(ctx, "erin", []string{"admin"}); err != nil {
			t.Fatalf("A.SetRoles: %v", err)
		}
		if s := validateTwice(t, token); !cmp.Equal(s.Roles, []string{"admin"}) {
			t.Errorf("B sees roles %v after A.SetRoles, want [admin]", s.Roles)
		}
	})
}

func TestBadInputWritesNothing(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	manyRoles := make([]string, tether.MaxRoles+1)
	for i := range manyRoles {
		manyRoles[i] = fmt.Sprint("r", i)
	}
	manyMD := map[string]string{}
	for i := range tether.MaxMetadataEntries + 1 {
		manyMD[fmt.Sprint("k", i)] = "v"
	}
	create := func(p tether.CreateParams) func(*tether.Manager) error {
		return func(m *tether.Manager) error {
			tok, s, err := m.Create(ctx, p)
			if tok != "" || s != nil {
				return fmt.Errorf("Create returned %q, %v together with %w", tok, s, err)
			}
			return err
		}
	}
	tests := []struct {
		name string
		call func(*tether.Manager) error
	}{
		{"empty subject", create(tether.CreateParams{})},
		{"oversize subject", create(tether.CreateParams{Subject: long(tether.MaxSubjectLen + 1)})},
		{"subject with NUL", create(tether.CreateParams{Subject: "al\x00ice"})},
		{"subject with newline", create(tether.CreateParams{Subject: "alice\n"})},
		{"subject not UTF-8", create(tether.CreateParams{Subject: "al\xffice"})},
		{"too many roles", create(tether.CreateParams{Subject: "alice", Roles: manyRoles})},
		{"empty role", create(tether.CreateParams{Subject: "alice", Roles: []string{"a", ""}})},
		{"oversize role", create(tether.CreateParams{Subject: "alice", Roles: []string{long(tether.MaxRoleLen + 1)}})},
		{"role with control char", create(tether.CreateParams{Subject: "alice", Roles: []string{"ad\tmin"}})},
		{"too much metadata", create(tether.CreateParams{Subject: "alice", Metadata: manyMD})},
		{"oversize metadata value", create(tether.CreateParams{Subject: "alice", Metadata: map[string]string{"ua": long(tether.MaxMetadataValLen + 1)}})},
		{"oversize metadata key", create(tether.CreateParams{Subject: "alice", Metadata: map[string]string{long(tether.MaxMetadataKeyLen + 1): "v"}})},
		{"empty metadata key", create(tether.CreateParams{Subject: "alice", Metadata: map[string]string{"": "v"}})},
		{"metadata value not UTF-8", create(tether.CreateParams{Subject: "alice", Metadata: map[string]string{"ua": "\xff"}})},
		{"negative lifetime", create(tether.CreateParams{Subject: "alice", Lifetime: -time.Second})},
		{"oversize lifetime", create(tether.CreateParams{Subject: "alice", Lifetime: tether.MaxLifetime + 1})},
		{"negative idle timeout", create(tether.CreateParams{Subject: "alice", IdleTimeout: -time.Second})},
		{"oversize idle timeout", create(tether.CreateParams{Subject: "alice", IdleTimeout: tether.MaxLifetime + 1})},
		{"oversize auth method", create(tether.CreateParams{Subject: "alice", AuthMethod: long(tether.MaxRoleLen + 1)})},
		{"bad input and roles", create(tether.CreateParams{Subject: "alice", Roles: []string{"admin"}, Lifetime: -1})},
		{"SetRoles empty subject", func(m *tether.Manager) error { return m.SetRoles(ctx, "", []string{"a"}) }},
		{"SetRoles too many", func(m *tether.Manager) error { return m.SetRoles(ctx, "alice", manyRoles) }},
		{"RevokeSubject empty subject", func(m *tether.Manager) error { _, err := m.RevokeSubject(ctx, "", ""); return err }},
		{"List oversize subject", func(m *tether.Manager) error { _, err := m.List(ctx, long(tether.MaxSubjectLen+1)); return err }},
		{"Roles empty subject", func(m *tether.Manager) error { _, err := m.Roles(ctx, ""); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tether.Config{}, false)
			if err := tt.call(e.m); !errors.Is(err, tether.ErrBadInput) {
				t.Errorf("got error %v, want ErrBadInput", err)
			}
			if got := e.store.writes.Load(); got != 0 {
				t.Errorf("store writes: got %d, want 0", got)
			}
		})
	}
}

func TestStoreFailureFailsClosed(t *testing.T) {
	newFlaky := func(t *testing.T, cfg tether.Config) (*tether.Manager, *flakyStore, *clock) {
		c := newClock()
		fs := newFlakyStore(memstore.NewWithOptions(memstore.Options{Now: c.Now}))
		cfg.Store, cfg.Now = fs, c.Now
		m, err := tether.NewManager(cfg)
		if err != nil {
			t.Fatalf("NewManager: %v", err)
		}
		t.Cleanup(func() { m.Close() })
		return m, fs, c
	}
	wantUnavailable := func(t *testing.T, s *tether.Session, err error) {
		t.Helper()
		if !errors.Is(err, tether.ErrUnavailable) || errors.Is(err, tether.ErrInvalidToken) {
			t.Errorf("Validate error = %v, want ErrUnavailable (and not ErrInvalidToken)", err)
		}
		if s != nil {
			t.Errorf("Validate returned session %+v together with error %v", s, err)
		}
	}

	t.Run("no cache entry", func(t *testing.T) {
		m, fs, _ := newFlaky(t, tether.Config{})
		fs.send(t, tether.Change{Kind: tether.ChannelRestored})
		token, _, err := m.Create(ctx, tether.CreateParams{Subject: "alice"})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		fs.down.Store(true)
		s, err := m.Validate(ctx, token)
		wantUnavailable(t, s, err)
		if got := m.Stats().ValidationsUnavailable; got != 1 {
			t.Errorf("Stats().ValidationsUnavailable = %d, want 1", got)
		}
		if _, _, err := m.Rotate(ctx, token); !errors.Is(err, tether.ErrUnavailable) {
			t.Errorf("Rotate while down = %v, want ErrUnavailable", err)
		}
		if _, _, err := m.Create(ctx, tether.CreateParams{Subject: "bob"}); !errors.Is(err, tether.ErrUnavailable) {
			t.Errorf("Create while down = %v, want ErrUnavailable", err)
		}
	})

	t.Run("channel lost", func(t *testing.T) {
		m, fs, _ := newFlaky(t, tether.Config{MaxStaleness: time.Hour})
		fs.send(t, tether.Change{Kind: tether.ChannelRestored})
		token, _, err := m.Create(ctx, tether.CreateParams{Subject: "alice"})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if _, err := m.Validate(ctx, token); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		fs.down.Store(true)
		// While the channel is up the entry is trusted within its bound; this
		// also proves that it was cached.
		if _, err := m.Validate(ctx, token); err != nil {
			t.Fatalf("Validate from the cache while the store is down: %v", err)
		}
		fs.send(t, tether.Change{Kind: tether.ChannelLost})
		s, err := m.Validate(ctx, token)
		wantUnavailable(t, s, err)

		// Store back but channel still lost: served from the store, not cached.
		fs.down.Store(false)
		for range 2 {
			if _, err := m.Validate(ctx, token); err != nil {
				t.Fatalf("Validate with the store back: %v", err)
			}
		}
		fs.down.Store(true)
		s, err = m.Validate(ctx, token)
		wantUnavailable(t, s, err) // nothing was cached while the channel was lost

		fs.down.Store(false)
		fs.send(t, tether.Change{Kind: tether.ChannelRestored})
		if _, err := m.Validate(ctx, token); err != nil {
			t.Fatalf("Validate after the channel is restored: %v", err)
		}
	})

	t.Run("touch fails", func(t *testing.T) {
		m, fs, c := newFlaky(t, tether.Config{MaxStaleness: time.Hour, TouchInterval: time.Minute})
		fs.send(t, tether.Change{Kind: tether.ChannelRestored})
		token, _, err := m.Create(ctx, tether.CreateParams{Subject: "alice"})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if _, err := m.Validate(ctx, token); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		fs.down.Store(true)
		c.Advance(2 * time.Minute) // a touch is due and cannot be written
		s, err := m.Validate(ctx, token)
		wantUnavailable(t, s, err)
	})
}

func TestMaxStaleness(t *testing.T) {
	const bound = time.Second
	tests := []struct {
		name   string
		change func(mem *memstore.Store, id string) error // behind the Manager's back
		check  func(s *tether.Session, err error) bool    // true when the change is seen
	}{
		{
			name:   "roles",
			change: func(mem *memstore.Store, _ string) error { return mem.SetRoles(ctx, "alice", []string{"admin"}) },
			check:  func(s *tether.Session, err error) bool { return err == nil && s.HasRole("admin") },
		},
		{
			name:   "revoked",
			change: func(mem *memstore.Store, id string) error { return mem.Delete(ctx, id) },
			check:  func(_ *tether.Session, err error) bool { return errors.Is(err, tether.ErrInvalidToken) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The countingStore hides memstore's Watch: nobody tells the cache.
			e := newEnv(t, tether.Config{MaxStaleness: bound}, false)
			token, s := e.create(t, "alice")
			if _, err := e.m.Validate(ctx, token); err != nil { // cached now
				t.Fatalf("Validate: %v", err)
			}
			if err := tt.change(e.mem, s.ID); err != nil {
				t.Fatalf("change: %v", err)
			}
			e.clock.Advance(bound - time.Nanosecond)
			if got, err := e.m.Validate(ctx, token); tt.check(got, err) {
				t.Errorf("just inside the bound the cache was bypassed: %+v, %v", got, err)
			}
			if got := e.store.gets.Load(); got != 1 {
				t.Errorf("store reads inside the bound: got %d, want 1", got)
			}
			e.clock.Advance(time.Nanosecond)
			if got, err := e.m.Validate(ctx, token); !tt.check(got, err) {
				t.Errorf("at the bound the change is not seen: %+v, %v", got, err)
			}
			if got := e.store.gets.Load(); got != 2 {
				t.Errorf("store reads at the bound: got %d, want 2", got)
			}
		})
	}

	t.Run("negative disables the cache", func(t *testing.T) {
		e := newEnv(t, tether.Config{MaxStaleness: -1}, true)
		token, _ := e.create(t, "alice")
		for range 5 {
			if _, err := e.m.Validate(ctx, token); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		}
		if got := e.store.gets.Load(); got != 5 {
			t.Errorf("store reads for 5 validations: got %d, want 5", got)
		}
		if got := e.m.Stats().CachedSessions; got != 0 {
			t.Errorf("CachedSessions = %d, want 0", got)
		}
	})
}

func TestCacheSizeBound(t *testing.T) {
	e := newEnv(t, tether.Config{CacheSize: 10, MaxStaleness: time.Hour}, false)
	var tokens []string
	for i := range 25 {
		tok, _ := e.create(t, fmt.Sprint("user", i%7))
		tokens = append(tokens, tok)
	}
	for range 2 {
		for _, tok := range tokens {
			if _, err := e.m.Validate(ctx, tok); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		}
	}
	if got := e.m.Stats().CachedSessions; got > 10 {
		t.Errorf("CachedSessions = %d, want at most CacheSize 10", got)
	}
}

func TestMaxSessionsPerSubject(t *testing.T) {
	clock := newClock()
	st := memstore.NewWithOptions(memstore.Options{Now: clock.Now})
	m, err := tether.NewManager(tether.Config{Store: st, Now: clock.Now, MaxSessionsPerSubject: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var tokens []string
	for range 3 {
		tok, _, err := m.Create(ctx, tether.CreateParams{Subject: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, tok)
		clock.Advance(time.Second) // distinct creation times make "oldest" well defined
	}
	if _, err := m.Validate(ctx, tokens[0]); !errors.Is(err, tether.ErrInvalidToken) {
		t.Errorf("oldest session: got %v, want ErrInvalidToken (evicted by the cap)", err)
	}
	for _, tok := range tokens[1:] {
		if _, err := m.Validate(ctx, tok); err != nil {
			t.Errorf("newer session: got %v, want valid", err)
		}
	}
	if list, _ := m.List(ctx, "alice"); len(list) != 2 {
		t.Errorf("got %d live sessions, want 2", len(list))
	}
}
