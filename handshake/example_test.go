package handshake_test

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
	"github.com/tetherhq/tether/store/memstore"
)

// A Go service receives handshakes in-process, with the library alone and no
// Tether server: a handshake.Verifier checks the token, the Manager's store
// consumes its jti (so that every node sharing the store accepts it once),
// and the Manager starts the service's own opaque session.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "handshake-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(dir, "a-to-b.key"), []byte(base64.RawURLEncoding.EncodeToString(key)), 0o600); err != nil {
		fmt.Println(err)
		return
	}

	// Service A mints a token for audience B with the shared key (a Tether
	// server does this at POST /v1/handshakes).
	minter, err := handshake.NewMinter("https://a.example", handshake.Config{
		Audiences: map[string]handshake.AudienceSpec{
			"https://b.example": {Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: "a-to-b.key"},
		},
	}, nil, dir, handshake.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	raw, _, _, err := minter.Mint("https://b.example", "alice")
	if err != nil {
		fmt.Println(err)
		return
	}

	// Service B trusts A with the same key, pinned to HS256, and keeps its
	// sessions in a Manager.
	verifier, err := handshake.NewVerifier("https://b.example", handshake.Config{
		TrustedIssuers: []handshake.IssuerSpec{
			{Issuer: "https://a.example", Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: "a-to-b.key"},
		},
	}, dir, handshake.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	st := memstore.New()
	defer st.Close()
	m, err := tether.NewManager(tether.Config{Store: st})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	// receive is B's handler: one undifferentiated 401 for every refusal,
	// the reason only for B's logs and metrics.
	receive := func(raw string) {
		claims, err := verifier.Exchange(ctx, raw, m)
		if errors.Is(err, handshake.ErrInvalid) {
			fmt.Println("401, logged as", handshake.Reason(err))
			return
		}
		if err != nil { // the store could not decide: fail closed
			fmt.Println("503")
			return
		}
		token, sess, err := m.Create(ctx, tether.CreateParams{
			Subject: claims.Subject, AuthTime: claims.IssuedAt, AuthMethod: "handshake",
			Metadata: map[string]string{"handshake_issuer": claims.Issuer},
		})
		if err != nil {
			fmt.Println("503")
			return
		}
		fmt.Println("201: session for", sess.Subject, "by", sess.AuthMethod, "from", sess.Metadata["handshake_issuer"])
		if _, err := m.Validate(ctx, token); err == nil {
			fmt.Println("B's own opaque token works")
		}
	}
	receive(raw)
	receive(raw) // the same token again is a replay
	// Output:
	// 201: session for alice by handshake from https://a.example
	// B's own opaque token works
	// 401, logged as replayed
}
