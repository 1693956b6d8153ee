package tether_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

// fakeVerifier stands for a handshake.Verifier: the raw token is a key into
// handshakes, and it consumes the handshake's ID in the guard it is given.
type fakeVerifier struct {
	handshakes map[string]tether.Handshake
}

func (v *fakeVerifier) ConsumeHandshake(ctx context.Context, raw string, guard tether.ReplayGuard) (*tether.Handshake, error) {
	h, ok := v.handshakes[raw]
	if !ok {
		return nil, fmt.Errorf("%w: bad signature", tether.ErrInvalidToken)
	}
	if err := guard.Consume(ctx, h.Issuer+" "+h.ID, h.IssuedAt.Add(time.Hour)); err != nil { // no NUL: PostgreSQL refuses it in text
		if errors.Is(err, tether.ErrReplayed) {
			return nil, fmt.Errorf("%w: %w", tether.ErrInvalidToken, err)
		}
		return nil, err
	}
	return &h, nil
}

func TestExchange(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	iat := e.clock.Now().Add(-10 * time.Second)
	login := e.clock.Now().Add(-time.Hour).UTC()
	v := &fakeVerifier{handshakes: map[string]tether.Handshake{
		"with-login":  {Issuer: "https://a.example", Subject: "alice", ID: "j1", IssuedAt: iat, AuthTime: login},
		"no-login":    {Issuer: "https://a.example", Subject: "bob", ID: "j2", IssuedAt: iat},
		"reserved":    {Issuer: "https://a.example", Subject: "tether:console", ID: "j3", IssuedAt: iat},
		"unprintable": {Issuer: "https://a.example", Subject: "a\x00b", ID: "j4", IssuedAt: iat},
	}}
	md := map[string]string{"ip": "192.0.2.1"}
	tests := []struct {
		name         string
		v            tether.HandshakeVerifier
		raw          string
		wantSubject  string
		wantAuthTime time.Time
		wantErr      error
	}{
		{"login time from the issuer", v, "with-login", "alice", login, nil},
		{"else the handshake's own time", v, "no-login", "bob", iat, nil},
		{"replayed", v, "with-login", "", time.Time{}, tether.ErrInvalidToken},
		{"invalid", v, "forged", "", time.Time{}, tether.ErrInvalidToken},
		{"a reserved subject", v, "reserved", "", time.Time{}, tether.ErrInvalidToken},
		{"a subject this node cannot hold", v, "unprintable", "", time.Time{}, tether.ErrInvalidToken},
		{"no verifier: this node trusts nobody", nil, "with-login", "", time.Time{}, tether.ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created := e.m.Stats().Created
			token, sess, err := e.m.Exchange(t.Context(), tt.v, tt.raw, tether.ExchangeParams{Metadata: md})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || sess != nil || token != "" {
					t.Fatalf("Exchange: got %v, %v, want %v and nothing else", sess, err, tt.wantErr)
				}
				if n := e.m.Stats().Created; n != created {
					t.Errorf("a refused exchange created %d sessions", n-created)
				}
				return
			}
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if sess.Subject != tt.wantSubject || sess.AuthMethod != tether.AuthMethodHandshake || !sess.AuthTime.Equal(tt.wantAuthTime) {
				t.Errorf("session: got subject %q, method %q, auth time %v; want %q, handshake, %v",
					sess.Subject, sess.AuthMethod, sess.AuthTime, tt.wantSubject, tt.wantAuthTime)
			}
			if sess.Metadata["ip"] != "192.0.2.1" || sess.Metadata["handshake_issuer"] != "https://a.example" {
				t.Errorf("metadata: got %v, want the client's ip and the issuer", sess.Metadata)
			}
			if _, err := e.m.Validate(t.Context(), token); err != nil {
				t.Errorf("the new token: %v", err)
			}
		})
	}
	if len(md) != 1 {
		t.Errorf("Exchange changed the caller's metadata: %v", md)
	}
}

