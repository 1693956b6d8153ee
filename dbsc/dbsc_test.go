package dbsc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testAud = "https://a.example/dbsc/refresh"

func jwkJSON(t *testing.T, k any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: k})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes a compact JWS with go-jose.
func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, hdr map[jose.HeaderKey]any, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, &jose.SignerOptions{ExtraHeaders: hdr})
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func typ(v string) map[jose.HeaderKey]any { return map[jose.HeaderKey]any{"typ": v} }

func TestVerify(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	tp, _ := (&jose.JSONWebKey{Key: &ec.PublicKey}).Thumbprint(crypto.SHA256)
	jkt := base64.RawURLEncoding.EncodeToString(tp)
	claims := func(key any, edit func(map[string]any)) map[string]any {
		c := map[string]any{"aud": testAud, "jti": "c1", "iat": testNow.Unix(), "sub": "s1", "key": jwkJSON(t, key)}
		if edit != nil {
			edit(c)
		}
		return c
	}
	refresh := Expect{Audience: testAud, SessionID: "s1", JKT: jkt, Now: testNow}
	header := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }
	good := sign(t, jose.ES256, ec, typ(Type), claims(&ec.PublicKey, nil))
	parts := strings.Split(good, ".")
	for _, c := range []struct {
		name string
		raw  string
		want Expect
		err  error // nil: accepted
	}{
		{"ES256 refresh", `"` + good + `"`, refresh, nil},
		{"bare JWT", good, refresh, nil},
		{"with parameters", `"` + good + `";x=1`, refresh, nil},
		{"RS256 registration", sign(t, jose.RS256, rs, typ(Type), claims(&rs.PublicKey, func(c map[string]any) { delete(c, "sub") })),
			Expect{Audience: testAud, Now: testNow}, nil},
		{"iat as a string of digits (the draft's example)", sign(t, jose.ES256, ec, typ(Type), claims(&ec.PublicKey, func(c map[string]any) {
			c["iat"] = strconv.FormatInt(testNow.Unix(), 10)
		})), refresh, nil},
		{"typ application/dbsc+jwt", sign(t, jose.ES256, ec, typ("application/dbsc+jwt"), claims(&ec.PublicKey, nil)), refresh, nil},
		{"no aud (Chrome without DeviceBoundSessionsIncludeAudienceClaim)", sign(t, jose.ES256, ec, typ(Type), claims(&ec.PublicKey, func(c map[string]any) { delete(c, "aud") })), refresh, nil},
		{"aud not a string", sign(t, jose.ES256, ec, typ(Type), claims(&ec.PublicKey, func(c map[string]any) { c["aud"] = []string{testAud, "x"} })), refresh, ErrInvalidProof},
		{"aud with default port", sign(t, jose.ES256, ec, typ(Type), claims(&ec.PublicKey, func(c map[string]any) { c["aud"] = "https://A.example:443/dbsc/refresh" })), refresh, nil},
		{"wrong typ", sign(t, jose.ES256, ec, typ("JWT"), claims(&ec.PublicKey, nil)), refresh, ErrInvalidProof},
		{"no typ", sign(t, jose.ES256, ec, nil, claims(&ec.PublicKey, nil)), refresh, ErrInvalidProof},
		{"alg none", header(`{"alg":"none","typ":"dbsc+jwt"}`) + "." + parts[1] + ".", refresh, ErrInvalidProof},
		{"alg none with a signature", header(`{"alg":"none","typ":"dbsc+jwt"}`) + "." + parts[1] + "." + parts[2], refresh, ErrInvalidProof},
		{"HS256", header(`{"alg":"HS256","typ":"dbsc+jwt"}`) + "." + parts[1] + "." + parts[2], refresh, ErrInvalidProof},
		{"ES384 key under ES256", header(`{"alg":"ES256","typ":"dbsc+jwt"}`) + "." +
			base64.RawURLEncoding.EncodeToString(mustJSON(claims(&p384.PublicKey, nil))) + "." + parts[2], refresh, ErrInvalidProof},
		{"RSA 1024", sign(t, jose.RS256, small, typ(Type), claims(&small.PublicKey, nil)), refresh, ErrInvalidProof},
		{"private key in the key claim", sign(t, jose.ES256, ec, typ(Type), claims(ec, nil)), refresh, ErrInvalidProof},
		{"no key", sign(t, jose.ES256, ec, typ(Type), claims(&ec.PublicKey, func(c map[string]any) { delete(c, "key") })), refresh, ErrInvalidProof},
		{"signed by another key than it carries", parts[0] + "." + parts[1] + "." +
			strings.Split(sign(t, jose.ES256, otherP256(t), typ(Type), claims(&ec.PublicKey, nil)), ".")[2], refresh, ErrInvalidProof},
		{"another key than the session's", sign(t, jose.RS256, rs, typ(Type), claims(&rs.PublicKey, nil)), refresh, ErrWrongKey},
		{"aud of another endpoint", sign(t, jose.ES256, ec, typ(Type), claims(&ec.PublicKey, func(c map[string]any) { c["aud"] = "https://a.example/dbsc/register" })), refresh, ErrInvalidProof},
		{"sub of another session", sign(t, jose.ES256, ec, typ(Type), claims(&ec.PublicKey, func(c map[string]any) { c["sub"] = "s2" })), refresh, ErrInvalidProof},
		{"no sub at refresh", sign(t, jose.ES256, ec, typ(Type), claims(&ec.PublicKey, func(c map[string]any) { delete(c, "sub") })), refresh, ErrInvalidProof},
		{"sub at registration", good, Expect{Audience: testAud, Now: testNow}, ErrInvalidProof},
		{"no jti", sign(t, jose.ES256, ec, typ(Type), claims(&ec.PublicKey, func(c map[string]any) { delete(c, "jti") })), refresh, ErrInvalidProof},
		{"stale iat", sign(t, jose.ES256, ec, typ(Type), claims(&ec.PublicKey, func(c map[string]any) { c["iat"] = testNow.Add(-ProofWindow - time.Second).Unix() })), refresh, ErrInvalidProof},
		{"iat in the future", sign(t, jose.ES256, ec, typ(Type), claims(&ec.PublicKey, func(c map[string]any) { c["iat"] = testNow.Add(ProofWindow + time.Second).Unix() })), refresh, ErrInvalidProof},
		{"duplicate claim", header(`{"alg":"ES256","typ":"dbsc+jwt"}`) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"`+testAud+`","aud":"x"}`)) + "." + parts[2], refresh, ErrInvalidProof},
		{"jwk in the header", sign(t, jose.ES256, ec, map[jose.HeaderKey]any{"typ": Type, "jwk": jwkJSON(t, &ec.PublicKey)}, claims(&ec.PublicKey, nil)), refresh, ErrInvalidProof},
		{"not a string", `"` + good, refresh, ErrInvalidProof},
		{"empty", "", refresh, ErrInvalidProof},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Verify(context.Background(), c.raw, c.want)
			switch {
			case c.err == nil && (err != nil || p.Challenge != "c1"):
				t.Fatalf("got %+v, %v; want accepted with challenge c1", p, err)
			case c.err != nil && (!errors.Is(err, c.err) || p != nil):
				t.Fatalf("got %+v, %v; want %v", p, err, c.err)
			}
			if c.err == nil && c.name == "ES256 refresh" && p.JKT != jkt {
				t.Fatalf("thumbprint %s, want %s", p.JKT, jkt)
			}
		})
	}
}

