package handshake_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
)

// usedTokens is a single-process ReplayGuard; a real deployment uses the
// Tether store shared by every node.
type usedTokens struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (u *usedTokens) Consume(_ context.Context, key string, until time.Time) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if exp, ok := u.seen[key]; ok && time.Now().Before(exp) {
		return tether.ErrReplayed
	}
	u.seen[key] = until
	return nil
}

// A Go service receives a handshake in-process: service A mints a token
// for it, and it exchanges the token exactly once.
func Example() {
	dir, _ := os.MkdirTemp("", "handshake-example")
	defer os.RemoveAll(dir)
	key := make([]byte, 32)
	rand.Read(key)
	os.WriteFile(filepath.Join(dir, "a-to-b.key"), []byte(base64.RawURLEncoding.EncodeToString(key)), 0o600)

	// Service A mints for audience B with the shared key.
	minter, err := handshake.NewMinter("https://a.example", handshake.Config{
		Audiences: map[string]handshake.AudienceSpec{
			"https://b.example": {Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: "a-to-b.key"},
		},
	}, nil, dir, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	token, format, _, err := minter.Mint("https://b.example", "alice")
	if err != nil {
		fmt.Println(err)
		return
	}

	// Service B trusts A with the same key, pinned to HS256.
	verifier, err := handshake.NewVerifier("https://b.example", handshake.Config{
		TrustedIssuers: []handshake.IssuerSpec{
			{Issuer: "https://a.example", Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: "a-to-b.key"},
		},
	}, dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	guard := &usedTokens{seen: make(map[string]time.Time)}
	claims, err := verifier.Exchange(context.Background(), token, guard)
	if err != nil {
		fmt.Println("401:", handshake.Reason(err))
		return
	}
	fmt.Println(format, claims.Issuer, claims.Subject)

	// The same token again is a replay: one undifferentiated 401.
	_, err = verifier.Exchange(context.Background(), token, guard)
	fmt.Println("401:", handshake.Reason(err))
	// Output:
	// jwt https://a.example alice
	// 401: replayed
}
