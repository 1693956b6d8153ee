package handshake

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aidanwoods.dev/go-paseto"
	"github.com/google/go-cmp/cmp"
)

func TestMintVerifyRoundTrip(t *testing.T) {
	e := newEnv(t)
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			tok, format, exp, err := e.minters[alg].Mint(audB, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if format != formatOf(alg) {
				t.Errorf("format: got %q, want %q", format, formatOf(alg))
			}
			now := e.clock.Now()
			if want := now.Add(DefaultTTL); !exp.Equal(want) {
				t.Errorf("expiresAt: got %v, want %v", exp, want)
			}
			got, err := e.verifier.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			local := "alice" // shared-key issuers share this node's subjects; others are namespaced
			if alg != AlgHS256 && alg != AlgV4Local {
				local = issuerA + "|alice"
			}
			want := &Claims{Issuer: issuerA, Subject: "alice", Audience: audB, ID: got.ID, IssuedAt: now, ExpiresAt: now.Add(DefaultTTL), LocalSubject: local}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
			if len(got.ID) < 22 {
				t.Errorf("jti %q: want at least 128 bits", got.ID)
			}
		})
	}
}

func TestMintUnknownAudience(t *testing.T) {
	e := newEnv(t)
	_, _, _, err := e.minters[AlgHS256].Mint("https://nobody.example", "alice")
	if !errors.Is(err, ErrUnknownAudience) {
		t.Errorf("got %v, want ErrUnknownAudience", err)
	}
	if got := Reason(err); got != "unknown_audience" {
		t.Errorf("Reason: got %q, want unknown_audience", got)
	}
}

