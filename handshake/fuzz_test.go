package handshake

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"testing"
	"time"

	"aidanwoods.dev/go-paseto"
)

// fuzzNow is the fixed time of every fuzz verification.
var fuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fuzzVerifier builds the same keys in every fuzz worker process (fixed
// seeds), mints one token per alg in algs with jti "fuzz-<alg>" and adds it
// as a seed. Nothing else is ever signed with these keys, so a token the
// verifier accepts must carry one of those jtis.
func fuzzVerifier(f *testing.F, algs ...string) *Verifier {
	dir := f.TempDir()
	hsKey := bytes.Repeat([]byte{1}, 32)
	localKey := bytes.Repeat([]byte{2}, 32)
	edPriv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32))
	esPriv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{4}, 32))
	if err != nil {
		f.Fatal(err)
	}
	writeFile(f, dir, "hs.key", b64.EncodeToString(hsKey))
	writeFile(f, dir, "local.key", b64.EncodeToString(localKey))
	writeFile(f, dir, "ed.pem", pemPublic(f, edPriv.Public()))
	writeFile(f, dir, "es.pem", pemPublic(f, &esPriv.PublicKey))
	cfg := Config{TrustedIssuers: []IssuerSpec{
		{Issuer: issuerA, Format: FormatJWT, Alg: AlgHS256, KeyFile: "hs.key"},
		{Issuer: issuerA, Format: FormatJWT, Alg: AlgEdDSA, PublicKeyFile: "ed.pem"},
		{Issuer: issuerA, Format: FormatJWT, Alg: AlgES256, PublicKeyFile: "es.pem"},
		{Issuer: issuerA, Format: FormatPASETO, Alg: AlgV4Public, PublicKeyFile: "ed.pem"},
		{Issuer: issuerA, Format: FormatPASETO, Alg: AlgV4Local, KeyFile: "local.key"},
	}}
	v, err := NewVerifier(audB, cfg, dir, Options{Now: func() time.Time { return fuzzNow }})
	if err != nil {
		f.Fatal(err)
	}
	for _, alg := range algs {
		c := &Claims{Issuer: issuerA, Subject: "alice", Audience: audB, ID: "fuzz-" + alg,
			IssuedAt: fuzzNow, ExpiresAt: fuzzNow.Add(time.Minute)}
		var tok string
		switch alg {
		case AlgHS256:
			tok = signJWTWith(f, alg, hsKey, "", c)
		case AlgEdDSA:
			tok = signJWTWith(f, alg, edPriv, "ed", c)
		case AlgES256:
			tok = signJWTWith(f, alg, esPriv, "es", c)
		case AlgV4Public:
			var k paseto.V4AsymmetricSecretKey
			k, err = paseto.NewV4AsymmetricSecretKeyFromEd25519(edPriv)
			t := pasetoToken(c)
			tok = t.V4Sign(k, implicit)
		case AlgV4Local:
			var k paseto.V4SymmetricKey
			k, err = paseto.V4SymmetricKeyFromBytes(localKey)
			t := pasetoToken(c)
			tok = t.V4Encrypt(k, implicit)
		}
		if err != nil {
			f.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), tok); err != nil {
			f.Fatalf("seed %s: %v", alg, err)
		}
		f.Add(tok)
	}
	return v
}

func fuzzVerify(t *testing.T, v *Verifier, raw string) {
	c, err := v.Verify(context.Background(), raw)
	switch {
	case err != nil && c != nil:
		t.Fatal("claims returned together with an error")
	case err != nil && !errors.Is(err, ErrInvalid):
		t.Fatalf("rejection %v does not match ErrInvalid", err)
	case err == nil && (len(c.ID) < 5 || c.ID[:5] != "fuzz-"):
		t.Fatalf("accepted a token that was never minted: %+v", c)
	}
}

func FuzzVerifyJWT(f *testing.F) {
	v := fuzzVerifier(f, AlgHS256, AlgEdDSA, AlgES256)
	f.Fuzz(func(t *testing.T, raw string) { fuzzVerify(t, v, raw) })
}

func FuzzVerifyPASETO(f *testing.F) {
	v := fuzzVerifier(f, AlgV4Public, AlgV4Local)
	f.Fuzz(func(t *testing.T, raw string) { fuzzVerify(t, v, raw) })
}
