package handshake

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// contractYAML is the handshake part of DESIGN.md §6, verbatim.
const contractYAML = `
issuer: "https://a.example"
handshake:
  ttl: 60s
  audiences:
    "https://b.example": { format: jwt, alg: HS256, key_file: b.key }
    "https://partner.example": { format: jwt, alg: EdDSA }
    "https://c.example": { format: paseto, alg: v4.public }
    "https://d.example": { format: paseto, alg: v4.local, key_file: d.key }
  trusted_issuers:
    - { issuer: "https://a.example", format: jwt, alg: HS256, key_file: b.key }
    - { issuer: "https://x.example", format: jwt, alg: EdDSA, public_key_file: x.pem }
    - { issuer: "https://y.example", format: jwt, alg: EdDSA, jwks_url: "https://y.example/.well-known/jwks.json" }
    - { issuer: "https://z.example", format: paseto, alg: v4.public, public_key_file: z.pem }
`

func TestConfigYAML(t *testing.T) {
	var file struct {
		Issuer    string `yaml:"issuer"`
		Handshake Config `yaml:"handshake"`
	}
	if err := yaml.Unmarshal([]byte(contractYAML), &file); err != nil {
		t.Fatal(err)
	}
	want := Config{
		TTL: 60 * time.Second,
		Audiences: map[string]AudienceSpec{
			"https://b.example":       {Format: "jwt", Alg: "HS256", KeyFile: "b.key"},
			"https://partner.example": {Format: "jwt", Alg: "EdDSA"},
			"https://c.example":       {Format: "paseto", Alg: "v4.public"},
			"https://d.example":       {Format: "paseto", Alg: "v4.local", KeyFile: "d.key"},
		},
		TrustedIssuers: []IssuerSpec{
			{Issuer: "https://a.example", Format: "jwt", Alg: "HS256", KeyFile: "b.key"},
			{Issuer: "https://x.example", Format: "jwt", Alg: "EdDSA", PublicKeyFile: "x.pem"},
			{Issuer: "https://y.example", Format: "jwt", Alg: "EdDSA", JWKSURL: "https://y.example/.well-known/jwks.json"},
			{Issuer: "https://z.example", Format: "paseto", Alg: "v4.public", PublicKeyFile: "z.pem"},
		},
	}
	if diff := cmp.Diff(want, file.Handshake); diff != "" {
		t.Errorf("Config (-want +got):\n%s", diff)
	}

	// With the key files in place, the contract configuration loads.
	dir := t.TempDir()
	writeFile(t, dir, "b.key", b64.EncodeToString(randomBytes(t, 32)))
	writeFile(t, dir, "d.key", paserkLocal+b64.EncodeToString(randomBytes(t, 32)))
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	writeFile(t, dir, "x.pem", pemPublic(t, edPub))
	writeFile(t, dir, "z.pem", pemPublic(t, edPub))
	ring, err := LoadKeyRing(dir+"/keys", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMinter(file.Issuer, file.Handshake, ring, dir, Options{}); err != nil {
		t.Errorf("NewMinter: %v", err)
	}
	if _, err := NewVerifier(file.Issuer, file.Handshake, dir, Options{}); err != nil {
		t.Errorf("NewVerifier: %v", err)
	}
	if err := yaml.Unmarshal([]byte("ttl: 60"), &file.Handshake); err == nil {
		t.Error("a bare number decoded as a duration")
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "good.key", b64.EncodeToString(randomBytes(t, 32)))
	writeFile(t, dir, "long.key", b64.EncodeToString(randomBytes(t, 48)))
	writeFile(t, dir, "short.key", b64.EncodeToString(randomBytes(t, 31)))
	writeFile(t, dir, "padded.key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==")
	writeFile(t, dir, "std.key", strings.Repeat("+/", 22))
	writeFile(t, dir, "public.paserk", paserkPublic+b64.EncodeToString(randomBytes(t, 32)))
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	writeFile(t, dir, "ec.pem", pemPublic(t, &ecKey.PublicKey))
	writeFile(t, dir, "p384.pem", pemPublic(t, &p384.PublicKey))
	writeFile(t, dir, "ed.pem", pemPublic(t, edPub))
	writeFile(t, dir, "ed-as-es.jwk", jwkPublic(t, edPub, AlgES256))
	writeFile(t, dir, "ec-private.jwk", jwkPublic(t, ecKey, AlgES256))
	hs := func(file string) IssuerSpec {
		return IssuerSpec{Issuer: issuerA, Format: FormatJWT, Alg: AlgHS256, KeyFile: file}
	}
	verifierCases := []struct {
		name string
		cfg  Config
	}{
		{"unknown format", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: "saml", Alg: AlgHS256, KeyFile: "good.key"}}}},
		{"unknown alg", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatJWT, Alg: "RS256", PublicKeyFile: "ec.pem"}}}},
		{"alg none", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatJWT, Alg: "none"}}}},
		{"PASETO alg under jwt", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatJWT, Alg: AlgV4Local, KeyFile: "good.key"}}}},
		{"short shared key", Config{TrustedIssuers: []IssuerSpec{hs("short.key")}}},
		{"padded shared key", Config{TrustedIssuers: []IssuerSpec{hs("padded.key")}}},
		{"standard base64 key", Config{TrustedIssuers: []IssuerSpec{hs("std.key")}}},
		{"PASERK for HS256", Config{TrustedIssuers: []IssuerSpec{hs("public.paserk")}}},
		{"missing key file", Config{TrustedIssuers: []IssuerSpec{hs("nope.key")}}},
		{"v4.local key of 48 bytes", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatPASETO, Alg: AlgV4Local, KeyFile: "long.key"}}}},
		{"public key for HS256", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatJWT, Alg: AlgHS256, PublicKeyFile: "ed.pem"}}}},
		{"Ed25519 key for ES256", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatJWT, Alg: AlgES256, PublicKeyFile: "ed.pem"}}}},
		{"P-384 key for ES256", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatJWT, Alg: AlgES256, PublicKeyFile: "p384.pem"}}}},
		{"JWK alg mismatch", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatJWT, Alg: AlgEdDSA, PublicKeyFile: "ed-as-es.jwk"}}}},
		{"private JWK", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatJWT, Alg: AlgES256, PublicKeyFile: "ec-private.jwk"}}}},
		{"P-256 key for v4.public", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatPASETO, Alg: AlgV4Public, PublicKeyFile: "ec.pem"}}}},
		{"PASERK public for EdDSA", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatJWT, Alg: AlgEdDSA, PublicKeyFile: "public.paserk"}}}},
		{"two key sources", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatJWT, Alg: AlgEdDSA, PublicKeyFile: "ed.pem", JWKSURL: "https://a.example/jwks"}}}},
		{"no key source", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatJWT, Alg: AlgEdDSA}}}},
		{"http jwks_url", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatJWT, Alg: AlgEdDSA, JWKSURL: "http://a.example/jwks"}}}},
		{"jwks_url for PASETO", Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: FormatPASETO, Alg: AlgV4Public, JWKSURL: "https://a.example/jwks"}}}},
		{"duplicate issuer and alg", Config{TrustedIssuers: []IssuerSpec{hs("good.key"), hs("good.key")}}},
		{"empty issuer", Config{TrustedIssuers: []IssuerSpec{{Format: FormatJWT, Alg: AlgHS256, KeyFile: "good.key"}}}},
		{"ttl over 5m", Config{TTL: 5*time.Minute + time.Second}},
		{"negative leeway", Config{Leeway: -time.Second}},
		{"leeway over 5m", Config{Leeway: time.Hour}},
	}
	for _, c := range verifierCases {
		t.Run("verifier/"+c.name, func(t *testing.T) {
			if _, err := NewVerifier(audB, c.cfg, dir, Options{}); err == nil {
				t.Error("got no error, want one")
			}
		})
	}
	ring, err := LoadKeyRing(dir+"/keys", Options{})
	if err != nil {
		t.Fatal(err)
	}
	aud := func(s AudienceSpec) Config { return Config{Audiences: map[string]AudienceSpec{audB: s}} }
	minterCases := []struct {
		name string
		cfg  Config
		ring *KeyRing
	}{
		{"ttl over 5m", Config{TTL: 6 * time.Minute}, ring},
		{"ttl under 1s", Config{TTL: time.Millisecond}, ring},
		{"unknown alg", aud(AudienceSpec{Format: FormatJWT, Alg: "HS512", KeyFile: "good.key"}), ring},
		{"HS256 without key", aud(AudienceSpec{Format: FormatJWT, Alg: AlgHS256}), ring},
		{"HS256 short key", aud(AudienceSpec{Format: FormatJWT, Alg: AlgHS256, KeyFile: "short.key"}), ring},
		{"EdDSA with key_file", aud(AudienceSpec{Format: FormatJWT, Alg: AlgEdDSA, KeyFile: "good.key"}), ring},
		{"EdDSA without ring", aud(AudienceSpec{Format: FormatJWT, Alg: AlgEdDSA}), nil},
		{"v4.public without ring", aud(AudienceSpec{Format: FormatPASETO, Alg: AlgV4Public}), nil},
	}
	for _, c := range minterCases {
		t.Run("minter/"+c.name, func(t *testing.T) {
			if _, err := NewMinter(issuerA, c.cfg, c.ring, dir, Options{}); err == nil {
				t.Error("got no error, want one")
			}
		})
	}
	if _, err := NewMinter("", Config{}, ring, dir, Options{}); err == nil {
		t.Error("minter without issuer: got no error")
	}
}

func TestMintTTL(t *testing.T) {
	e := newEnv(t)
	cfg := Config{TTL: 5 * time.Minute, Audiences: map[string]AudienceSpec{audB: {Format: FormatJWT, Alg: AlgHS256, KeyFile: "hs.key"}}}
	m, err := NewMinter(issuerA, cfg, nil, e.dir, Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, exp, err := m.Mint(audB, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if want := e.clock.Now().Add(5 * time.Minute); !exp.Equal(want) {
		t.Errorf("expiresAt: got %v, want %v", exp, want)
	}
	if _, err := e.verifier.Verify(context.Background(), tok); err != nil {
		t.Errorf("a 5m token: %v", err)
	}
}