// TestVerifyRejects is the negative suite: every crafted token is refused,
// for the stated reason.
func TestVerifyRejects(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	hs := signHS256(e.hsKey)
	hdrHS := `{"alg":"HS256","typ":"handshake+jwt"}`
	ok := claimsJSON(now, nil)
	_, edPriv := ringPrivate(t, e.ring, AlgEdDSA)
	_, esPriv := ringPrivate(t, e.ring, AlgES256)
	edPub := edPriv.(ed25519.PrivateKey).Public().(ed25519.PublicKey)
	xPub := ringPublic(t, e.ringX, AlgEdDSA).(ed25519.PublicKey)
	valid := map[string]string{}
	for _, alg := range allAlgs {
		valid[alg] = e.mint(t, alg)
	}
	withChar := func(s string, i int, c byte) string { b := []byte(s); b[i] = c; return string(b) }
	flip := func(s string, i int) string {
		if s[i] == 'A' {
			return withChar(s, i, 'B')
		}
		return withChar(s, i, 'A')
	}
	segment := func(tok string, n int) (start int) {
		for i := 0; i < n; i++ {
			start += strings.IndexByte(tok[start:], '.') + 1
		}
		return start
	}
	localWith := func(key []byte, assertion string, claims string) string {
		k, err := paseto.V4SymmetricKeyFromBytes(key)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := paseto.NewTokenFromClaimsJSON([]byte(claims), nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok.V4Encrypt(k, []byte(assertion))
	}
	publicWith := func(assertion, claims string, footer []byte) string {
		k, err := paseto.NewV4AsymmetricSecretKeyFromEd25519(edPriv.(ed25519.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := paseto.NewTokenFromClaimsJSON([]byte(claims), footer)
		if err != nil {
			t.Fatal(err)
		}
		return tok.V4Sign(k, []byte(assertion))
	}
	pasetoClaims := func(set map[string]string) string {
		m := map[string]string{
			"iat": `"` + now.Format(time.RFC3339) + `"`, "exp": `"` + now.Add(time.Minute).Format(time.RFC3339) + `"`,
		}
		for k, v := range set {
			m[k] = v
		}
		return claimsJSON(now, m)
	}
	unix := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }

	cases := []struct {
		name, token, reason string
	}{
		// alg none and algorithm confusion.
		{"alg none", craftJWT(`{"alg":"none","typ":"handshake+jwt"}`, ok, nil), "malformed"},
		{"alg None", craftJWT(`{"alg":"None","typ":"handshake+jwt"}`, ok, hs), "algorithm"},
		{"alg NONE", craftJWT(`{"alg":"NONE","typ":"handshake+jwt"}`, ok, hs), "algorithm"},
		{"alg nOnE", craftJWT(`{"alg":"nOnE","typ":"handshake+jwt"}`, ok, hs), "algorithm"},
		{"alg none with signature", craftJWT(`{"alg":"none","typ":"handshake+jwt"}`, ok, hs), "algorithm"},
		{"alg hs256 lowercase", craftJWT(`{"alg":"hs256","typ":"handshake+jwt"}`, ok, hs), "algorithm"},
		{"HS256 keyed with EdDSA-only issuer's public key", craftJWT(hdrHS,
			claimsJSON(now, map[string]string{"iss": `"` + issuerX + `"`}), signHS256(xPub)), "algorithm"},
		{"HS256 keyed with public key PEM", craftJWT(hdrHS,
			claimsJSON(now, map[string]string{"iss": `"` + issuerX + `"`}), signHS256([]byte(pemPublic(t, xPub)))), "algorithm"},
		{"HS256 keyed with A's Ed25519 public key", craftJWT(hdrHS, ok, signHS256(edPub)), "signature"},
		{"EdDSA token presented as ES256", craftJWT(`{"alg":"ES256","typ":"handshake+jwt"}`, ok, signEd25519(edPriv.(ed25519.PrivateKey))), "signature"},
		{"ES256 r=s=0", craftJWT(`{"alg":"ES256","typ":"handshake+jwt"}`, ok, func([]byte) []byte { return make([]byte, 64) }), "signature"},
		{"ES256 DER signature", craftJWT(`{"alg":"ES256","typ":"handshake+jwt"}`, ok, func(in []byte) []byte {
			h := sha256.Sum256(in)
			sig, _ := ecdsa.SignASN1(rand.Reader, esPriv.(*ecdsa.PrivateKey), h[:])
			return sig
		}), "signature"},
		// Tampering.
		{"HS256 tampered payload", tamperSub(t, valid[AlgHS256]), "signature"},
		{"HS256 tampered signature", flip(valid[AlgHS256], segment(valid[AlgHS256], 2)+3), "signature"},
		{"EdDSA tampered signature", flip(valid[AlgEdDSA], segment(valid[AlgEdDSA], 2)+3), "signature"},
		{"ES256 tampered payload", tamperSub(t, valid[AlgES256]), "signature"},
		{"EdDSA tampered payload", tamperSub(t, valid[AlgEdDSA]), "signature"},
		{"v4.public tampered body", flip(valid[AlgV4Public], 20), "signature"},
		{"v4.local tampered body", flip(valid[AlgV4Local], 20), "signature"},
		{"v4.public footer added", valid[AlgV4Public] + "." + b64.EncodeToString([]byte(`{"kid":"x"}`)), "signature"},
		{"v4.local footer added", valid[AlgV4Local] + ".e30", "signature"},
		{"v4.public footer tampered", flip(publicWith(ImplicitAssertion, pasetoClaims(nil), []byte(`{"kid":"abc"}`)), len(valid[AlgV4Public])+3), "signature"},
		// Keys from the token.
		{"unknown kid", craftJWT(`{"alg":"EdDSA","typ":"handshake+jwt","kid":"nope"}`,
			claimsJSON(now, map[string]string{"iss": `"` + issuerY + `"`}), signEd25519(edPriv.(ed25519.PrivateKey))), "unknown_kid"},
		{"no kid for JWKS issuer", craftJWT(`{"alg":"EdDSA","typ":"handshake+jwt"}`,
			claimsJSON(now, map[string]string{"iss": `"` + issuerY + `"`}), signEd25519(edPriv.(ed25519.PrivateKey))), "unknown_kid"},
		{"embedded jwk", craftJWT(`{"alg":"EdDSA","typ":"handshake+jwt","jwk":`+jwkPublic(t, edPub, "")+`}`, ok, signEd25519(edPriv.(ed25519.PrivateKey))), "header"},
		{"jku", craftJWT(`{"alg":"HS256","typ":"handshake+jwt","jku":"https://evil.example/jwks"}`, ok, hs), "header"},
		{"x5u", craftJWT(`{"alg":"HS256","typ":"handshake+jwt","x5u":"https://evil.example/cert"}`, ok, hs), "header"},
		{"x5c", craftJWT(`{"alg":"HS256","typ":"handshake+jwt","x5c":["MIIB"]}`, ok, hs), "header"},
		{"crit", craftJWT(`{"alg":"HS256","typ":"handshake+jwt","crit":["exp"],"exp":1}`, ok, hs), "header"},
		{"b64 false", craftJWT(`{"alg":"HS256","typ":"handshake+jwt","b64":false,"crit":["b64"]}`, ok, hs), "header"},
		{"header duplicate alg", craftJWT(`{"alg":"HS256","alg":"none","typ":"handshake+jwt"}`, ok, hs), "malformed"},
		{"header ALG variant", craftJWT(`{"alg":"HS256","ALG":"none","typ":"handshake+jwt"}`, ok, hs), "header"},
		// Type.
		{"typ missing", craftJWT(`{"alg":"HS256"}`, ok, hs), "type"},
		{"typ JWT", craftJWT(`{"alg":"HS256","typ":"JWT"}`, ok, hs), "type"},
		{"typ at+jwt", craftJWT(`{"alg":"HS256","typ":"at+jwt"}`, ok, hs), "type"},
		{"typ not a string", craftJWT(`{"alg":"HS256","typ":1}`, ok, hs), "type"},
		// Audience and issuer.
		{"wrong aud", craftJWT(hdrHS, claimsJSON(now, map[string]string{"aud": `"https://c.example"`}), hs), "audience"},
		{"aud array of other", craftJWT(hdrHS, claimsJSON(now, map[string]string{"aud": `["https://c.example"]`}), hs), "audience"},
		{"aud empty array", craftJWT(hdrHS, claimsJSON(now, map[string]string{"aud": `[]`}), hs), "claims"},
		{"aud two elements", craftJWT(hdrHS, claimsJSON(now, map[string]string{"aud": `["` + audB + `","https://c.example"]`}), hs), "claims"},
		{"unknown iss", craftJWT(hdrHS, claimsJSON(now, map[string]string{"iss": `"https://evil.example"`}), hs), "issuer"},
		{"iss of X with A's shared key", craftJWT(hdrHS, claimsJSON(now, map[string]string{"iss": `"` + issuerX + `"`}), hs), "algorithm"},
		{"v4.local with wrong iss", localWith(e.localKey, ImplicitAssertion, pasetoClaims(map[string]string{"iss": `"` + issuerX + `"`})), "issuer"},
		// Time.
		{"expired", craftJWT(hdrHS, claimsJSON(now, map[string]string{"iat": unix(-2 * time.Minute), "exp": unix(-31 * time.Second)}), hs), "expired"},
		{"v4.public expired", publicWith(ImplicitAssertion, pasetoClaims(map[string]string{
			"iat": `"` + now.Add(-2*time.Minute).Format(time.RFC3339) + `"`, "exp": `"` + now.Add(-time.Minute).Format(time.RFC3339) + `"`}), nil), "expired"},
		{"nbf beyond leeway", craftJWT(hdrHS, claimsJSON(now, map[string]string{"nbf": unix(31 * time.Second), "exp": unix(2 * time.Minute)}), hs), "not_yet_valid"},
		{"iat beyond leeway", craftJWT(hdrHS, claimsJSON(now, map[string]string{"iat": unix(31 * time.Second), "exp": unix(2 * time.Minute)}), hs), "not_yet_valid"},
		{"lifetime too long", craftJWT(hdrHS, claimsJSON(now, map[string]string{"exp": unix(5*time.Minute + time.Second)}), hs), "lifetime"},
		{"exp before iat", craftJWT(hdrHS, claimsJSON(now, map[string]string{"exp": unix(-time.Second)}), hs), "lifetime"},
		// Missing and mistyped claims.
		{"missing iss", craftJWT(hdrHS, claimsJSON(now, map[string]string{"iss": ""}), hs), "claims"},
		{"missing sub", craftJWT(hdrHS, claimsJSON(now, map[string]string{"sub": ""}), hs), "claims"},
		{"missing aud", craftJWT(hdrHS, claimsJSON(now, map[string]string{"aud": ""}), hs), "claims"},
		{"missing exp", craftJWT(hdrHS, claimsJSON(now, map[string]string{"exp": ""}), hs), "claims"},
		{"missing iat", craftJWT(hdrHS, claimsJSON(now, map[string]string{"iat": ""}), hs), "claims"},
		{"missing jti", craftJWT(hdrHS, claimsJSON(now, map[string]string{"jti": ""}), hs), "claims"},
		{"v4.local missing jti", localWith(e.localKey, ImplicitAssertion, pasetoClaims(map[string]string{"jti": ""})), "claims"},
		{"sub null", craftJWT(hdrHS, claimsJSON(now, map[string]string{"sub": `null`}), hs), "claims"},
		{"sub empty", craftJWT(hdrHS, claimsJSON(now, map[string]string{"sub": `""`}), hs), "claims"},
		{"aud number", craftJWT(hdrHS, claimsJSON(now, map[string]string{"aud": `1`}), hs), "claims"},
		{"exp string", craftJWT(hdrHS, claimsJSON(now, map[string]string{"exp": `"` + unix(time.Minute) + `"`}), hs), "claims"},
		{"exp fraction", craftJWT(hdrHS, claimsJSON(now, map[string]string{"exp": unix(time.Minute) + ".5"}), hs), "claims"},
		{"exp exponent", craftJWT(hdrHS, claimsJSON(now, map[string]string{"exp": `1.7e9`}), hs), "claims"},
		{"iat negative", craftJWT(hdrHS, claimsJSON(now, map[string]string{"iat": `-1`}), hs), "claims"},
		{"jti number", craftJWT(hdrHS, claimsJSON(now, map[string]string{"jti": `12345`}), hs), "claims"},
		{"v4.public exp number", publicWith(ImplicitAssertion, claimsJSON(now, map[string]string{"iat": `"` + now.Format(time.RFC3339) + `"`}), nil), "claims"},
		{"claims not an object", craftJWT(hdrHS, `["iss"]`, hs), "malformed"},
		{"claims trailing data", craftJWT(hdrHS, ok+`{}`, hs), "malformed"},
		{"claims invalid UTF-8", craftJWT(hdrHS, strings.Replace(ok, "alice", "al\xffce", 1), hs), "malformed"},
		// Case variants and duplicates.
		{"AUD instead of aud", craftJWT(hdrHS, claimsJSON(now, map[string]string{"aud": ""}, `"AUD":"`+audB+`"`), hs), "claims"},
		{"Exp beside exp", craftJWT(hdrHS, claimsJSON(now, nil, `"Exp":`+unix(time.Hour)), hs), "claims"},
		{"Kelvin-sign variant", craftJWT(hdrHS, claimsJSON(now, nil, `"\u212Aid":1,"ſub":"mallory"`), hs), "claims"},
		{"duplicate aud", craftJWT(hdrHS, claimsJSON(now, nil, `"aud":"`+audB+`"`), hs), "malformed"},
		{"duplicate sub", craftJWT(hdrHS, claimsJSON(now, nil, `"sub":"mallory"`), hs), "malformed"},
		{"duplicate escaped sub", craftJWT(hdrHS, claimsJSON(now, nil, `"s\u0075b":"mallory"`), hs), "malformed"},
		{"v4.public duplicate sub", signV4PublicRaw(edPriv.(ed25519.PrivateKey), strings.TrimSuffix(pasetoClaims(nil), "}")+`,"sub":"mallory"}`), "malformed"},
		{"v4.public case variant", publicWith(ImplicitAssertion, strings.TrimSuffix(pasetoClaims(nil), "}")+`,"SUB":"mallory"}`, nil), "claims"},
		// PASETO purpose and implicit assertion.
		{"v4.local body under v4.public header", "v4.public." + strings.TrimPrefix(valid[AlgV4Local], "v4.local."), "signature"},
		{"v4.public body under v4.local header", "v4.local." + strings.TrimPrefix(valid[AlgV4Public], "v4.public."), "signature"},
		{"v4.local keyed with the Ed25519 public key", localWith(edPub, ImplicitAssertion, pasetoClaims(nil)), "signature"},
		{"v4.local wrong implicit assertion", localWith(e.localKey, "other", pasetoClaims(nil)), "signature"},
		{"v4.local no implicit assertion", localWith(e.localKey, "", pasetoClaims(nil)), "signature"},
		{"v4.public wrong implicit assertion", publicWith("tether-session", pasetoClaims(nil), nil), "signature"},
		{"v4.public no implicit assertion", publicWith("", pasetoClaims(nil), nil), "signature"},
		{"v3.local", "v3.local." + strings.TrimPrefix(valid[AlgV4Local], "v4.local."), "malformed"},
		{"v2.public", "v2.public." + strings.TrimPrefix(valid[AlgV4Public], "v4.public."), "malformed"},
		// Malformed input.
		{"empty", "", "malformed"},
		{"oversize", valid[AlgHS256] + strings.Repeat("A", MaxTokenSize), "malformed"},
		{"JSON serialization", `{"payload":"e30","protected":"eyJhbGciOiJIUzI1NiJ9","signature":"AAAA"}`, "malformed"},
		{"padding", valid[AlgHS256] + "=", "malformed"},
		{"padded header", strings.Replace(valid[AlgHS256], ".", "=.", 1), "malformed"},
		{"leading whitespace", " " + valid[AlgHS256], "malformed"},
		{"trailing newline", valid[AlgHS256] + "\n", "malformed"},
		{"inner CRLF", strings.Replace(valid[AlgHS256], ".", ".\r\n", 1), "malformed"},
		{"too many dots", valid[AlgHS256] + ".AAAA", "malformed"},
		{"two dots in a row", strings.Replace(valid[AlgHS256], ".", "..", 1), "malformed"},
		{"two segments", valid[AlgHS256][:strings.LastIndexByte(valid[AlgHS256], '.')], "malformed"},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(valid[AlgHS256]) + "+/", "malformed"},
		{"non-canonical trailing bits", nonCanonical(t, valid[AlgHS256]), "malformed"},
		{"v4.public too many dots", valid[AlgV4Public] + ".e30.e30", "malformed"},
		{"v4.local empty footer", valid[AlgV4Local] + ".", "malformed"},
		{"v4.public padding", valid[AlgV4Public] + "==", "malformed"},
		{"RFC 7515 A.5 unsecured", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.", "malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := e.verifier.Verify(context.Background(), c.token)
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", got)
			}
			if got != nil {
				t.Errorf("got claims %+v together with an error", got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("got %v, want an error matching ErrInvalid", err)
			}
			if r := Reason(err); r != c.reason {
				t.Errorf("Reason: got %q, want %q (%v)", r, c.reason, err)
			}
			if len(c.token) > 16 && strings.Contains(err.Error(), c.token[len(c.token)-16:]) {
				t.Errorf("error %q contains token bytes", err)
			}
		})
	}
}

