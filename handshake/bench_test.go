package handshake

import (
	"context"
	"testing"
)

func BenchmarkMint(b *testing.B) {
	e := newEnv(b)
	for _, alg := range allAlgs {
		b.Run(alg, func(b *testing.B) {
			for b.Loop() {
				if _, _, _, err := e.minters[alg].Mint(audB, "alice"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	for _, alg := range allAlgs {
		tok := e.mint(b, alg)
		b.Run(alg, func(b *testing.B) {
			b.SetBytes(int64(len(tok)))
			for b.Loop() {
				if _, err := e.verifier.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