func otherP256(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func TestChallenge(t *testing.T) {
	key := []byte("the session's secret")
	c := NewChallenge(key, "s1", testNow)
	for _, tc := range []struct {
		name      string
		key       []byte
		id, chall string
		now       time.Time
		ok        bool
	}{
		{"fresh", key, "s1", c, testNow, true},
		{"just within its life", key, "s1", c, testNow.Add(ChallengeLifetime), true},
		{"stale", key, "s1", c, testNow.Add(ChallengeLifetime + time.Second), false},
		{"from the future", key, "s1", c, testNow.Add(-2 * time.Second), false},
		{"another session's secret (after a rotation)", []byte("rotated"), "s1", c, testNow, false},
		{"another session", key, "s2", c, testNow, false},
		{"truncated", key, "s1", c[:len(c)-2], testNow, false},
		{"not base64url", key, "s1", c[:len(c)-1] + "=", testNow, false},
		{"forged time", key, "s1", NewChallenge([]byte("guess"), "s1", testNow.Add(time.Hour)), testNow.Add(time.Hour), false},
	} {
		err := CheckChallenge(tc.key, tc.id, tc.chall, tc.now)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrChallenge)) {
			t.Errorf("%s: got %v, want ok=%t", tc.name, err, tc.ok)
		}
	}
}