// tamperSub changes the subject in a JWT's payload and keeps the signature.
func tamperSub(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	payload, err := b64.DecodeString(parts[1])
	if err != nil || !strings.Contains(string(payload), `"alice"`) {
		t.Fatalf("payload: %v", err)
	}
	parts[1] = b64.EncodeToString([]byte(strings.Replace(string(payload), `"alice"`, `"admin"`, 1)))
	return strings.Join(parts, ".")
}

// signV4PublicRaw signs payload bytes as they are (go-paseto would re-encode
// them through a map), with the handshake implicit assertion and no footer.
func signV4PublicRaw(key ed25519.PrivateKey, payload string) string {
	const h = "v4.public."
	var pae []byte
	le64 := func(n int) { pae = binary.LittleEndian.AppendUint64(pae, uint64(n)) }
	pieces := []string{h, payload, "", ImplicitAssertion}
	le64(len(pieces))
	for _, p := range pieces {
		le64(len(p))
		pae = append(pae, p...)
	}
	return h + b64.EncodeToString(append([]byte(payload), ed25519.Sign(key, pae)...))
}

// nonCanonical sets unused trailing bits in the last character of tok, so
// that a lax decoder yields the same bytes (PASETO vector 4-F-4's trick).
func nonCanonical(t *testing.T, tok string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	seg := tok[strings.LastIndexByte(tok, '.')+1:]
	if len(seg)%4 < 2 {
		t.Fatalf("last segment of length %d has no unused bits", len(seg))
	}
	i := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[i|1])
}

