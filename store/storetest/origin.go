package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

// fakeHandshakes is a hand-written HandshakeVerifier: each token names the
// handshake it stands for, so the test picks every session's origin.
type fakeHandshakes map[string]tether.Handshake

func (f fakeHandshakes) ConsumeHandshake(ctx context.Context, raw string, guard tether.ReplayGuard) (*tether.Handshake, error) {
	h, ok := f[raw]
	if !ok {
		return nil, tether.ErrInvalidToken
	}
	if err := guard.Consume(ctx, "fake:"+h.ID, time.Now().Add(time.Minute)); err != nil {
		return nil, err
	}
	return &h, nil
}

// testRevokeOrigin: the sessions made from another service's handshakes keep
// their origin in the store, and RevokeOrigin ends exactly those that match.
func testRevokeOrigin(t *testing.T, s tether.Store) {
	m, err := tether.NewManager(tether.Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	sub := subject(t)
	const a, x = "https://a.example", "https://x.example"
	hs := fakeHandshakes{
		"a1":  {Issuer: a, Subject: sub, IssuerSubject: "alice", SessionID: "sid-1"},
		"a2":  {Issuer: a, Subject: sub, IssuerSubject: "alice", SessionID: "sid-2"},
		"a3":  {Issuer: a, Subject: sub, IssuerSubject: "alice", SessionID: "sid-3"},
		"x1":  {Issuer: x, Subject: sub, IssuerSubject: "alice", SessionID: "sid-1"},
		"bob": {Issuer: a, Subject: sub, IssuerSubject: "bob", SessionID: "sid-9"},
	}
	ids := map[string]string{}
	for tok, h := range hs {
		h.ID, h.IssuedAt = tok+"-"+sub, time.Now()
		hs[tok] = h
		_, sess, err := m.Exchange(ctx, hs, tok, tether.ExchangeParams{})
		if err != nil {
			t.Fatalf("Exchange(%s): %v", tok, err)
		}
		want := tether.Origin{Issuer: h.Issuer, Subject: h.IssuerSubject, SessionID: h.SessionID}
		if sess.Origin == nil || *sess.Origin != want {
			t.Fatalf("Exchange(%s).Origin = %+v, want %+v", tok, sess.Origin, want)
		}
		got, err := m.Get(ctx, sess.ID)
		if err != nil || got.Origin == nil || *got.Origin != want {
			t.Fatalf("Get(%s).Origin = %+v, %v; want %+v from the store", tok, got, err, want)
		}
		ids[tok] = sess.ID
	}
	_, local, err := m.Create(ctx, tether.CreateParams{Subject: sub})
	if err != nil {
		t.Fatal(err)
	}
	ids["local"] = local.ID
	steps := []struct {
		origin tether.Origin
		n      int
		ended  []string
	}{
		{tether.Origin{Issuer: a, Subject: "alice", SessionID: "sid-1"}, 1, []string{"a1"}},
		{tether.Origin{Issuer: a, Subject: "alice", SessionID: "sid-1"}, 0, nil},
		{tether.Origin{Issuer: a, Subject: "alice"}, 2, []string{"a2", "a3"}},
	}
	gone := map[string]bool{}
	for i, st := range steps {
		n, err := m.RevokeOrigin(ctx, sub, st.origin)
		if err != nil || n != st.n {
			t.Fatalf("step %d: RevokeOrigin(%+v) = %d, %v; want %d", i, st.origin, n, err, st.n)
		}
		for _, tok := range st.ended {
			gone[tok] = true
		}
		for tok, id := range ids {
			_, err := m.Get(ctx, id)
			if live := err == nil; live == gone[tok] {
				t.Fatalf("step %d: session %s live = %v (err %v), want %v", i, tok, live, err, !gone[tok])
			}
		}
	}
	if _, err := m.RevokeOrigin(ctx, sub, tether.Origin{Issuer: a}); !errors.Is(err, tether.ErrBadInput) {
		t.Fatalf("RevokeOrigin without a subject = %v, want ErrBadInput", err)
	}
}
