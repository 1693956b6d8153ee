package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/dpop"
	"github.com/tetherhq/tether/dpop/dpoptest"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/store/memstore"
)

// The public listener as a service reaches it on loopback, and the URLs a
// proof names for it (plain HTTP to loopback: http).
const (
	pubHost     = "127.0.0.1:8080"
	exchangeURL = "http://" + pubHost + "/v1/handshakes/exchange"
	tokenURL    = "http://" + pubHost + "/oauth2/token"
	sessionURL  = "http://" + pubHost + "/v1/session"
	adminHost   = "127.0.0.1:8081"
	createURL   = "http://" + adminHost + "/v1/sessions"
)

func dpopKey(t *testing.T, alg jose.SignatureAlgorithm) *dpoptest.Key {
	t.Helper()
	k, err := dpoptest.NewKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// useDPoP calls GET /v1/session with token under scheme, and proof if not "".
func useDPoP(h http.Handler, scheme, token, proof string) *httptest.ResponseRecorder {
	header := []string{"Host", pubHost, "Authorization", scheme + " " + token}
	if proof != "" {
		header = append(header, "DPoP", proof)
	}
	return serve(h, req(http.MethodGet, "/v1/session", nil, header...))
}

func wantChallenge(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d (%s), want %d", w.Code, w.Body, status)
	}
	if got, want := w.Header().Get("WWW-Authenticate"), dpop.Challenge(code); got != want {
		t.Fatalf("WWW-Authenticate = %q, want %q", got, want)
	}
}