func TestVerifyAccepts(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	hs := signHS256(e.hsKey)
	hdrHS := `{"alg":"HS256","typ":"handshake+jwt"}`
	unix := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	_, yPriv := ringPrivate(t, e.ringY, AlgEdDSA)
	yKid, _ := ringPrivate(t, e.ringY, AlgEdDSA)
	cases := []struct{ name, token string }{
		{"exp within leeway", craftJWT(hdrHS, claimsJSON(now, map[string]string{"iat": unix(-time.Minute), "exp": unix(-29 * time.Second)}), hs)},
		{"nbf within leeway", craftJWT(hdrHS, claimsJSON(now, map[string]string{"nbf": unix(29 * time.Second)}), hs)},
		{"iat within leeway", craftJWT(hdrHS, claimsJSON(now, map[string]string{"iat": unix(29 * time.Second), "exp": unix(time.Minute)}), hs)},
		{"lifetime exactly 5m", craftJWT(hdrHS, claimsJSON(now, map[string]string{"exp": unix(5 * time.Minute)}), hs)},
		{"aud one-element array", craftJWT(hdrHS, claimsJSON(now, map[string]string{"aud": `["` + audB + `"]`}), hs)},
		{"header members reordered", craftJWT(`{"typ":"handshake+jwt","alg":"HS256"}`, claimsJSON(now, nil), hs)},
		{"unregistered claim ignored", craftJWT(hdrHS, claimsJSON(now, nil, `"roles":["x"]`), hs)},
		{"JWKS issuer with kid", craftJWT(`{"alg":"EdDSA","typ":"handshake+jwt","kid":"`+yKid+`"}`,
			claimsJSON(now, map[string]string{"iss": `"` + issuerY + `"`}), signEd25519(yPriv.(ed25519.PrivateKey)))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := e.verifier.Verify(context.Background(), c.token); err != nil {
				t.Errorf("got %v, want accepted", err)
			}
		})
	}
}

