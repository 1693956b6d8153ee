package tether_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
)

// A Go service receives a handshake without a Tether server: the Manager
// verifies the token with the service's handshake.Verifier, consumes it once
// in its store, and starts the service's own opaque session. The browser's
// previous session, if it brought one, ends.
func ExampleManager_Exchange() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "exchange-example")
	defer os.RemoveAll(dir)
	key := make([]byte, 32)
	rand.Read(key)
	os.WriteFile(filepath.Join(dir, "a-to-b.key"), []byte(base64.RawURLEncoding.EncodeToString(key)), 0o600)

	// Service A mints a token for B (a Tether server does it at POST /v1/handshakes).
	spec := handshake.Config{
		Audiences: map[string]handshake.AudienceSpec{
			"https://b.example": {Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: "a-to-b.key"},
		},
		TrustedIssuers: []handshake.IssuerSpec{
			{Issuer: "https://a.example", Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: "a-to-b.key"},
		},
	}
	minter, err := handshake.NewMinter("https://a.example", spec, nil, dir, handshake.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	raw, _, _, err := minter.Mint("https://b.example", "alice")
	if err != nil {
		fmt.Println(err)
		return
	}

	// Service B trusts A, pinned to HS256, and keeps its sessions in a Manager.
	verifier, err := handshake.NewVerifier("https://b.example", spec, dir, handshake.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	m := newExampleManager()
	defer m.Close()
	old, _, _ := m.Create(ctx, tether.CreateParams{Subject: "someone"}) // a cookie the browser already had

	receive := func() {
		token, sess, err := m.Exchange(ctx, verifier, raw, tether.ExchangeParams{
			Metadata: map[string]string{"ip": "192.0.2.1"}, Replaces: old,
		})
		switch {
		case errors.Is(err, tether.ErrInvalidToken):
			fmt.Println("401, logged as", handshake.Reason(err)) // one answer; the reason is for logs
			return
		case err != nil:
			fmt.Println("503") // the store could not decide: fail closed
			return
		}
		fmt.Println("201:", sess.Subject, "by", sess.AuthMethod, "from", sess.Metadata["handshake_issuer"])
		if _, err := m.Validate(ctx, token); err == nil {
			fmt.Println("B's own opaque token works")
		}
		if _, err := m.Validate(ctx, old); err != nil {
			fmt.Println("the browser's previous session has ended")
		}
	}
	receive()
	receive() // the same token again is a replay
	// Output:
	// 201: alice by handshake from https://a.example
	// B's own opaque token works
	// the browser's previous session has ended
	// 401, logged as replayed
}
