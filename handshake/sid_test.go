package handshake

import (
	"context"
	"slices"
	"testing"
)

// TestHandshakeOrigin: the minting session's ID (sid) and the issuer's own
// subject come out of the exchange in every format, as the origin of the
// receiver's session.
func TestHandshakeOrigin(t *testing.T) {
	e := newEnv(t)
	for _, alg := range allAlgs {
		tok, _, _, err := e.minters[alg].Mint(audB, "alice", WithSessionID("sess-1"))
		if err != nil {
			t.Fatalf("Mint(%s): %v", alg, err)
		}
		h, err := e.verifier.ConsumeHandshake(context.Background(), tok, newMemGuard(e.clock.Now))
		if err != nil || h.SessionID != "sess-1" || h.IssuerSubject != "alice" || h.Issuer != issuerA {
			t.Errorf("%s: got %+v, %v; want sid sess-1 of alice at %s", alg, h, err, issuerA)
		}
	}
	if c, err := e.verifier.Verify(context.Background(), e.mint(t, AlgHS256)); err != nil || c.SessionID != "" {
		t.Errorf("without sid: got %+v, %v; want an empty SessionID", c, err)
	}
}

// TestLocalSubjects: an issuer's subject maps to this node's subjects by
// each distinct prefix it is trusted with; an untrusted issuer to none.
func TestLocalSubjects(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		issuer string
		want   []string
	}{
		{issuerA, []string{"alice", issuerA + "|alice"}}, // shared keys: no prefix; public keys: "<issuer>|"
		{issuerX, []string{issuerX + "|alice"}},
		{"https://unknown.example", nil},
	}
	for _, tt := range tests {
		got := e.verifier.LocalSubjects(tt.issuer, "alice")
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("LocalSubjects(%s) = %q, want %q", tt.issuer, got, tt.want)
		}
	}
}