func TestExchangeReplay(t *testing.T) {
	e := newEnv(t)
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			guard := newMemGuard(e.clock.Now)
			tok := e.mint(t, alg)
			if _, err := e.verifier.Exchange(context.Background(), tok, guard); err != nil {
				t.Fatalf("first Exchange: %v", err)
			}
			_, err := e.verifier.Exchange(context.Background(), tok, guard)
			if !errors.Is(err, ErrReplayed) || !errors.Is(err, ErrInvalid) || Reason(err) != "replayed" {
				t.Errorf("second Exchange: got %v (reason %q), want ErrReplayed", err, Reason(err))
			}
		})
	}
}

// TestExchangeReplayReencoded presents other encodings of a used token: the
// guard keys on (iss, jti), so they are replays too.
func TestExchangeReplayReencoded(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	guard := newMemGuard(e.clock.Now)
	claims := claimsJSON(now, nil)
	first := craftJWT(`{"alg":"HS256","typ":"handshake+jwt"}`, claims, signHS256(e.hsKey))
	if _, err := e.verifier.Exchange(context.Background(), first, guard); err != nil {
		t.Fatal(err)
	}
	es := e.mint(t, AlgES256)
	if _, err := e.verifier.Exchange(context.Background(), es, guard); err != nil {
		t.Fatal(err)
	}
	copies := map[string]string{
		"reordered header": craftJWT(`{"typ":"handshake+jwt","alg":"HS256"}`, claims, signHS256(e.hsKey)),
		"reformatted claims": craftJWT(`{"alg":"HS256","typ":"handshake+jwt"}`,
			strings.ReplaceAll(claims, `",`, `", `), signHS256(e.hsKey)),
		"ECDSA (r, n-s)": malleateES256(t, es),
	}
	for name, tok := range copies {
		t.Run(name, func(t *testing.T) {
			if tok == first || tok == es {
				t.Fatal("copy is byte-identical")
			}
			if _, err := e.verifier.Verify(context.Background(), tok); err != nil {
				t.Fatalf("copy does not verify on its own: %v", err)
			}
			if _, err := e.verifier.Exchange(context.Background(), tok, guard); !errors.Is(err, ErrReplayed) {
				t.Errorf("got %v, want ErrReplayed", err)
			}
		})
	}
}

