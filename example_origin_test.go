package tether_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
)

// A session made from a handshake remembers where it came from: the minting
// service, subject and session (the token's sid). When that service revokes
// its session (an SSF session-revoked event names it), RevokeOrigin ends
// exactly the sessions derived from it; the subject's other sessions stay.
func ExampleManager_RevokeOrigin() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "origin-example")
	defer os.RemoveAll(dir)
	key := make([]byte, 32)
	rand.Read(key)
	os.WriteFile(filepath.Join(dir, "a-to-b.key"), []byte(base64.RawURLEncoding.EncodeToString(key)), 0o600)
	spec := handshake.Config{
		Audiences: map[string]handshake.AudienceSpec{
			"https://b.example": {Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: "a-to-b.key"},
		},
		TrustedIssuers: []handshake.IssuerSpec{
			{Issuer: "https://a.example", Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: "a-to-b.key"},
		},
	}
	minter, _ := handshake.NewMinter("https://a.example", spec, nil, dir, handshake.Options{})
	verifier, _ := handshake.NewVerifier("https://b.example", spec, dir, handshake.Options{})
	m := newExampleManager()
	defer m.Close()

	// A mints from two of alice's sessions at A; B exchanges both.
	var derived []*tether.Session
	for _, sid := range []string{"a-session-1", "a-session-2"} {
		raw, _, _, _ := minter.Mint("https://b.example", "alice", handshake.WithSessionID(sid))
		_, sess, err := m.Exchange(ctx, verifier, raw, tether.ExchangeParams{})
		if err != nil {
			fmt.Println(err)
			return
		}
		derived = append(derived, sess)
	}
	fmt.Printf("origin: %+v\n", *derived[0].Origin)

	// A revokes a-session-1.
	n, err := m.RevokeOrigin(ctx, "alice", tether.Origin{Issuer: "https://a.example", Subject: "alice", SessionID: "a-session-1"})
	fmt.Println("ended:", n, err)
	for _, s := range derived {
		_, err := m.Get(ctx, s.ID)
		fmt.Println(s.Origin.SessionID, "live:", err == nil)
	}
	// Output:
	// origin: {Issuer:https://a.example Subject:alice SessionID:a-session-1}
	// ended: 1 <nil>
	// a-session-1 live: false
	// a-session-2 live: true
}
