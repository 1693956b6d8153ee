package ssf

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/memstore"
)

// TestReceiveRetriedAfterStoreFailure: a SET whose revocation the store
// fails is answered with a store error (503, so the transmitter retries),
// its jti left unconsumed; the retry revokes, and only a later copy is
// refused as a replay.
func TestReceiveRetriedAfterStoreFailure(t *testing.T) {
	st := &servicetest.FailingDeletes{Store: memstore.New()}
	r, s, auth := testReceiver(t, st)
	m := r.cfg.Manager
	token, _, err := m.Create(t.Context(), tether.CreateParams{Subject: "alice",
		Origin: tether.Origin{Issuer: "https://a.example", Subject: "alice", SessionID: "sid-1"}})
	if err != nil {
		t.Fatal(err)
	}
	user := &SubjectID{Format: "iss_sub", Issuer: "https://a.example", Subject: "alice"}
	set, err := s.sign(&Claims{Issuer: "https://a.example", Audience: "https://b.example", IssuedAt: time.Now().Unix(), ID: "evt-1",
		SubID:  &SubjectID{Format: "complex", Session: &SubjectID{Format: "opaque", ID: "sid-1"}, User: user},
		Events: map[string]map[string]any{EventSessionRevoked: {}}})
	if err != nil {
		t.Fatal(err)
	}

	st.Down.Store(true)
	var re *RefusedError
	if _, err := r.Receive(t.Context(), auth, ContentType, []byte(set)); err == nil || errors.As(err, &re) || !errors.Is(err, tether.ErrUnavailable) {
		t.Fatalf("with the store failing: got %v, want a store error (503)", err)
	}
	st.Down.Store(false)
	if _, err := m.Validate(t.Context(), token); err != nil {
		t.Fatalf("the session after the failed revocation: %v, want it still live (nothing committed)", err)
	}

	out, err := r.Receive(t.Context(), auth, ContentType, []byte(set))
	if err != nil || out.Revoked != 1 {
		t.Fatalf("the transmitter's retry: got %+v, %v; want 1 session revoked", out, err)
	}
	if _, err := m.Validate(t.Context(), token); !errors.Is(err, tether.ErrInvalidToken) {
		t.Fatalf("the session after the retry: %v, want ErrInvalidToken", err)
	}
	if _, err := r.Receive(t.Context(), auth, ContentType, []byte(set)); !errors.As(err, &re) || re.Code != ErrCodeInvalidRequest {
		t.Fatalf("a copy after success: got %v, want refused as a replay", err)
	}
	page, err := m.Events(t.Context(), tether.EventQuery{Type: tether.EventSSFReceived})
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("ssf.received events: got %d, %v; want exactly 1", len(page.Events), err)
	}
}

