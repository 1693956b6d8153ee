package handshake

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20"
)

// pae is PASETO's pre-authentication encoding.
func pae(pieces ...string) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(pieces)))
	for _, p := range pieces {
		out = binary.LittleEndian.AppendUint64(out, uint64(len(p)))
		out = append(out, p...)
	}
	return out
}

// encryptV4LocalRaw encrypts payload bytes as they are (go-paseto would
// re-encode them through a map, collapsing repeated names), as an attacker
// holding the key would. TestEncryptV4LocalRaw checks it on the official
// vectors.
func encryptV4LocalRaw(t testing.TB, key, nonce []byte, payload, footer, assertion string) string {
	t.Helper()
	const h = "v4.local."
	mac := func(size int, k []byte, msg ...[]byte) []byte {
		m, err := blake2b.New(size, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range msg {
			m.Write(b)
		}
		return m.Sum(nil)
	}
	tmp := mac(56, key, []byte("paseto-encryption-key"), nonce)
	ak := mac(32, key, []byte("paseto-auth-key-for-aead"), nonce)
	cipher, err := chacha20.NewUnauthenticatedCipher(tmp[:32], tmp[32:])
	if err != nil {
		t.Fatal(err)
	}
	c := make([]byte, len(payload))
	cipher.XORKeyStream(c, []byte(payload))
	tag := mac(32, ak, pae(h, string(nonce), string(c), footer, assertion))
	tok := h + b64.EncodeToString(append(append(append([]byte{}, nonce...), c...), tag...))
	if footer != "" {
		tok += "." + b64.EncodeToString([]byte(footer))
	}
	return tok
}

func TestEncryptV4LocalRaw(t *testing.T) {
	var file struct {
		Tests []struct {
			Name, Key, Nonce, Token, Footer string
			ExpectFail                      bool   `json:"expect-fail"`
			Payload                         any    `json:"payload"`
			Implicit                        string `json:"implicit-assertion"`
		}
	}
	readJSON(t, "paseto/v4.json", &file)
	n := 0
	for _, v := range file.Tests {
		if v.ExpectFail || v.Key == "" || v.Nonce == "" {
			continue
		}
		key, _ := hex.DecodeString(v.Key)
		nonce, _ := hex.DecodeString(v.Nonce)
		if got := encryptV4LocalRaw(t, key, nonce, v.Payload.(string), v.Footer, v.Implicit); got != v.Token {
			t.Errorf("%s: got %s, want %s", v.Name, got, v.Token)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no v4.local vectors")
	}
}

// TestDuplicateClaims: a claims set naming sub twice is refused in every
// format, v4.local included, where go-paseto alone would keep the last.
func TestDuplicateClaims(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	_, edPriv := ringPrivate(t, e.ring, AlgEdDSA)
	_, esPriv := ringPrivate(t, e.ring, AlgES256)
	jwtDup := claimsJSON(now, nil, `"sub":"admin"`)
	pasetoTimes := map[string]string{
		"iat": `"` + now.Format(time.RFC3339) + `"`, "exp": `"` + now.Add(time.Minute).Format(time.RFC3339) + `"`,
	}
	pasetoClaims := func(extra ...string) string { return claimsJSON(now, pasetoTimes, extra...) }
	pasetoNoSub := func() string {
		set := map[string]string{"sub": ""}
		for k, v := range pasetoTimes {
			set[k] = v
		}
		return strings.TrimPrefix(claimsJSON(now, set), "{")
	}
	local := func(payload string) string {
		return encryptV4LocalRaw(t, e.localKey, randomBytes(t, 32), payload, "", ImplicitAssertion)
	}
	cases := []struct {
		name, token, reason string
	}{
		{"HS256", craftJWT(`{"alg":"HS256","typ":"handshake+jwt"}`, jwtDup, signHS256(e.hsKey)), "malformed"},
		{"EdDSA", craftJWT(`{"alg":"EdDSA","typ":"handshake+jwt"}`, jwtDup, signEd25519(edPriv.(ed25519.PrivateKey))), "malformed"},
		{"ES256", craftJWT(`{"alg":"ES256","typ":"handshake+jwt"}`, jwtDup, signES256(esPriv.(*ecdsa.PrivateKey))), "malformed"},
		{"v4.public", signV4PublicRaw(edPriv.(ed25519.PrivateKey), pasetoClaims(`"sub":"admin"`)), "malformed"},
		{"v4.local", local(pasetoClaims(`"sub":"admin"`)), "malformed"},
		{"v4.local sub first", local(`{"sub":"alice",` + pasetoNoSub()), ""},
		{"v4.local sub twice, admin first", local(`{"sub":"admin",` + strings.TrimPrefix(pasetoClaims(), "{")), "malformed"},
		{"v4.local escaped repeat", local(pasetoClaims(`"s\u0075b":"admin"`)), "malformed"},
		{"v4.local repeat of an unregistered claim", local(pasetoClaims(`"role":"x"`, `"role":"y"`)), "malformed"},
		{"v4.local compact, escapes in values", local(pasetoClaims(`"note":"a\"b\\c\u00e9<&>"`, `"n":[1, 2]`)), ""},
		{"v4.local whitespace between members", local(strings.Replace(pasetoClaims(), ",", ", ", 1)), "malformed"},
		{"v4.local escaped name", local(pasetoClaims(`"r\u006fle":"x"`)), "malformed"},
		{"v4.local names that need escapes", local(pasetoClaims(`"a\"b\\":1`, `"c\nd\t":2`, `"e\u0001":3`)), ""},
		{"v4.local name escaped longer than needed", local(pasetoClaims(`"c\u000ad":2`)), "malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := e.verifier.Verify(context.Background(), c.token)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				if got.Subject != "alice" {
					t.Errorf("sub: got %q, want alice", got.Subject)
				}
				return
			}
			if err == nil || got != nil {
				t.Fatalf("accepted with sub %q", got.Subject)
			}
			if r := Reason(err); r != c.reason {
				t.Errorf("Reason: got %q, want %q (%v)", r, c.reason, err)
			}
		})
	}
}
