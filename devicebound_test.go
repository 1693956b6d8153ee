package tether_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/dbsc"
)

const (
	testJKT  = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	otherJKT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
)

// TestDeviceBoundCookieLife: use never slides a DBSC-bound session, cached
// or not; only RefreshDevice with its key does, and it rotates the token.
func TestDeviceBoundCookieLife(t *testing.T) {
	for _, cached := range []bool{false, true} {
		staleness := -time.Second
		if cached {
			staleness = time.Hour // a hit must not skip the check
		}
		e := newEnv(t, tether.Config{DBSCCookieLifetime: 10 * time.Minute, MaxStaleness: staleness}, false)
		ctx := context.Background()
		token, _ := e.create(t, "alice")
		bound, sess, err := e.m.BindDevice(ctx, token, testJKT)
		if err != nil || sess.DBSC != testJKT || !sess.DeviceBound() {
			t.Fatalf("BindDevice: %+v, %v", sess, err)
		}
		if _, err := e.m.Validate(ctx, token); !errors.Is(err, tether.ErrInvalidToken) {
			t.Fatalf("unbound token after binding: %v", err)
		}
		for _, step := range []time.Duration{0, 3 * time.Minute, 3 * time.Minute, 3 * time.Minute} {
			e.clock.Advance(step)
			if _, err := e.m.Validate(ctx, bound); err != nil {
				t.Fatalf("cached=%t: within its life: %v", cached, err)
			}
		}
		e.clock.Advance(time.Minute) // 10m since binding, though used a minute ago
		if _, err := e.m.Validate(ctx, bound); !errors.Is(err, tether.ErrInvalidToken) || !errors.Is(err, tether.ErrRefreshRequired) {
			t.Fatalf("cached=%t: past its life: %v", cached, err)
		}

		c, err := e.m.DeviceChallenge(ctx, sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.m.RefreshDevice(ctx, sess.ID, otherJKT, c); !errors.Is(err, tether.ErrInvalidToken) {
			t.Fatalf("refresh by another key: %v", err)
		}
		renewed, s2, err := e.m.RefreshDevice(ctx, sess.ID, testJKT, c)
		if err != nil || s2.ID != sess.ID {
			t.Fatalf("RefreshDevice: %v", err)
		}
		if _, _, err := e.m.RefreshDevice(ctx, sess.ID, testJKT, c); !errors.Is(err, dbsc.ErrChallenge) {
			t.Fatalf("challenge used twice: %v", err)
		}
		if _, err := e.m.Validate(ctx, renewed); err != nil {
			t.Fatalf("renewed token: %v", err)
		}
		e.clock.Advance(9 * time.Minute)
		if _, err := e.m.Validate(ctx, renewed); err != nil {
			t.Fatalf("renewed token within its life: %v", err)
		}
		e.clock.Advance(time.Minute)
		if _, err := e.m.Validate(ctx, renewed); !errors.Is(err, tether.ErrRefreshRequired) {
			t.Fatalf("renewed token past its life: %v", err)
		}
	}
}

func TestBindDeviceRefusals(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	ctx := context.Background()
	token, _ := e.create(t, "alice")
	dpopToken, _, err := e.m.Create(ctx, tether.CreateParams{Subject: "alice", JKT: otherJKT})
	if err != nil {
		t.Fatal(err)
	}
	bound, sess, err := e.m.BindDevice(ctx, token, testJKT)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, token, jkt string
		want             error
	}{
		{"bad thumbprint", bound, "short", tether.ErrBadInput},
		{"already bound by DBSC", bound, otherJKT, tether.ErrInvalidToken},
		{"bound by DPoP", dpopToken, testJKT, tether.ErrInvalidToken},
		{"unknown token", "tthr_x", testJKT, tether.ErrInvalidToken},
	} {
		if _, _, err := e.m.BindDevice(ctx, c.token, c.jkt); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// A challenge dies with the secret it was made for.
	c, _ := e.m.DeviceChallenge(ctx, sess.ID)
	if _, _, err := e.m.Rotate(ctx, bound); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.m.RefreshDevice(ctx, sess.ID, testJKT, c); !errors.Is(err, dbsc.ErrChallenge) {
		t.Errorf("challenge after a rotation: %v", err)
	}
	if _, err := e.m.DeviceChallenge(ctx, tether.NewID()); !errors.Is(err, tether.ErrNotFound) {
		t.Errorf("challenge for an unknown session: %v", err)
	}
	plain, _ := e.create(t, "bob")
	s, _ := e.m.Validate(ctx, plain)
	if _, err := e.m.DeviceChallenge(ctx, s.ID); !errors.Is(err, tether.ErrNotFound) {
		t.Errorf("challenge for an unbound session: %v", err)
	}
}

// TestBindDeviceUnderSessionCap: binding replaces a session, so at the cap it
// must not sign out another device.
func TestBindDeviceUnderSessionCap(t *testing.T) {
	e := newEnv(t, tether.Config{MaxSessionsPerSubject: 2}, false)
	ctx := context.Background()
	other, _ := e.create(t, "alice")
	e.clock.Advance(time.Second)
	token, _ := e.create(t, "alice")
	if _, _, err := e.m.BindDevice(ctx, token, testJKT); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Validate(ctx, other); err != nil {
		t.Fatalf("the other device's session after a binding at the cap: %v", err)
	}
	if list, _ := e.m.List(ctx, "alice"); len(list) != 2 {
		t.Fatalf("%d sessions, want 2", len(list))
	}
}

// TestBindDeviceKeepsOrigin: the bound session that replaces one signed in
// through a provider keeps its origin, so the provider's logout (by sid, or
// by sub) still ends it.
func TestBindDeviceKeepsOrigin(t *testing.T) {
	origin := tether.Origin{Issuer: "https://idp.example", Subject: "alice", SessionID: "sid-1"}
	for _, tt := range []struct {
		name   string
		revoke func(m *tether.Manager) (int, error)
	}{
		{"by sid alone", func(m *tether.Manager) (int, error) {
			return m.RevokeOriginSession(context.Background(), origin.Issuer, origin.SessionID)
		}},
		{"by sub", func(m *tether.Manager) (int, error) {
			return m.RevokeOrigin(context.Background(), "idp:alice", tether.Origin{Issuer: origin.Issuer, Subject: origin.Subject})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tether.Config{}, false)
			token, _, err := e.m.Create(t.Context(), tether.CreateParams{Subject: "idp:alice", Origin: origin})
			if err != nil {
				t.Fatal(err)
			}
			bound, sess, err := e.m.BindDevice(t.Context(), token, testJKT)
			if err != nil {
				t.Fatal(err)
			}
			if sess.Origin == nil || *sess.Origin != origin {
				t.Fatalf("bound session's origin: got %+v, want %+v", sess.Origin, origin)
			}
			if n, err := tt.revoke(e.m); err != nil || n != 1 {
				t.Fatalf("revoke: got %d, %v; want the bound session", n, err)
			}
			if _, err := e.m.Validate(t.Context(), bound); !errors.Is(err, tether.ErrInvalidToken) {
				t.Fatalf("the bound token after the logout: %v, want ErrInvalidToken", err)
			}
		})
	}
}

// TestBindDeviceRacingRevocation: a revocation (a logout, an admin) that
// ends the session between BindDevice's check and its write of the bound
// copy ends the binding too; the copy must not outlive what it replaced.
func TestBindDeviceRacingRevocation(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	token, old := e.create(t, "alice")
	e.store.beforeCreate = func(r *tether.Record) {
		if r.DBSC != "" {
			if err := e.m.Revoke(context.Background(), old.ID); err != nil {
				t.Errorf("the racing revocation: %v", err)
			}
		}
	}
	bound, _, err := e.m.BindDevice(t.Context(), token, testJKT)
	if !errors.Is(err, tether.ErrInvalidToken) {
		t.Fatalf("BindDevice over a session revoked meanwhile: %v, want ErrInvalidToken", err)
	}
	if list, _ := e.m.List(t.Context(), "alice"); len(list) != 0 {
		t.Fatalf("%d sessions left, want none (bound token %q)", len(list), bound)
	}
}