// TestDPoPExchange binds a session at the exchange and the token endpoint,
// and checks every use of it.
func TestDPoPExchange(t *testing.T) {
	f := newHSFixture(t)
	k, thief := dpopKey(t, jose.ES256), dpopKey(t, jose.EdDSA)
	minted := f.mintFor(t, "HS256", "alice")

	// A refused proof does not spend the handshake token.
	w := f.exchange(minted, "DPoP", k.Proof(http.MethodGet, exchangeURL, "", ""))
	wantError(t, w, http.StatusBadRequest, "invalid_dpop_proof", "")
	w = f.exchange(minted, "DPoP", k.Proof(http.MethodPost, exchangeURL, "", ""))
	if w.Code != http.StatusCreated {
		t.Fatalf("exchange with a proof: %d %s", w.Code, w.Body)
	}
	got := decode[created](t, w)
	if got.Session.JKT != k.JKT {
		t.Fatalf("session dpop_jkt = %q, want %q", got.Session.JKT, k.JKT)
	}
	if len(w.Result().Cookies()) != 0 {
		t.Fatal("a bound session was set as a cookie")
	}
	token := got.Token

	wantChallenge(t, useDPoP(f.b.pub, "Bearer", token, ""), 401, "invalid_token")
	wantChallenge(t, useDPoP(f.b.pub, "DPoP", token, thief.Proof(http.MethodGet, sessionURL, token, "")), 401, "invalid_token")
	wantChallenge(t, useDPoP(f.b.pub, "DPoP", token, k.Proof(http.MethodGet, sessionURL+"s", token, "")), 401, "invalid_dpop_proof")
	wantChallenge(t, useDPoP(f.b.pub, "DPoP", token, k.Proof(http.MethodGet, sessionURL, "", "")), 401, "invalid_dpop_proof")
	proof := k.Proof(http.MethodGet, sessionURL, token, "")
	if w := useDPoP(f.b.pub, "DPoP", token, proof); w.Code != http.StatusOK {
		t.Fatalf("DPoP use: %d %s", w.Code, w.Body)
	}
	wantChallenge(t, useDPoP(f.b.pub, "DPoP", token, proof), 401, "invalid_dpop_proof") // replayed

	// Introspection tells a resource server which key to check proofs against.
	w = f.b.introspect(url.Values{"token": {token}})
	var in struct {
		Active    bool              `json:"active"`
		TokenType string            `json:"token_type"`
		Cnf       map[string]string `json:"cnf"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &in); err != nil || !in.Active || in.TokenType != "DPoP" || in.Cnf["jkt"] != k.JKT {
		t.Fatalf("introspection: %s, %v", w.Body, err)
	}

	// The RFC 8693 grant binds the same way and says so in token_type.
	w = f.token(grant(f.mintFor(t, "HS256", "alice"), urnJWT), "Host", pubHost, "DPoP", k.Proof(http.MethodGet, tokenURL, "", ""))
	if w.Code != http.StatusBadRequest || decode[map[string]string](t, w)["error"] != "invalid_dpop_proof" {
		t.Fatalf("token endpoint, bad proof: %d %s", w.Code, w.Body)
	}
	w = f.token(grant(f.mintFor(t, "HS256", "alice"), urnJWT), "Host", pubHost, "DPoP", k.Proof(http.MethodPost, tokenURL, "", ""))
	tok := decode[map[string]any](t, w)
	if w.Code != http.StatusOK || tok["token_type"] != "DPoP" {
		t.Fatalf("token endpoint: %d %s", w.Code, w.Body)
	}
	wantChallenge(t, useDPoP(f.b.pub, "Bearer", tok["access_token"].(string), ""), 401, "invalid_token")
}

func TestDPoPAdminCreate(t *testing.T) {
	e := newEnv(t)
	k := dpopKey(t, jose.EdDSA)
	admin := func(body, proof string) *httptest.ResponseRecorder {
		h := []string{"Host", adminHost}
		if proof != "" {
			h = append(h, "DPoP", proof)
		}
		return e.admin(http.MethodPost, "/v1/sessions", body, h...)
	}
	cases := []struct {
		name, body, proof string
		wantStatus        int
		wantJKT           string
	}{
		{"dpop_jkt", `{"subject":"a","dpop_jkt":"` + k.JKT + `"}`, "", 201, k.JKT},
		{"proof", `{"subject":"a"}`, k.Proof(http.MethodPost, createURL, "", ""), 201, k.JKT},
		{"both, agreeing", `{"subject":"a","dpop_jkt":"` + k.JKT + `"}`, k.Proof(http.MethodPost, createURL, "", ""), 201, k.JKT},
		{"both, differing", `{"subject":"a","dpop_jkt":"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"}`, k.Proof(http.MethodPost, createURL, "", ""), 400, ""},
		{"malformed dpop_jkt", `{"subject":"a","dpop_jkt":"abc"}`, "", 400, ""},
		{"proof for another URL", `{"subject":"a"}`, k.Proof(http.MethodPost, "http://"+adminHost+"/v1/other", "", ""), 400, ""},
		{"neither", `{"subject":"a"}`, "", 201, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := admin(c.body, c.proof)
			if w.Code != c.wantStatus {
				t.Fatalf("status %d (%s), want %d", w.Code, w.Body, c.wantStatus)
			}
			if c.wantStatus == 201 {
				if got := decode[created](t, w); got.Session.JKT != c.wantJKT {
					t.Fatalf("dpop_jkt = %q, want %q", got.Session.JKT, c.wantJKT)
				}
			}
		})
	}
}

// TestDPoPNonce: with nonces required, a client learns the nonce from the
// first refusal, and every success hands it the current one.
func TestDPoPNonce(t *testing.T) {
	st := memstore.New()
	m, err := tether.NewManager(tether.Config{Store: st, DPoP: dpop.Config{RequireNonce: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); st.Close() })
	srv, err := api.New(api.Config{Manager: m, Admin: newAdmin(t)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{m: m, pub: srv.Public(), adm: srv.Admin()}
	k := dpopKey(t, jose.ES256)

	w := e.admin(http.MethodPost, "/v1/sessions", `{"subject":"a"}`, "Host", adminHost, "DPoP", k.Proof(http.MethodPost, createURL, "", ""))
	wantError(t, w, http.StatusBadRequest, "use_dpop_nonce", "")
	nonce := w.Header().Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("no DPoP-Nonce with use_dpop_nonce")
	}
	w = e.admin(http.MethodPost, "/v1/sessions", `{"subject":"a"}`, "Host", adminHost, "DPoP", k.Proof(http.MethodPost, createURL, "", nonce))
	if w.Code != http.StatusCreated {
		t.Fatalf("create with the nonce: %d %s", w.Code, w.Body)
	}
	token := decode[created](t, w).Token

	w = useDPoP(e.pub, "DPoP", token, k.Proof(http.MethodGet, sessionURL, token, ""))
	wantChallenge(t, w, 401, "use_dpop_nonce")
	if w.Header().Get("DPoP-Nonce") == "" || !strings.Contains(w.Body.String(), "unauthenticated") {
		t.Fatalf("use_dpop_nonce refusal: %v %s", w.Header(), w.Body)
	}
	w = useDPoP(e.pub, "DPoP", token, k.Proof(http.MethodGet, sessionURL, token, w.Header().Get("DPoP-Nonce")))
	if w.Code != http.StatusOK || w.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("use with the nonce: %d %v", w.Code, w.Header())
	}
}

// TestDPoPRotate: a rotated bound session stays bound, and its old token,
// presented as DPoP, is refused in the DPoP scheme.
func TestDPoPRotate(t *testing.T) {
	e := newEnv(t)
	k := dpopKey(t, jose.EdDSA)
	old := e.create(t, `{"subject":"a","dpop_jkt":"`+k.JKT+`"}`).Token
	const rotateURL = "http://" + pubHost + "/v1/session/rotate"
	w := serve(e.pub, req(http.MethodPost, "/v1/session/rotate", nil,
		"Host", pubHost, "Authorization", "DPoP "+old, "DPoP", k.Proof(http.MethodPost, rotateURL, old, "")))
	if w.Code != http.StatusOK {
		t.Fatalf("rotate: %d %s", w.Code, w.Body)
	}
	got := decode[created](t, w)
	if got.Session.JKT != k.JKT {
		t.Fatalf("rotated session dpop_jkt = %q, want %q", got.Session.JKT, k.JKT)
	}
	wantChallenge(t, useDPoP(e.pub, "Bearer", got.Token, ""), 401, "invalid_token")
	wantChallenge(t, useDPoP(e.pub, "DPoP", old, k.Proof(http.MethodGet, sessionURL, old, "")), 401, "invalid_token")
	if w := useDPoP(e.pub, "DPoP", got.Token, k.Proof(http.MethodGet, sessionURL, got.Token, "")); w.Code != http.StatusOK {
		t.Fatalf("the rotated token with a proof: %d %s", w.Code, w.Body)
	}
}