// TestExchangeReplaces: the session a browser brought to an exchange ends
// once the new one starts (fixation), but only when its token is valid, and
// never when the exchange is refused.
func TestExchangeReplaces(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	v := &fakeVerifier{handshakes: map[string]tether.Handshake{
		"ok":    {Issuer: "https://a.example", Subject: "alice", ID: "j1", IssuedAt: e.clock.Now()},
		"again": {Issuer: "https://a.example", Subject: "alice", ID: "j1", IssuedAt: e.clock.Now()},
	}}
	planted, plantedSess := e.create(t, "mallory")
	if _, _, err := e.m.Exchange(t.Context(), v, "ok", tether.ExchangeParams{Replaces: planted}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Validate(t.Context(), planted); !errors.Is(err, tether.ErrInvalidToken) {
		t.Errorf("the planted session after the exchange: got %v, want it revoked", err)
	}
	if _, err := e.m.Get(t.Context(), plantedSess.ID); !errors.Is(err, tether.ErrNotFound) {
		t.Errorf("Get of the planted session: got %v, want ErrNotFound", err)
	}

	kept, _ := e.create(t, "carol")
	if _, _, err := e.m.Exchange(t.Context(), v, "again", tether.ExchangeParams{Replaces: kept}); !errors.Is(err, tether.ErrInvalidToken) {
		t.Fatalf("replayed exchange: got %v, want ErrInvalidToken", err)
	}
	if _, err := e.m.Validate(t.Context(), kept); err != nil {
		t.Errorf("a refused exchange ended the browser's session: %v", err)
	}
}

// TestExchangeStoreDown: when the replay guard cannot decide, the exchange
// fails closed with ErrUnavailable, not as a refusal, and Ping says so too.
func TestExchangeStoreDown(t *testing.T) {
	fs := newFlakyStore(memstore.New())
	m, err := tether.NewManager(tether.Config{Store: fs, MaxStaleness: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	v := &fakeVerifier{handshakes: map[string]tether.Handshake{"ok": {Issuer: "i", Subject: "alice", ID: "j", IssuedAt: time.Now()}}}
	if err := m.Ping(t.Context()); err != nil {
		t.Fatalf("Ping while up: %v", err)
	}
	fs.down.Store(true)
	_, _, err = m.Exchange(t.Context(), v, "ok", tether.ExchangeParams{})
	if !errors.Is(err, tether.ErrUnavailable) || errors.Is(err, tether.ErrInvalidToken) {
		t.Errorf("Exchange with the store down: got %v, want ErrUnavailable and no refusal", err)
	}
	if err := m.Ping(t.Context()); !errors.Is(err, tether.ErrUnavailable) {
		t.Errorf("Ping while down: got %v, want ErrUnavailable", err)
	}
}

// TestReservedSubjects: the reserved namespace is out of reach of every
// ordinary method, and its sessions are good only through ValidateReserved.
func TestReservedSubjects(t *testing.T) {
	e := newEnv(t, tether.Config{}, true)
	ctx := t.Context()
	const console = tether.ReservedSubjectPrefix + "console"
	for name, call := range map[string]func() error{
		"Create":        func() error { _, _, err := e.m.Create(ctx, tether.CreateParams{Subject: console}); return err },
		"List":          func() error { _, err := e.m.List(ctx, console); return err },
		"RevokeSubject": func() error { _, err := e.m.RevokeSubject(ctx, console, ""); return err },
		"SetRoles":      func() error { return e.m.SetRoles(ctx, console, []string{"admin"}) },
		"Roles":         func() error { _, err := e.m.Roles(ctx, console); return err },
		"CreateReserved of an ordinary subject": func() error {
			_, _, err := e.m.CreateReserved(ctx, tether.CreateParams{Subject: "alice"})
			return err
		},
	} {
		if err := call(); !errors.Is(err, tether.ErrBadInput) {
			t.Errorf("%s: got %v, want ErrBadInput", name, err)
		}
	}

	token, sess, err := e.m.CreateReserved(ctx, tether.CreateParams{Subject: console, Roles: []string{"smuggled"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Roles) != 0 {
		t.Errorf("CreateReserved set roles %v", sess.Roles)
	}
	if got, err := e.m.ValidateReserved(ctx, console, token); err != nil || got.ID != sess.ID {
		t.Fatalf("ValidateReserved: got %v, %v", got, err)
	}
	for name, call := range map[string]func() error{
		"Validate": func() error { _, err := e.m.Validate(ctx, token); return err },
		"Rotate":   func() error { _, _, err := e.m.Rotate(ctx, token); return err },
		"ValidateReserved of another": func() error {
			_, err := e.m.ValidateReserved(ctx, tether.ReservedSubjectPrefix+"other", token)
			return err
		},
	} {
		if err := call(); !errors.Is(err, tether.ErrInvalidToken) {
			t.Errorf("%s of a reserved session: got %v, want ErrInvalidToken", name, err)
		}
	}
	if _, err := e.m.Get(ctx, sess.ID); !errors.Is(err, tether.ErrNotFound) {
		t.Errorf("Get of a reserved session: got %v, want ErrNotFound", err)
	}
	user, _ := e.create(t, "alice")
	if _, err := e.m.ValidateReserved(ctx, console, user); !errors.Is(err, tether.ErrInvalidToken) {
		t.Errorf("ValidateReserved of a user's token: got %v, want ErrInvalidToken", err)
	}
	if err := e.m.Revoke(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.ValidateReserved(ctx, console, token); !errors.Is(err, tether.ErrInvalidToken) {
		t.Errorf("ValidateReserved after Revoke: got %v, want ErrInvalidToken", err)
	}
}

func TestPublicMessage(t *testing.T) {
	_, _, err := newEnv(t, tether.Config{}, false).m.Create(t.Context(), tether.CreateParams{Subject: ""})
	wrapped := fmt.Errorf("creating: %w", err)
	msg, ok := tether.PublicMessage(wrapped)
	if !ok || msg != "subject must be 1 to 256 bytes" || !errors.Is(wrapped, tether.ErrBadInput) {
		t.Errorf("PublicMessage(%v) = %q, %v; want the bare reason, and ErrBadInput kept", wrapped, msg, ok)
	}
	if msg, ok := tether.PublicMessage(tether.ErrUnavailable); ok {
		t.Errorf("PublicMessage of a plain sentinel = %q, want none", msg)
	}
}

// TestExchangeRevokedOrigin: a handshake minted before its origin was
// revoked (TombstoneOrigin), and exchanged after the sessions derived from
// that origin were swept, is refused and leaves no session; one minted
// after the revocation, from the session kept, from another origin, or
// once the tombstone has expired, is exchanged.
func TestExchangeRevokedOrigin(t *testing.T) {
	const iss = "https://a.example"
	type tombstone struct {
		o    tether.Origin
		keep string
		at   time.Duration // before now
	}
	oneSession := tombstone{tether.Origin{Issuer: iss, Subject: "alice", SessionID: "sid-1"}, "", 5 * time.Second}
	everySession := tombstone{tether.Origin{Issuer: iss, Subject: "alice"}, "", 5 * time.Second}
	allButSID2 := tombstone{tether.Origin{Issuer: iss, Subject: "alice"}, "sid-2", 5 * time.Second}
	tests := []struct {
		name      string
		tomb      tombstone
		sid       string
		minted    time.Duration // before now
		refused   bool
		unguarded bool // the issuer is not guarded (GuardOrigin)
	}{
		{"from the revoked session", oneSession, "sid-1", 10 * time.Second, true, false},
		{"from another session", oneSession, "sid-2", 10 * time.Second, false, false},
		{"minted before every session was revoked", everySession, "sid-2", 10 * time.Second, true, false},
		{"minted a second before every session was revoked", everySession, "sid-2", 6 * time.Second, true, false},
		{"minted in the second of the revocation: maybe a new login", everySession, "sid-3", 5 * time.Second, false, false},
		{"minted after every session was revoked", everySession, "sid-3", 3 * time.Second, false, false},
		{"from the session kept", allButSID2, "sid-2", 10 * time.Second, false, false},
		{"from a session not kept", allButSID2, "sid-1", 10 * time.Second, true, false},
		{"another issuer's subject alice", tombstone{tether.Origin{Issuer: "https://c.example", Subject: "alice"}, "", 5 * time.Second}, "sid-1", 10 * time.Second, false, false},
		{"after the tombstone expired", tombstone{oneSession.o, "", tether.HandshakeWindow + time.Second}, "sid-1", tether.HandshakeWindow + 2*time.Second, false, false},
		{"of an issuer not guarded", oneSession, "sid-1", 10 * time.Second, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tether.Config{}, false)
			if !tt.unguarded {
				e.m.GuardOrigin(iss)
			}
			now := e.clock.Now()
			if err := e.m.TombstoneOrigin(t.Context(), tt.tomb.o, tt.tomb.keep, now.Add(-tt.tomb.at)); err != nil {
				t.Fatal(err)
			}
			v := &fakeVerifier{handshakes: map[string]tether.Handshake{"h": {Issuer: iss, Subject: "alice", IssuerSubject: "alice",
				SessionID: tt.sid, ID: "j1", IssuedAt: now.Add(-tt.minted).Truncate(time.Second)}}}
			token, sess, err := e.m.Exchange(t.Context(), v, "h", tether.ExchangeParams{})
			if tt.refused {
				if !errors.Is(err, tether.ErrInvalidToken) || token != "" || sess != nil {
					t.Fatalf("Exchange: got %v, %v; want ErrInvalidToken and nothing else", sess, err)
				}
				if list, err := e.m.List(t.Context(), "alice"); err != nil || len(list) != 0 {
					t.Fatalf("sessions of alice after the refusal: got %d, %v; want none", len(list), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if _, err := e.m.Validate(t.Context(), token); err != nil {
				t.Fatalf("the new token: %v", err)
			}
		})
	}
}

// TestTombstoneOriginOncePerRevocation: a SET delivered again (a retry, a
// replay) leaves the one tombstone of its revocation, not one per copy for
// every exchange to read.
func TestTombstoneOriginOncePerRevocation(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	var tombs []*tether.Record
	e.store.beforeCreate = func(r *tether.Record) { tombs = append(tombs, r) }
	o := tether.Origin{Issuer: "https://a.example", Subject: "alice"}
	at := e.clock.Now()
	for range 50 {
		if err := e.m.TombstoneOrigin(t.Context(), o, "", at); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.m.TombstoneOrigin(t.Context(), o, "", at.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	kept, err := e.mem.List(t.Context(), tombs[0].Subject)
	if err != nil || len(kept) != 2 {
		t.Fatalf("%d tombstones kept (%v), want 2: one per revocation", len(kept), err)
	}
}

// TestTombstoneOriginRefuses: bad input is refused and writes nothing.
func TestTombstoneOriginRefuses(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	for _, tt := range []struct {
		name string
		o    tether.Origin
		keep string
	}{
		{"no issuer", tether.Origin{Subject: "alice"}, ""},
		{"no subject", tether.Origin{Issuer: "https://a.example"}, ""},
		{"kept beside one session", tether.Origin{Issuer: "https://a.example", Subject: "alice", SessionID: "s1"}, "s2"},
		{"too long", tether.Origin{Issuer: "https://a.example", Subject: string(make([]byte, 1025))}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writes := e.store.writes.Load()
			if err := e.m.TombstoneOrigin(t.Context(), tt.o, tt.keep, e.clock.Now()); !errors.Is(err, tether.ErrBadInput) {
				t.Fatalf("got %v, want ErrBadInput", err)
			}
			if n := e.store.writes.Load(); n != writes {
				t.Errorf("%d store writes, want none", n-writes)
			}
		})
	}
}
