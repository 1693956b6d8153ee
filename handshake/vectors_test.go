package handshake

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aidanwoods.dev/go-paseto"
	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether/internal/jwtcore"
)

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "vectors", path))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestPASETOVectors runs the official v4 vectors through go-paseto as this
// package calls it, implicit assertions included; expect-fail ones fail,
// also when presented to the handshake Verifier's strict framing.
func TestPASETOVectors(t *testing.T) {
	var file struct {
		Tests []struct {
			Name       string `json:"name"`
			ExpectFail bool   `json:"expect-fail"`
			Key        string `json:"key"`
			PublicKey  string `json:"public-key"`
			Token      string `json:"token"`
			Payload    any    `json:"payload"`
			Footer     string `json:"footer"`
			Implicit   string `json:"implicit-assertion"`
		} `json:"tests"`
	}
	readJSON(t, "paseto/v4.json", &file)
	parser := paseto.MakeParser(nil) // the vectors' exp is in 2022
	for _, v := range file.Tests {
		t.Run(v.Name, func(t *testing.T) {
			var tok *paseto.Token
			var err error
			switch {
			case v.Key != "":
				key, kerr := paseto.V4SymmetricKeyFromHex(v.Key)
				if kerr != nil {
					t.Fatal(kerr)
				}
				tok, err = parser.ParseV4Local(key, v.Token, []byte(v.Implicit))
			default:
				key, kerr := paseto.NewV4AsymmetricPublicKeyFromHex(v.PublicKey)
				if kerr != nil {
					t.Fatal(kerr)
				}
				tok, err = parser.ParseV4Public(key, v.Token, []byte(v.Implicit))
			}
			if v.ExpectFail {
				if err == nil {
					t.Fatal("go-paseto accepted an expect-fail vector")
				}
				if _, err := newEnv(t).verifier.Verify(context.Background(), v.Token); err == nil {
					t.Error("Verifier accepted an expect-fail vector")
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want the vector to verify", err)
			}
			if got, want := string(tok.Footer()), v.Footer; got != want {
				t.Errorf("footer: got %q, want %q", got, want)
			}
			var got, want any
			json.Unmarshal(tok.ClaimsJSON(), &got)
			json.Unmarshal([]byte(v.Payload.(string)), &want)
			if !jsonEqual(got, want) {
				t.Errorf("payload: got %s, want %s", tok.ClaimsJSON(), v.Payload)
			}
			if v.Implicit != "" { // leaving the assertion out must fail
				if v.Key != "" {
					key, _ := paseto.V4SymmetricKeyFromHex(v.Key)
					_, err = parser.ParseV4Local(key, v.Token, nil)
				} else {
					key, _ := paseto.NewV4AsymmetricPublicKeyFromHex(v.PublicKey)
					_, err = parser.ParseV4Public(key, v.Token, nil)
				}
				if err == nil {
					t.Error("verified without its implicit assertion")
				}
			}
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestPASERKVectors loads the k4.local and k4.public vectors through the
// key-file loaders.
func TestPASERKVectors(t *testing.T) {
	type vector struct {
		Name       string  `json:"name"`
		ExpectFail bool    `json:"expect-fail"`
		Key        *string `json:"key"`
		Paserk     *string `json:"paserk"`
	}
	for _, c := range []struct{ file, alg string }{{"k4.local.json", AlgV4Local}, {"k4.public.json", AlgV4Public}} {
		var file struct{ Tests []vector }
		readJSON(t, "paseto/PASERK/"+c.file, &file)
		for _, v := range file.Tests {
			t.Run(v.Name, func(t *testing.T) {
				if v.Paserk == nil { // k4.public-fail-1: a v3 key; serialise it as k3
					raw, _ := hex.DecodeString(*v.Key)
					k3 := "k3.public." + b64.EncodeToString(raw)
					v.Paserk = &k3
				}
				var got []byte
				var err error
				if c.alg == AlgV4Local {
					var keys [][]byte
					if keys, err = loadSharedKeys(writeFile(t, t.TempDir(), "k", *v.Paserk), v4Local{}.parseKey); err == nil {
						got = keys[0]
					}
				} else {
					got, err = loadPublicKey[ed25519.PublicKey](writeFile(t, t.TempDir(), "k", *v.Paserk), v4PublicKeyUse)
				}
				if v.ExpectFail {
					if err == nil {
						t.Errorf("got key, want failure")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if hex.EncodeToString(got) != *v.Key {
					t.Errorf("got %x, want %s", got, *v.Key)
				}
			})
		}
	}
}

type joseVector struct {
	Alg        string          `json:"alg"`
	JWK        json.RawMessage `json:"jwk"`
	JWKPrivate json.RawMessage `json:"jwk_private"`
	Payload    string          `json:"payload_utf8"`
	Compact    string          `json:"compact"`
	Thumbprint string          `json:"jwk_thumbprint_sha256_b64u"`
}

// TestJOSEVectors verifies RFC 7515 A.1 (HS256), A.3 (ES256) and RFC 8037
// (EdDSA) with the pinned-algorithm path this package uses, checks that
// pinning refuses them under any other algorithm, and that none of them is
// an acceptable handshake token.
func TestJOSEVectors(t *testing.T) {
	e := newEnv(t)
	for _, file := range []string{"rfc7515/RFC7515-A.1.json", "rfc7515/RFC7515-A.3.json", "rfc8037/RFC8037-A.1-A.5.json"} {
		t.Run(file, func(t *testing.T) {
			var v joseVector
			readJSON(t, "jose/"+file, &v)
			var jwk jose.JSONWebKey
			if err := jwk.UnmarshalJSON(v.JWK); err != nil {
				t.Fatal(err)
			}
			var key any = jwk.Key
			if err := jwtcore.KeyFits(v.Alg, jwk.Key); err != nil && v.Alg != AlgHS256 {
				t.Fatalf("vector key: %v", err)
			}
			jws, err := jose.ParseSignedCompact(v.Compact, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(v.Alg)})
			if err != nil {
				t.Fatal(err)
			}
			payload, err := jws.Verify(key)
			if err != nil {
				t.Fatalf("got %v, want the vector to verify", err)
			}
			if string(payload) != v.Payload {
				t.Errorf("payload: got %q, want %q", payload, v.Payload)
			}
			other := jose.HS256
			if v.Alg == AlgHS256 {
				other = jose.EdDSA
			}
			if _, err := jose.ParseSignedCompact(v.Compact, []jose.SignatureAlgorithm{other}); err == nil {
				t.Error("parsed under a different pinned alg")
			}
			if _, err := e.verifier.Verify(context.Background(), v.Compact); err == nil {
				t.Error("Verifier accepted a vector that is not a handshake token")
			}
			if v.Thumbprint != "" {
				if got, _ := thumbprint(jwk.Key); got != v.Thumbprint {
					t.Errorf("thumbprint: got %q, want %q", got, v.Thumbprint)
				}
				var priv jose.JSONWebKey
				if err := priv.UnmarshalJSON(v.JWKPrivate); err != nil {
					t.Fatal(err)
				}
				signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv.Key}, nil)
				if err != nil {
					t.Fatal(err)
				}
				sig, _ := signer.Sign([]byte(v.Payload))
				if got, _ := sig.CompactSerialize(); got != v.Compact {
					t.Errorf("re-signed: got %s, want %s (Ed25519 is deterministic)", got, v.Compact)
				}
			}
		})
	}
	t.Run("RFC7515-A.5 alg none", func(t *testing.T) {
		var v joseVector
		readJSON(t, "jose/rfc7515/RFC7515-A.5.json", &v)
		for _, alg := range []jose.SignatureAlgorithm{jose.HS256, jose.EdDSA, jose.ES256} {
			if _, err := jose.ParseSignedCompact(v.Compact, []jose.SignatureAlgorithm{alg}); err == nil {
				t.Errorf("parsed with %s pinned", alg)
			}
		}
	})
}

// TestCookbookVectors: every RFC 7520 / RFC 7797 example verifies
// somewhere, but none is an acceptable handshake token.
func TestCookbookVectors(t *testing.T) {
	e := newEnv(t)
	var index struct {
		Entries []struct {
			File    string `json:"file"`
			Compact string `json:"compact"`
		} `json:"entries"`
	}
	readJSON(t, "jose/rfc7520-cookbook/INDEX.json", &index)
	for _, entry := range index.Entries {
		t.Run(entry.File, func(t *testing.T) {
			raw := entry.Compact
			if raw == "" { // JSON serialization only
				data, err := os.ReadFile(filepath.Join("testdata", "vectors", "jose", "rfc7520-cookbook", entry.File))
				if err != nil {
					t.Fatal(err)
				}
				raw = strings.TrimSpace(string(data))
			}
			if _, err := e.verifier.Verify(context.Background(), raw); err == nil {
				t.Error("accepted")
			}
		})
	}
}
