package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/dbsc"
)

// TestOIDCSignInOffersDBSC: the OpenID sign-in offers device binding like
// the demo sign-in, and the bound session keeps the provider's identity
// (back-channel logout finds it by sid). With a cookie shared under
// cookie.domain it is not offered: a DBSC session covers only this origin.
func TestOIDCSignInOffersDBSC(t *testing.T) {
	e := newOIDCEnv(t, tether.Cookies{})
	c := browser(t)
	resp := e.signIn(t, c, e.tether.URL+"/v1/login", "alice", nil)
	m := regexp.MustCompile(`^\(ES256 RS256\);path="([^"]+)";challenge="([^"]+)"$`).FindStringSubmatch(resp.Header.Get("Secure-Session-Registration"))
	if m == nil {
		t.Fatalf("callback: Secure-Session-Registration %q", resp.Header.Get("Secure-Session-Registration"))
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey})
	payload, _ := json.Marshal(map[string]any{"aud": e.tether.URL + m[1], "jti": m[2], "iat": e.m.Now().Unix(), "key": json.RawMessage(pub)})
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"typ": "dbsc+jwt"}})
	jws, _ := signer.Sign(payload)
	proof, _ := jws.CompactSerialize()
	req, _ := http.NewRequest(http.MethodPost, e.tether.URL+m[1], nil)
	req.Header.Set("Secure-Session-Response", `"`+proof+`"`)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("registration: %d", res.StatusCode)
	}
	sess, err := e.m.Validate(t.Context(), sessionCookie(c, e.tether.URL))
	if err != nil || sess.DBSC == "" || sess.Subject != "idp:alice" || sess.Metadata["oidc_sid"] == "" || sess.AuthMethod != "oidc" {
		t.Fatalf("bound session: %+v, %v", sess, err)
	}

	shared := newOIDCEnv(t, tether.Cookies{Domain: "example.test"})
	resp = shared.signIn(t, browser(t), shared.tether.URL+"/v1/login", "alice", nil)
	if v := resp.Header.Get("Secure-Session-Registration"); v != "" || resp.StatusCode != http.StatusFound {
		t.Fatalf("with cookie.domain: %d, registration offered %q", resp.StatusCode, v)
	}
}

// TestDBSCAnswersMatchOpenAPI: registration, a refresh's challenge, a refresh
// and a refusal, each answered as the public OpenAPI document says (e.pub
// checks every answer against it).
func TestDBSCAnswersMatchOpenAPI(t *testing.T) {
	e := newEnv(t)
	token, _, err := e.m.Create(t.Context(), tether.CreateParams{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sign := func(aud, jti, sub string) string {
		pub, _ := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey})
		claims := map[string]any{"aud": aud, "jti": jti, "iat": e.m.Now().Unix(), "key": json.RawMessage(pub)}
		if sub != "" {
			claims["sub"] = sub
		}
		payload, _ := json.Marshal(claims)
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"typ": "dbsc+jwt"}})
		jws, _ := signer.Sign(payload)
		out, _ := jws.CompactSerialize()
		return `"` + out + `"`
	}
	cookie := "tether_session=" + token
	w := serve(e.pub, req(http.MethodPost, "http://127.0.0.1/dbsc/register", nil,
		"Cookie", cookie, "Secure-Session-Response", sign("http://127.0.0.1/dbsc/register", dbsc.NewChallenge([]byte(token), "", e.m.Now()), "")))
	var instr dbsc.Instructions
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &instr) != nil {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	id := `"` + instr.SessionIdentifier + `"`
	w = serve(e.pub, req(http.MethodPost, "http://127.0.0.1/dbsc/refresh", nil, "Sec-Secure-Session-Id", id))
	c, ok := dbsc.UnquoteString(w.Header().Get("Secure-Session-Challenge"))
	if w.Code != http.StatusForbidden || !ok {
		t.Fatalf("refresh without a proof: %d %q", w.Code, w.Header().Get("Secure-Session-Challenge"))
	}
	w = serve(e.pub, req(http.MethodPost, "http://127.0.0.1/dbsc/refresh", nil, "Sec-Secure-Session-Id", id,
		"Secure-Session-Response", sign("http://127.0.0.1/dbsc/refresh", c, instr.SessionIdentifier)))
	if w.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", w.Code, w.Body)
	}
	w = serve(e.pub, req(http.MethodPost, "http://127.0.0.1/dbsc/register", nil, "Cookie", cookie, "Secure-Session-Response", `"x.y.z"`))
	if w.Code != http.StatusBadRequest && w.Code != http.StatusUnauthorized {
		t.Fatalf("registration with a dead cookie and a junk proof: %d", w.Code)
	}
}
