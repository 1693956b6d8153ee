package ssf

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

// deleteFailingStore fails every session delete while failDeletes is set,
// as a store that goes away in the middle of a revocation.
type deleteFailingStore struct {
	tether.Store
	failDeletes atomic.Bool
}

func (s *deleteFailingStore) Delete(ctx context.Context, id string, evs ...tether.Event) error {
	if s.failDeletes.Load() {
		return tether.ErrUnavailable
	}
	return s.Store.Delete(ctx, id, evs...)
}

// TestReceiveRetriedAfterStoreFailure: a SET whose revocation the store
// fails is answered with a store error (503, so the transmitter retries),
// its jti left unconsumed; the retry revokes, and only a later copy is
// refused as a replay.
func TestReceiveRetriedAfterStoreFailure(t *testing.T) {
	st := &deleteFailingStore{Store: memstore.New()}
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

	st.failDeletes.Store(true)
	var re *RefusedError
	if _, err := r.Receive(t.Context(), auth, ContentType, []byte(set)); err == nil || errors.As(err, &re) || !errors.Is(err, tether.ErrUnavailable) {
		t.Fatalf("with the store failing: got %v, want a store error (503)", err)
	}
	st.failDeletes.Store(false)
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
