package handshake_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tetherhq/tether/handshake"
)

// Service A mints a single-use handshake token for service B; B verifies it
// against its trust configuration, pinned to HS256. To receive it, B hands
// the token and the Verifier to tether.Manager.Exchange, which also consumes
// it once and starts B's own opaque session (see that example): Verify alone
// does not stop a replay.
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
	verifier, err := handshake.NewVerifier("https://b.example", spec, dir, handshake.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	claims, err := verifier.Verify(ctx, raw)
	if err != nil {
		fmt.Println("401, logged as", handshake.Reason(err))
		return
	}
	fmt.Println("a handshake for", claims.Subject, "from", claims.Issuer)
	altered := []byte(raw)
	altered[len(altered)-10] ^= 1 // a different base64url character in the signature
	_, err = verifier.Verify(ctx, string(altered))
	fmt.Println("altered: refused:", errors.Is(err, handshake.ErrInvalid))
	// Output:
	// a handshake for alice from https://a.example
	// altered: refused: true
}
