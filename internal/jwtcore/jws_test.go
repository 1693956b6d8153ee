package jwtcore

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sign makes a compact JWS with go-jose, with extra header parameters.
func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, payload string, hdr map[jose.HeaderKey]any) string {
	t.Helper()
	opts := &jose.SignerOptions{ExtraHeaders: hdr}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// craft builds a compact JWS from literal JSON, signed by signFn.
func craft(header, payload string, signFn func([]byte) []byte) string {
	in := B64.EncodeToString([]byte(header)) + "." + B64.EncodeToString([]byte(payload))
	return in + "." + B64.EncodeToString(signFn([]byte(in)))
}

func hs256(key []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(in)
		return m.Sum(nil)
	}
}

// subRule is a minimal claims rule: a strict object with a string sub.
func subRule(_ Header, tainted []byte) (string, error) {
	o, err := DecodeObject(tainted)
	if err != nil {
		return "", Reject(ErrMalformed, "claims")
	}
	sub, ok := o.String("sub")
	if !ok {
		return "", Reject(ErrClaims, "sub")
	}
	return sub, nil
}

// countingKeys wraps a KeySource and counts lookups.
type countingKeys[K any] struct {
	KeySource[K]
	n atomic.Int32
}

func (c *countingKeys[K]) Keys(ctx context.Context, h Header) ([]K, error) {
	c.n.Add(1)
	return c.KeySource.Keys(ctx, h)
}

func TestVerifyStaticHS256(t *testing.T) {
	oldKey, newKey, other := make([]byte, 32), make([]byte, 32), make([]byte, 32)
	for _, k := range [][]byte{oldKey, newKey, other} {
		rand.Read(k)
	}
	keys := &countingKeys[[]byte]{KeySource: StaticKeys[[]byte]{newKey, oldKey}}
	p := &Policy[[]byte]{Algs: []jose.SignatureAlgorithm{jose.HS256}, Type: "handshake+jwt", Keys: keys}
	typ := map[jose.HeaderKey]any{"typ": "handshake+jwt"}
	cases := []struct {
		name, token, want, reason string
	}{
		{"new key", sign(t, jose.HS256, newKey, `{"sub":"alice"}`, typ), "alice", ""},
		{"old key while rotating", sign(t, jose.HS256, oldKey, `{"sub":"alice"}`, typ), "alice", ""},
		{"other key", sign(t, jose.HS256, other, `{"sub":"alice"}`, typ), "", "signature"},
		{"application/ typ", sign(t, jose.HS256, newKey, `{"sub":"alice"}`, map[jose.HeaderKey]any{"typ": "application/Handshake+JWT"}), "alice", ""},
		{"no typ", sign(t, jose.HS256, newKey, `{"sub":"alice"}`, nil), "", "type"},
		{"alg not pinned", sign(t, jose.HS384, append(newKey, newKey...), `{"sub":"alice"}`, typ), "", "algorithm"},
		{"rule refuses", sign(t, jose.HS256, newKey, `{"sub":1}`, typ), "", "claims"},
		{"duplicate claim", sign(t, jose.HS256, newKey, `{"sub":"alice","sub":"admin"}`, typ), "", "malformed"},
		{"header jwk not allowed", sign(t, jose.HS256, newKey, `{"sub":"alice"}`, map[jose.HeaderKey]any{"typ": "handshake+jwt", "jwk": json.RawMessage(`{}`)}), "", "header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := keys.n.Load()
			got, err := Verify(context.Background(), c.token, p, subRule)
			if Reason(err) != c.reason || got != c.want {
				t.Fatalf("got %q, %v (reason %q); want %q, reason %q", got, err, Reason(err), c.want, c.reason)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("%v does not match ErrInvalid", err)
			}
			if c.reason == "claims" && keys.n.Load() != before {
				t.Error("keys looked up for a token whose claims the rule refused")
			}
		})
	}
}

