package tether

import (
	"bytes"
	"testing"
)

// FuzzDecodeSecret holds the in-place decoder to the standard base32 decoder
// over the token alphabet: they must agree on every secret.
func FuzzDecodeSecret(f *testing.F) {
	f.Add(make([]byte, secretBytes))
	f.Add(bytes.Repeat([]byte{0xff}, secretBytes))
	f.Add([]byte("0123456789abcdefghij"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var secret [secretBytes]byte
		copy(secret[:], raw)
		enc := b32.EncodeToString(secret[:])
		if got := decodeSecret(enc); got != secret {
			t.Fatalf("decodeSecret(%q) = %x, want %x", enc, got, secret)
		}
	})
}