func TestStructuredStrings(t *testing.T) {
	for _, c := range []struct {
		raw, want string
		ok        bool
	}{
		{`"abc"`, "abc", true},
		{`"a\"b\\c"`, `a"b\c`, true},
		{`"abc";id="x"`, "abc", true},
		{` "abc" `, "abc", true},
		{`eyJ.a-b_c.d`, "eyJ.a-b_c.d", true},
		{`""`, "", false},
		{`"abc`, "", false},
		{`"abc"x`, "", false},
		{`"a\nb"`, "", false},
		{"\"a\x01b\"", "", false},
		{`"é"`, "", false},
		{`abc def`, "", false},
		{``, "", false},
	} {
		got, ok := UnquoteString(c.raw)
		if got != c.want || ok != c.ok {
			t.Errorf("UnquoteString(%q) = %q, %t; want %q, %t", c.raw, got, ok, c.want, c.ok)
		}
	}
	for _, s := range []string{"/dbsc/register", `a"b\c`, "https://a.example:8443/x?y=1"} {
		if got, ok := UnquoteString(QuoteString(s)); !ok || got != s {
			t.Errorf("round trip of %q: %q, %t", s, got, ok)
		}
	}
	if got, want := Registration("/dbsc/register", "c1"), `(ES256 RS256);path="/dbsc/register";challenge="c1"`; got != want {
		t.Errorf("Registration: %s, want %s", got, want)
	}
	if got, want := Challenge("c1", "s1"), `"c1";id="s1"`; got != want {
		t.Errorf("Challenge: %s, want %s", got, want)
	}
}

// FuzzVerify: any header value is refused as an invalid proof or accepted
// only as a proof by the session's key; the parser never panics.
func FuzzVerify(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tp, _ := (&jose.JSONWebKey{Key: &ec.PublicKey}).Thumbprint(crypto.SHA256)
	want := Expect{Audience: testAud, SessionID: "s1", JKT: base64.RawURLEncoding.EncodeToString(tp), Now: testNow}
	pub, _ := json.Marshal(jose.JSONWebKey{Key: &ec.PublicKey})
	payload, _ := json.Marshal(map[string]any{"aud": testAud, "jti": "c1", "iat": testNow.Unix(), "sub": "s1", "key": json.RawMessage(pub)})
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ec}, &jose.SignerOptions{ExtraHeaders: typ(Type)})
	jws, _ := s.Sign(payload)
	good, _ := jws.CompactSerialize()
	f.Add(`"` + good + `"`)
	f.Add(good)
	f.Add(`"eyJhbGciOiJub25lIn0.e30."`)
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := Verify(context.Background(), raw, want)
		switch {
		case err != nil && p != nil:
			t.Fatal("a proof together with an error")
		case err != nil && !errors.Is(err, ErrInvalidProof):
			t.Fatalf("%v is not a refusal", err)
		case err == nil && p.JKT != want.JKT:
			t.Fatalf("accepted a proof by another key")
		}
	})
}

// FuzzUnquoteString: what is accepted quotes back to an equivalent value.
func FuzzUnquoteString(f *testing.F) {
	f.Add(`"a\"b";id="x"`)
	f.Add(`abc.def`)
	f.Fuzz(func(t *testing.T, raw string) {
		s, ok := UnquoteString(raw)
		if !ok {
			return
		}
		if again, ok := UnquoteString(QuoteString(s)); !ok || again != s {
			t.Fatalf("%q: round trip gave %q, %t", s, again, ok)
		}
	})
}
