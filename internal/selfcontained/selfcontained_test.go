package selfcontained

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const issuer = "https://a.example"

// TestFormats: every format verifies what it minted, and refuses it when
// tampered with, expired, from another issuer's key or for another issuer.
func TestFormats(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	claims := Claims{Issuer: issuer, Subject: "alice", SessionID: "s1", Roles: []string{"admin", "dev"},
		IssuedAt: now, Expiry: now.Add(time.Minute)}
	other := Formats(issuer)
	foreign := Formats("https://evil.example")
	for i, f := range Formats(issuer) {
		t.Run(f.Name, func(t *testing.T) {
			tok, err := f.Mint(claims)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Verify(tok, now.Add(time.Second))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if diff := cmp.Diff(claims, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
			b := []byte(tok)
			b[len(b)/2] ^= 1
			for name, refused := range map[string]func() error{
				"tampered":           func() error { _, err := f.Verify(string(b), now); return err },
				"expired":            func() error { _, err := f.Verify(tok, now.Add(3*time.Minute)); return err }, // past go-jose's 1 min leeway
				"another key":        func() error { _, err := other[i].Verify(tok, now); return err },
				"for another issuer": func() error { _, err := foreign[i].Verify(tok, now); return err },
			} {
				if refused() == nil {
					t.Errorf("%s: accepted", name)
				}
			}
		})
	}
}

func TestFind(t *testing.T) {
	names := []string{}
	for _, f := range Formats(issuer) {
		names = append(names, f.Name)
		if got := Find(issuer, f.Name); got.Name != f.Name {
			t.Errorf("Find(%q): got %q", f.Name, got.Name)
		}
	}
	if !slices.Contains(names, "JWT HS256") || !slices.Contains(names, "PASETO v4.local") {
		t.Errorf("formats %v: want the JWT and PASETO ones", names)
	}
	defer func() {
		if recover() == nil {
			t.Error("Find of an unknown format did not panic")
		}
	}()
	Find(issuer, "JWT none")
}