// TestVerifyLogoutTokenFromJWKS is how an OIDC back-channel logout token
// (RS256 from the provider's JWKS, "logout+jwt" when typ is present) uses
// the core: its own policy and rule, the shared JWKS and checks.
func TestVerifyLogoutTokenFromJWKS(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "r1", Use: "sig"}}})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(set) }))
	defer srv.Close()
	p := &Policy[*rsa.PublicKey]{
		Algs: []jose.SignatureAlgorithm{jose.RS256}, Type: "logout+jwt", TypeOptional: true,
		Keys: JWKSKeys[*rsa.PublicKey]{Set: NewJWKS(srv.URL, srv.Client(), func() time.Time { return testNow }), Alg: "RS256"},
	}
	const event = "http://schemas.openid.net/event/backchannel-logout"
	rule := func(_ Header, tainted []byte) (string, error) {
		o, err := DecodeObject(tainted)
		if err != nil {
			return "", Reject(ErrMalformed, "claims")
		}
		var events map[string]json.RawMessage
		if json.Unmarshal(o["events"], &events) != nil || events[event] == nil {
			return "", Reject(ErrClaims, "no logout event")
		}
		if _, nonce := o["nonce"]; nonce {
			return "", Reject(ErrClaims, "nonce in a logout token")
		}
		iat, ok := o.NumericDate("iat")
		if !ok {
			return "", Reject(ErrClaims, "iat")
		}
		if err := (Times{IssuedAt: iat}).Check(testNow, time.Minute, 0); err != nil {
			return "", err
		}
		sid, _ := o.String("sid")
		return sid, nil
	}
	claims := func(extra string) string {
		return `{"iss":"https://idp.example","iat":` + strconv.FormatInt(testNow.Unix(), 10) +
			`,"events":{"` + event + `":{}},"sid":"s1"` + extra + `}`
	}
	kid := func(typ string) map[jose.HeaderKey]any {
		h := map[jose.HeaderKey]any{"kid": "r1"}
		if typ != "" {
			h["typ"] = typ
		}
		return h
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, c := range []struct{ name, token, reason string }{
		{"typ logout+jwt", sign(t, jose.RS256, priv, claims(""), kid("logout+jwt")), ""},
		{"no typ", sign(t, jose.RS256, priv, claims(""), kid("")), ""},
		{"typ JWT", sign(t, jose.RS256, priv, claims(""), kid("JWT")), "type"},
		{"nonce", sign(t, jose.RS256, priv, claims(`,"nonce":"n"`), kid("")), "claims"},
		{"unknown kid", sign(t, jose.RS256, priv, claims(""), map[jose.HeaderKey]any{"kid": "r2"}), "unknown_kid"},
		{"PS256 not pinned", sign(t, jose.PS256, priv, claims(""), kid("")), "algorithm"},
		{"another RSA key", sign(t, jose.RS256, small, claims(""), kid("")), "signature"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sid, err := Verify(context.Background(), c.token, p, rule)
			if Reason(err) != c.reason || (err == nil && sid != "s1") {
				t.Errorf("got %q, %v; want reason %q", sid, err, c.reason)
			}
		})
	}
}

// TestVerifyDPoPProofHeaderJWK is how a DPoP proof uses the core: the key
// is the header's jwk, and the rule binds the proof to its thumbprint.
func TestVerifyDPoPProofHeaderJWK(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	p := &Policy[*ecdsa.PublicKey]{
		Algs: []jose.SignatureAlgorithm{jose.ES256}, Type: "dpop+jwt", Headers: []string{"jwk"},
		Keys: HeaderJWK[*ecdsa.PublicKey]{},
	}
	rule := func(h Header, tainted []byte) (string, error) {
		if _, err := DecodeObject(tainted); err != nil {
			return "", Reject(ErrMalformed, "claims")
		}
		tp, err := h.JWK.Thumbprint(crypto.SHA256)
		if err != nil {
			return "", Reject(ErrHeader, "thumbprint")
		}
		return B64.EncodeToString(tp), nil
	}
	jwk := func(k any) json.RawMessage {
		b, _ := json.Marshal(jose.JSONWebKey{Key: k})
		return b
	}
	hdr := func(k any) map[jose.HeaderKey]any { return map[jose.HeaderKey]any{"typ": "dpop+jwt", "jwk": jwk(k)} }
	want, _ := (&jose.JSONWebKey{Key: &priv.PublicKey}).Thumbprint(crypto.SHA256)
	const proof = `{"htm":"GET","htu":"https://b.example/v1/session","iat":1772366400,"jti":"p1"}`
	for _, c := range []struct{ name, token, reason string }{
		{"own key", sign(t, jose.ES256, priv, proof, hdr(&priv.PublicKey)), ""},
		{"signed by another key", sign(t, jose.ES256, other, proof, hdr(&priv.PublicKey)), "signature"},
		{"private key in header", craft(`{"alg":"ES256","typ":"dpop+jwt","jwk":`+string(jwk(priv))+`}`, proof,
			func([]byte) []byte { return make([]byte, 64) }), "header"},
		{"Ed25519 key under ES256", craft(`{"alg":"ES256","typ":"dpop+jwt","jwk":`+string(jwk(edPriv.Public()))+`}`, proof,
			func([]byte) []byte { return make([]byte, 64) }), "algorithm"},
		{"no jwk", sign(t, jose.ES256, priv, proof, map[jose.HeaderKey]any{"typ": "dpop+jwt"}), "header"},
	} {
		t.Run(c.name, func(t *testing.T) {
			jkt, err := Verify(context.Background(), c.token, p, rule)
			if Reason(err) != c.reason || (err == nil && jkt != B64.EncodeToString(want)) {
				t.Errorf("got %q, %v; want reason %q", jkt, err, c.reason)
			}
		})
	}
}