// malleateES256 returns the token with signature (r, n−s), which ECDSA
// also accepts.
func malleateES256(t *testing.T, tok string) string {
	i := strings.LastIndexByte(tok, '.')
	sig, err := b64.DecodeString(tok[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("ES256 signature: %v", err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	s.FillBytes(sig[32:])
	return tok[:i+1] + b64.EncodeToString(sig)
}

func TestExchangeConcurrent(t *testing.T) {
	e := newEnv(t)
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			guard := newMemGuard(e.clock.Now)
			tok := e.mint(t, alg)
			const n = 32
			var wins, replays atomic.Int32
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					_, err := e.verifier.Exchange(context.Background(), tok, guard)
					switch {
					case err == nil:
						wins.Add(1)
					case errors.Is(err, ErrReplayed):
						replays.Add(1)
					default:
						t.Errorf("Exchange: %v", err)
					}
				})
			}
			wg.Wait()
			if wins.Load() != 1 || replays.Load() != n-1 {
				t.Errorf("got %d successes and %d replays, want 1 and %d", wins.Load(), replays.Load(), n-1)
			}
		})
	}
}

// failingGuard stands for a store that is down.
type failingGuard struct{}

func (failingGuard) Consume(context.Context, string, time.Time) error {
	return errors.New("store down")
}

func TestExchangeGuardFailureFailsClosed(t *testing.T) {
	e := newEnv(t)
	_, err := e.verifier.Exchange(context.Background(), e.mint(t, AlgHS256), failingGuard{})
	if err == nil || errors.Is(err, ErrInvalid) || Reason(err) != "internal" {
		t.Errorf("got %v (reason %q), want an operational error that is not ErrInvalid", err, Reason(err))
	}
}

func TestExchangeReplayKeyAndUntil(t *testing.T) {
	e := newEnv(t)
	var gotKey string
	var gotUntil time.Time
	guard := guardFunc(func(_ context.Context, key string, until time.Time) error {
		gotKey, gotUntil = key, until
		return nil
	})
	tok, _, exp, err := e.minters[AlgHS256].Mint(audB, "alice")
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.verifier.Exchange(context.Background(), tok, guard)
	if err != nil {
		t.Fatal(err)
	}
	if want := exp.Add(DefaultLeeway + MaxLeeway); !gotUntil.Equal(want) {
		t.Errorf("until: got %v, want %v", gotUntil, want)
	}
	h := sha256.Sum256([]byte(issuerA + "\x00" + c.ID))
	if want := hex.EncodeToString(h[:]); gotKey != want {
		t.Errorf("key: got %q, want %q", gotKey, want)
	}
}

type guardFunc func(ctx context.Context, key string, until time.Time) error

func (f guardFunc) Consume(ctx context.Context, key string, until time.Time) error {
	return f(ctx, key, until)
}

func TestSubjectPrefix(t *testing.T) {
	empty, custom := "", "partner:"
	for _, tt := range []struct {
		spec IssuerSpec
		want string
	}{
		{IssuerSpec{Issuer: "https://x.example", Alg: AlgHS256}, ""},
		{IssuerSpec{Issuer: "https://x.example", Alg: AlgV4Local}, ""},
		{IssuerSpec{Issuer: "https://x.example", Alg: AlgEdDSA}, "https://x.example|"},
		{IssuerSpec{Issuer: "https://x.example", Alg: AlgV4Public}, "https://x.example|"},
		{IssuerSpec{Issuer: "https://x.example", Alg: AlgEdDSA, SubjectPrefix: &empty}, ""},
		{IssuerSpec{Issuer: "https://x.example", Alg: AlgES256, SubjectPrefix: &custom}, "partner:"},
	} {
		st, err := lookupSuite(formatOf(tt.spec.Alg), tt.spec.Alg)
		if err != nil {
			t.Fatal(err)
		}
		if got := tt.spec.subjectPrefix(st); got != tt.want {
			t.Errorf("%s with prefix %v: got %q, want %q", tt.spec.Alg, tt.spec.SubjectPrefix, got, tt.want)
		}
	}
}

// TestUnusableSubjectRefusedBeforeConsume: a sub that cannot name a local
// subject is refused by Verify, so Exchange never uses the token up.
func TestUnusableSubjectRefusedBeforeConsume(t *testing.T) {
	e := newEnv(t)
	for _, sub := range []string{strings.Repeat("s", 300), "tab\tinside"} {
		tok, _, _, err := e.minters[AlgHS256].Mint(audB, sub)
		if err != nil {
			t.Fatal(err)
		}
		consumed := false
		guard := guardFunc(func(context.Context, string, time.Time) error { consumed = true; return nil })
		if _, err := e.verifier.Exchange(context.Background(), tok, guard); !errors.Is(err, ErrClaims) || consumed {
			t.Errorf("sub %.20q: got %v, consumed %v; want ErrClaims and nothing consumed", sub, err, consumed)
		}
	}
}