// TestPrivilegeGainSparesNewSession: at A (sessions.on_privilege_gain:
// revoke) a session created with a role its subject lacked ends the
// subject's other sessions, not itself; the SET A sends for that makes B end
// what it derived from the others and spare what it derived from the new
// one, which B may have made before the SET arrives (a late delivery).
func TestPrivilegeGainSparesNewSession(t *testing.T) {
	a, err := tether.NewManager(tether.Config{Store: memstore.New(), OnPrivilegeGain: tether.PrivilegeGainRevoke})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	_, old, err := a.Create(t.Context(), tether.CreateParams{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	_, gained, err := a.Create(t.Context(), tether.CreateParams{Subject: "alice", Roles: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	page, err := a.Events(t.Context(), tether.EventQuery{Type: tether.EventSubjectRevoked})
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("subject.revoked events at A: %+v, %v; want the privilege gain's alone", page.Events, err)
	}
	claims, ok := fromEvent("https://a.example", "https://b.example", &page.Events[0], time.Now())
	if !ok {
		t.Fatalf("no SET for %+v", page.Events[0])
	}

	r, s, auth := testReceiver(t, memstore.New())
	derived := map[string]string{} // A's session ID → B's token
	for _, sid := range []string{old.ID, gained.ID} {
		token, _, err := r.cfg.Manager.Create(t.Context(), tether.CreateParams{Subject: "alice",
			Origin: tether.Origin{Issuer: "https://a.example", Subject: "alice", SessionID: sid}})
		if err != nil {
			t.Fatal(err)
		}
		derived[sid] = token
	}
	set, err := s.sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := r.Receive(t.Context(), auth, ContentType, []byte(set)); err != nil || out.Revoked != 1 {
		t.Fatalf("Receive: %+v, %v; want 1 session revoked", out, err)
	}
	for sid, token := range derived {
		_, err := r.cfg.Manager.Validate(t.Context(), token)
		if ended := sid == old.ID; ended != errors.Is(err, tether.ErrInvalidToken) {
			t.Errorf("B's session from A's %s: Validate got %v, want ended %v", sid, err, ended)
		}
	}
}

// TestReceiveKeptSession: a revocation of every session of a subject but
// one (ClaimKeptSession) ends the sessions derived from the others and
// spares those derived from the kept one; the claim anywhere else, or not
// an opaque identifier, refuses the SET and changes nothing.
func TestReceiveKeptSession(t *testing.T) {
	user := &SubjectID{Format: "iss_sub", Issuer: "https://a.example", Subject: "alice"}
	oneSession := &SubjectID{Format: "complex", Session: &SubjectID{Format: "opaque", ID: "sid-1"}, User: user}
	tests := []struct {
		name  string
		subID *SubjectID
		kept  any
		ended []string // origin sids whose derived sessions end; nil with a refusal
	}{
		{"every session but sid-2", user, &SubjectID{Format: "opaque", ID: "sid-2"}, []string{"sid-1", "sid-3"}},
		{"every session, none kept", user, nil, []string{"sid-1", "sid-2", "sid-3"}},
		{"kept beside one session", oneSession, &SubjectID{Format: "opaque", ID: "sid-2"}, nil},
		{"kept not opaque", user, &SubjectID{Format: "iss_sub", Issuer: "https://a.example", Subject: "alice"}, nil},
		{"kept not an object", user, "sid-2", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, s, auth := testReceiver(t, memstore.New())
			tokens := map[string]string{}
			for _, sid := range []string{"sid-1", "sid-2", "sid-3"} {
				token, _, err := r.cfg.Manager.Create(t.Context(), tether.CreateParams{Subject: "alice",
					Origin: tether.Origin{Issuer: "https://a.example", Subject: "alice", SessionID: sid}})
				if err != nil {
					t.Fatal(err)
				}
				tokens[sid] = token
			}
			event := map[string]any{}
			if tt.kept != nil {
				event[ClaimKeptSession] = tt.kept
			}
			set, err := s.sign(&Claims{Issuer: "https://a.example", Audience: "https://b.example", IssuedAt: time.Now().Unix(), ID: "evt-1",
				SubID: tt.subID, Events: map[string]map[string]any{EventSessionRevoked: event}})
			if err != nil {
				t.Fatal(err)
			}
			out, err := r.Receive(t.Context(), auth, ContentType, []byte(set))
			var re *RefusedError
			switch {
			case tt.ended == nil && (!errors.As(err, &re) || re.Code != ErrCodeInvalidRequest):
				t.Fatalf("got %+v, %v; want refused with invalid_request", out, err)
			case tt.ended != nil && (err != nil || out.Revoked != len(tt.ended)):
				t.Fatalf("got %+v, %v; want %d sessions revoked", out, err, len(tt.ended))
			}
			for sid, token := range tokens {
				_, err := r.cfg.Manager.Validate(t.Context(), token)
				if ended := slices.Contains(tt.ended, sid); ended != errors.Is(err, tether.ErrInvalidToken) {
					t.Errorf("session from %s: Validate got %v, want ended %v", sid, err, ended)
				}
			}
		})
	}
}