func TestTypeIs(t *testing.T) {
	for _, c := range []struct {
		typ, want string
		ok        bool
	}{
		{"secevent+jwt", "secevent+jwt", true},
		{"application/secevent+jwt", "secevent+jwt", true},
		{"Application/SecEvent+JWT", "secevent+jwt", true},
		{"application/secevent+jwt;q=1", "secevent+jwt", false},
		{"text/secevent+jwt", "secevent+jwt", false},
		{"secevent+jwt", "handshake+jwt", false},
		{"ſecevent+jwt", "secevent+jwt", false},
		{"", "secevent+jwt", false},
	} {
		if got := TypeIs(c.typ, c.want); got != c.ok {
			t.Errorf("TypeIs(%q, %q): got %v, want %v", c.typ, c.want, got, c.ok)
		}
	}
}

func TestKeyFits(t *testing.T) {
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, c := range []struct {
		alg string
		key any
		ok  bool
	}{
		{"HS256", make([]byte, 32), true},
		{"HS256", make([]byte, 31), false},
		{"HS256", []byte(ed), true}, // 32 bytes, but only as []byte: a typed public key never fits HS256
		{"HS256", ed, false},
		{"EdDSA", ed, true},
		{"EdDSA", ed[:31], false},
		{"ES256", &p256.PublicKey, true},
		{"ES256", &p384.PublicKey, false},
		{"ES384", &p384.PublicKey, true},
		{"RS256", &rsa2048.PublicKey, true},
		{"PS256", &rsa2048.PublicKey, true},
		{"RS256", &rsa1024.PublicKey, false},
		{"EdDSA", &p256.PublicKey, false},
		{"none", ed, false},
	} {
		if err := KeyFits(c.alg, c.key); (err == nil) != c.ok {
			t.Errorf("KeyFits(%s, %T): got %v, want ok=%v", c.alg, c.key, err, c.ok)
		}
	}
}

func TestTimesCheck(t *testing.T) {
	now := testNow
	for _, c := range []struct {
		name   string
		times  Times
		reason string
	}{
		{"valid", Times{IssuedAt: now, ExpiresAt: now.Add(time.Minute)}, ""},
		{"no exp", Times{IssuedAt: now}, ""},
		{"expired beyond leeway", Times{IssuedAt: now.Add(-2 * time.Minute), ExpiresAt: now.Add(-31 * time.Second)}, "expired"},
		{"expired within leeway", Times{IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(-29 * time.Second)}, ""},
		{"too long", Times{IssuedAt: now, ExpiresAt: now.Add(5*time.Minute + time.Second)}, "lifetime"},
		{"exp before iat", Times{IssuedAt: now, ExpiresAt: now.Add(-time.Second)}, "lifetime"},
		{"iat in the future", Times{IssuedAt: now.Add(time.Minute), ExpiresAt: now.Add(2 * time.Minute)}, "not_yet_valid"},
		{"nbf in the future", Times{IssuedAt: now, NotBefore: now.Add(time.Minute), ExpiresAt: now.Add(2 * time.Minute)}, "not_yet_valid"},
	} {
		if got := Reason(c.times.Check(now, 30*time.Second, 5*time.Minute)); got != c.reason {
			t.Errorf("%s: got %q, want %q", c.name, got, c.reason)
		}
	}
}

func TestReason(t *testing.T) {
	custom := NewReason("nonce", "nonce reused")
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("store down"), "internal"},
		{Reject(ErrExpired, "exp passed"), "expired"},
		{Reject(custom, "x"), "nonce"},
	} {
		if got := Reason(c.err); got != c.want {
			t.Errorf("Reason(%v): got %q, want %q", c.err, got, c.want)
		}
	}
	if !errors.Is(custom, ErrInvalid) {
		t.Error("a custom reason does not match ErrInvalid")
	}
}