// TestAuthTime: the subject's login time travels in auth_time, in every
// format, and a token whose auth_time is after its iat is refused.
func TestAuthTime(t *testing.T) {
	e := newEnv(t)
	login := e.clock.Now().Add(-time.Hour)
	for _, alg := range allAlgs {
		tok, _, _, err := e.minters[alg].Mint(audB, "alice", WithAuthTime(login))
		if err != nil {
			t.Fatalf("Mint(%s): %v", alg, err)
		}
		c, err := e.verifier.Verify(context.Background(), tok)
		if err != nil || !c.AuthTime.Equal(login) {
			t.Errorf("%s: got auth time %v, %v; want %v", alg, c, err, login)
		}
	}
	if c, err := e.verifier.Verify(context.Background(), e.mint(t, AlgHS256)); err != nil || !c.AuthTime.IsZero() {
		t.Errorf("without auth_time: got %v, %v; want a zero AuthTime", c, err)
	}
	// A login stamped by a node whose clock runs ahead is clamped to iat, not refused.
	ahead, _, _, err := e.minters[AlgHS256].Mint(audB, "alice", WithAuthTime(e.clock.Now().Add(time.Second)))
	if err != nil {
		t.Fatalf("Mint with an auth time just ahead: %v", err)
	}
	if c, err := e.verifier.Verify(context.Background(), ahead); err != nil || !c.AuthTime.Equal(c.IssuedAt) {
		t.Errorf("auth time ahead of iat: got %v, %v; want it clamped to iat", c, err)
	}
	now := e.clock.Now()
	future := strconv.FormatInt(now.Add(time.Minute).Unix(), 10)
	tok := craftJWT(`{"alg":"HS256","typ":"handshake+jwt"}`, claimsJSON(now, nil, `"auth_time":`+future), signHS256(e.hsKey))
	if _, err := e.verifier.Verify(context.Background(), tok); !errors.Is(err, ErrClaims) {
		t.Errorf("auth_time after iat: got %v, want ErrClaims", err)
	}
	tok = craftJWT(`{"alg":"HS256","typ":"handshake+jwt"}`, claimsJSON(now, nil, `"auth_time":-5`), signHS256(e.hsKey))
	if c, err := e.verifier.Verify(context.Background(), tok); !errors.Is(err, ErrClaims) || c != nil {
		t.Errorf("auth_time before 1970: got %v, %v; want nil claims and ErrClaims", c, err)
	}
}

