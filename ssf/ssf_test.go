package ssf

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/store/memstore"
)

// TestFromEvent: which events become SETs, with which subject identifier
// (RFC 9493) and CAEP event.
func TestFromEvent(t *testing.T) {
	const iss, aud = "https://a.example", "https://b.example"
	now := time.Unix(1_700_000_000, 0)
	user := &SubjectID{Format: "iss_sub", Issuer: iss, Subject: "alice"}
	tests := []struct {
		name  string
		event tether.Event
		want  string // the event type; "" for none
		sub   *SubjectID
		kept  *SubjectID // the ClaimKeptSession member, if any
	}{
		{"one session revoked", tether.Event{Type: tether.EventSessionRevoked, Subject: "alice", SessionID: "s1", Actor: tether.Actor{Kind: tether.ActorAdmin}},
			EventSessionRevoked, &SubjectID{Format: "complex", Session: &SubjectID{Format: "opaque", ID: "s1"}, User: user}, nil},
		{"every session revoked", tether.Event{Type: tether.EventSubjectRevoked, Subject: "alice"}, EventSessionRevoked, user, nil},
		{"every session but one revoked", tether.Event{Type: tether.EventSubjectRevoked, Subject: "alice", Detail: map[string]any{"kept_session_id": "s2"}},
			EventSessionRevoked, user, &SubjectID{Format: "opaque", ID: "s2"}},
		{"roles changed", tether.Event{Type: tether.EventRolesChanged, Subject: "alice", Detail: map[string]any{"roles": []string{"x"}}}, EventTokenClaimsChange, user, nil},
		{"created", tether.Event{Type: tether.EventSessionCreated, Subject: "alice", SessionID: "s1"}, "", nil, nil},
		{"reserved subject", tether.Event{Type: tether.EventSubjectRevoked, Subject: tether.ReservedSubjectPrefix + "console"}, "", nil, nil},
		{"no subject", tether.Event{Type: tether.EventHandshakeRefused}, "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.event.ID = "evt_1"
			c, ok := fromEvent(iss, aud, &tt.event, now)
			if !ok {
				if tt.want != "" {
					t.Fatalf("no SET, want %s", tt.want)
				}
				return
			}
			if tt.want == "" {
				t.Fatalf("got a SET %+v, want none", c)
			}
			if _, has := c.Events[tt.want]; !has || len(c.Events) != 1 || c.ID != "evt_1" || c.Issuer != iss || c.Audience != aud || c.IssuedAt != now.Unix() {
				t.Fatalf("got %+v, want one %s event, jti evt_1", c, tt.want)
			}
			if got, want := jsonOf(c.SubID), jsonOf(tt.sub); got != want {
				t.Fatalf("sub_id: got %s, want %s", got, want)
			}
			kept, has := c.Events[tt.want][ClaimKeptSession]
			if got, want := jsonOf(kept), jsonOf(tt.kept); has != (tt.kept != nil) || got != want {
				t.Fatalf("%s: got %s, want %s", ClaimKeptSession, got, want)
			}
		})
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// testReceiver is a receiver on st trusting one transmitter whose JWKS is
// served from a key ring, and a signer with that ring.
func testReceiver(t testing.TB, st tether.Store) (*Receiver, signer, string) {
	ring, err := handshake.LoadKeyRing(filepath.Join(t.TempDir(), "keys"), handshake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(jwksHandler(ring))
	t.Cleanup(srv.Close)
	m, err := tether.NewManager(tether.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	const secret = "push-secret-0123456789"
	r, err := NewReceiver(ReceiverConfig{
		Audience: "https://b.example", Manager: m,
		Transmitters:  []TrustedTransmitter{{Issuer: "https://a.example", JWKSURL: srv.URL, Authorization: secret}},
		LocalSubjects: func(iss, sub string) []string { return []string{sub} },
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, signer{ring: ring, alg: handshake.AlgEdDSA}, "Bearer " + secret
}

// FuzzReceive: whatever the body of a push, the receiver answers with an RFC
// 8935 refusal or accepts a SET the transmitter signed, never panics and
// never fails for another reason (the store here cannot fail).
func FuzzReceive(f *testing.F) {
	r, s, auth := testReceiver(f, memstore.New())
	valid, err := s.sign(&Claims{Issuer: "https://a.example", Audience: "https://b.example", IssuedAt: time.Now().Unix(), ID: "j1",
		SubID: &SubjectID{Format: "iss_sub", Issuer: "https://a.example", Subject: "alice"}, Events: map[string]map[string]any{EventSessionRevoked: {}}})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{valid, "", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", valid[:len(valid)/2], valid + "x"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, err := r.Receive(context.Background(), auth, ContentType, raw)
		var re *RefusedError
		if err != nil && !errors.As(err, &re) {
			t.Fatalf("Receive: %v; want a refusal or success", err)
		}
	})
}

// jwksHandler serves a key ring's JWKS.
func jwksHandler(ring *handshake.KeyRing) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(ring.JWKS())
	})
}

// TestHandshakeWindow: a tombstone outlives every handshake it may refuse,
// minted before the revocation and accepted until exp plus leeway.
func TestHandshakeWindow(t *testing.T) {
	if longest := handshake.MaxTTL + handshake.MaxLeeway; tether.HandshakeWindow < longest {
		t.Fatalf("tether.HandshakeWindow is %v, shorter than the longest a handshake is accepted, %v", tether.HandshakeWindow, longest)
	}
}