// TestSharedKeyRotation: a shared key file may hold several keys, one per
// line; the first signs and all verify, so HS256 and v4.local keys rotate
// without a gap.
func TestSharedKeyRotation(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := b64.EncodeToString(randomBytes(t, 32)), b64.EncodeToString(randomBytes(t, 32))
	writeFile(t, dir, "old.key", oldKey+"\n")
	writeFile(t, dir, "new.key", newKey+"\n")
	writeFile(t, dir, "both.key", newKey+"\n\n"+oldKey+"\n")
	clock := newClock()
	for _, alg := range []string{AlgHS256, AlgV4Local} {
		minter := func(file string) *Minter {
			m, err := NewMinter(issuerA, Config{Audiences: map[string]AudienceSpec{audB: {Format: formatOf(alg), Alg: alg, KeyFile: file}}}, nil, dir, Options{Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		verifier := func(file string) *Verifier {
			v, err := NewVerifier(audB, Config{TrustedIssuers: []IssuerSpec{{Issuer: issuerA, Format: formatOf(alg), Alg: alg, KeyFile: file}}}, dir, Options{Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		both := verifier("both.key")
		for _, signer := range []string{"old.key", "new.key", "both.key"} {
			tok, _, _, err := minter(signer).Mint(audB, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := both.Verify(context.Background(), tok); err != nil {
				t.Errorf("%s signed with %s, verified with both keys: %v", alg, signer, err)
			}
		}
		tok, _, _, _ := minter("both.key").Mint(audB, "alice")
		if _, err := verifier("new.key").Verify(context.Background(), tok); err != nil {
			t.Errorf("%s: the first key of a file signs: %v", alg, err)
		}
		if _, err := verifier("old.key").Verify(context.Background(), tok); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: a token signed with the new key verified with the old one alone: %v", alg, err)
		}
	}
}

// TestTypMediaType: typ is a media type (RFC 7515 §4.1.9): "application/"
// may be written or left out and ASCII case does not matter, in every JWT
// format; any other typ is refused.
func TestTypMediaType(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	_, edPriv := ringPrivate(t, e.ring, AlgEdDSA)
	_, esPriv := ringPrivate(t, e.ring, AlgES256)
	signers := map[string]func([]byte) []byte{
		AlgHS256: signHS256(e.hsKey),
		AlgEdDSA: signEd25519(edPriv.(ed25519.PrivateKey)),
		AlgES256: signES256(esPriv.(*ecdsa.PrivateKey)),
	}
	cases := []struct {
		typ    string
		accept bool
	}{
		{"handshake+jwt", true},
		{"application/handshake+jwt", true},
		{"Handshake+JWT", true},
		{"APPLICATION/HANDSHAKE+JWT", true},
		{"Application/Handshake+Jwt", true},
		{"JWT", false},
		{"jwt", false},
		{"at+jwt", false},
		{"secevent+jwt", false},
		{"application/jwt", false},
		{"text/handshake+jwt", false},
		{"application/handshake+jwt; charset=utf-8", false},
		{"application//handshake+jwt", false},
		{"handshake+jwt ", false},
		{"application/handshake+jwt/x", false},
		{`handshake+jwt\u0000`, false}, // a JSON escape: NUL after the type
		{"hand\u017fhake+jwt", false},  // U+017F folds to "s" in Unicode, not in ASCII
		{"handshake+jw\u212a", false},  // U+212A (Kelvin) folds to "k"
		{"", false},
	}
	for alg, sign := range signers {
		for _, c := range cases {
			t.Run(alg+"/"+c.typ, func(t *testing.T) {
				tok := craftJWT(`{"alg":"`+alg+`","typ":"`+c.typ+`"}`, claimsJSON(now, nil), sign)
				_, err := e.verifier.Verify(context.Background(), tok)
				switch {
				case c.accept && err != nil:
					t.Errorf("got %v, want accepted", err)
				case !c.accept && Reason(err) != "type":
					t.Errorf("got %v (reason %q), want refused as type", err, Reason(err))
				}
			})
		}
	}
}

// TestSessionID: sid travels in every format and comes back as
// Claims.SessionID; it is optional, but when present must be a string.
func TestSessionID(t *testing.T) {
	e := newEnv(t)
	for _, alg := range allAlgs {
		tok, _, _, err := e.minters[alg].Mint(audB, "alice", WithSessionID("sess-1"))
		if err != nil {
			t.Fatalf("Mint(%s): %v", alg, err)
		}
		c, err := e.verifier.Verify(context.Background(), tok)
		if err != nil || c.SessionID != "sess-1" {
			t.Errorf("%s: got %+v, %v; want sid sess-1", alg, c, err)
		}
	}
	if _, _, _, err := e.minters[AlgHS256].Mint(audB, "alice", WithSessionID(strings.Repeat("s", maxClaimString+1))); err == nil {
		t.Error("Mint with an oversize sid: got no error")
	}
	if _, _, _, err := e.minters[AlgHS256].Mint(audB, ""); err == nil {
		t.Error("Mint without a subject: got no error")
	}
	now := e.clock.Now()
	for name, extra := range map[string]string{"sid number": `"sid":7`, "sid empty": `"sid":""`, "SID variant": `"SID":"x"`} {
		tok := craftJWT(`{"alg":"HS256","typ":"handshake+jwt"}`, claimsJSON(now, nil, extra), signHS256(e.hsKey))
		if _, err := e.verifier.Verify(context.Background(), tok); Reason(err) != "claims" {
			t.Errorf("%s: got %v, want refused as claims", name, err)
		}
	}
}

// TestSuiteTable: the table holds each (format, alg) once, every suite is
// found by its configuration names only, and its key kind matches what
// DESIGN §6 says of it.
func TestSuiteTable(t *testing.T) {
	want := map[[2]string]struct{ shared, jwks bool }{
		{FormatJWT, AlgHS256}:       {shared: true},
		{FormatJWT, AlgEdDSA}:       {jwks: true},
		{FormatJWT, AlgES256}:       {jwks: true},
		{FormatPASETO, AlgV4Public}: {},
		{FormatPASETO, AlgV4Local}:  {shared: true},
	}
	if len(suites) != len(want) {
		t.Errorf("got %d suites, want %d", len(suites), len(want))
	}
	for _, s := range suites {
		id := [2]string{s.format(), s.alg()}
		w, ok := want[id]
		if !ok {
			t.Errorf("unexpected suite %v", id)
			continue
		}
		delete(want, id)
		if s.sharedKey() != w.shared || s.jwks() != w.jwks {
			t.Errorf("%v: shared %v jwks %v, want %v %v", id, s.sharedKey(), s.jwks(), w.shared, w.jwks)
		}
		if got, err := lookupSuite(id[0], id[1]); err != nil || got != s {
			t.Errorf("lookupSuite(%v): got %v, %v", id, got, err)
		}
	}
	for _, bad := range [][2]string{{"JWT", AlgHS256}, {FormatJWT, "hs256"}, {FormatPASETO, AlgHS256}, {FormatJWT, "none"}, {"", ""}} {
		if _, err := lookupSuite(bad[0], bad[1]); err == nil {
			t.Errorf("lookupSuite(%v): got a suite", bad)
		}
	}
}
