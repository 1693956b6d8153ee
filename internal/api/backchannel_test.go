package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/internal/servicetest"
	"github.com/tetherhq/tether/store/memstore"
)

// logoutIssuer is an OpenID provider as far as back-channel logout needs
// one: discovery and a JWKS on loopback, and a P-256 key that signs logout
// tokens with whatever claims a test asks for (the npm provider always
// sends sub, so a sid-only token needs a key of our own).
type logoutIssuer struct {
	url string
	key *ecdsa.PrivateKey
}

const logoutClient = "tether"

func newLogoutIssuer(t *testing.T) *logoutIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &logoutIssuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.url, "authorization_endpoint": p.url + "/auth", "token_endpoint": p.url + "/token",
			"jwks_uri": p.url + "/jwks", "id_token_signing_alg_values_supported": []string{"ES256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// token signs a logout token: the required claims, then extra (a nil value
// removes a claim).
func (p *logoutIssuer) token(t *testing.T, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss": p.url, "aud": logoutClient, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": rand.Text(),
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}
	for k, v := range extra {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	payload, _ := json.Marshal(claims)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.key},
		(&jose.SignerOptions{}).WithType("logout+jwt").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

type logoutEnv struct {
	*env
	idp     *logoutIssuer
	failing *servicetest.FailingDeletes
}

// newLogoutEnv is a server whose oidc.issuer is a logoutIssuer, on a
// memstore that a test can make fail.
func newLogoutEnv(t *testing.T) *logoutEnv {
	t.Helper()
	idp := newLogoutIssuer(t)
	st := memstore.New()
	failing := &servicetest.FailingDeletes{Store: st}
	m, err := tether.NewManager(tether.Config{Store: failing})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); st.Close() })
	srv, err := api.New(api.Config{Manager: m, Admin: newAdmin(t), Logger: slog.New(slog.DiscardHandler),
		OIDC: &api.OIDCConfig{Issuer: idp.url, ClientID: logoutClient, ClientSecret: "test-client-secret-0123456789abcdef",
			RedirectURL: "http://127.0.0.1/v1/login/callback", Scopes: []string{"openid"}, SubjectPrefix: "idp:"}})
	if err != nil {
		t.Fatal(err)
	}
	return &logoutEnv{env: &env{store: st, m: m, pub: validated(t, "public", srv.Public())}, idp: idp, failing: failing}
}

// signedIn creates the session a sign-in at the provider as sub, in its
// session sid, creates.
func (e *logoutEnv) signedIn(t *testing.T, sub, sid string) string {
	t.Helper()
	token, _, err := e.m.Create(t.Context(), tether.CreateParams{Subject: "idp:" + sub, AuthMethod: "oidc",
		Origin: tether.Origin{Issuer: e.idp.url, Subject: sub, SessionID: sid}})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func (e *logoutEnv) logout(raw string) *httptest.ResponseRecorder {
	return serve(e.pub, req(http.MethodPost, "/v1/oidc/backchannel-logout",
		strings.NewReader(url.Values{"logout_token": {raw}}.Encode()), "Content-Type", "application/x-www-form-urlencoded"))
}

// live reports which of the tokens still stand for a session.
func (e *logoutEnv) live(t *testing.T, tokens map[string]string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for name, token := range tokens {
		_, err := e.m.Validate(t.Context(), token)
		out[name] = err == nil
	}
	return out
}

// TestBackchannelLogoutSID: a logout token may name the provider session
// by sid alone (OIDC Back-Channel Logout 1.0 §2.4); it ends the sessions
// signed in through that provider session, of whatever subject, and no
// other. One with neither sub nor sid is refused and changes nothing.
func TestBackchannelLogoutSID(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]any
		code   int
		ended  []string
	}{
		{"sid alone", map[string]any{"sid": "sid-1"}, http.StatusOK, []string{"alice in sid-1", "alice again in sid-1"}},
		{"sid alone, of another user", map[string]any{"sid": "sid-3"}, http.StatusOK, []string{"bob in sid-3"}},
		{"sid nobody signed in with", map[string]any{"sid": "sid-9"}, http.StatusOK, nil},
		{"sub and sid", map[string]any{"sub": "alice", "sid": "sid-2"}, http.StatusOK, []string{"alice in sid-2"}},
		{"neither sub nor sid", map[string]any{}, http.StatusBadRequest, nil},
		{"sid of another type", map[string]any{"sid": 7}, http.StatusBadRequest, nil},
		// OIDC Back-Channel Logout 1.0 §2.6: the rest of a logout token's checks.
		{"with a nonce", map[string]any{"sid": "sid-1", "nonce": "n"}, http.StatusBadRequest, nil},
		{"no logout event", map[string]any{"sid": "sid-1", "events": map[string]any{}}, http.StatusBadRequest, nil},
		{"another event", map[string]any{"sid": "sid-1", "events": map[string]any{"https://example.test/other": map[string]any{}}}, http.StatusBadRequest, nil},
		{"for another client", map[string]any{"sid": "sid-1", "aud": "someone-else"}, http.StatusBadRequest, nil},
		{"expired", map[string]any{"sid": "sid-1", "exp": time.Now().Add(-time.Hour).Unix()}, http.StatusBadRequest, nil},
		{"no jti", map[string]any{"sid": "sid-1", "jti": nil}, http.StatusBadRequest, nil},
		{"no iat", map[string]any{"sid": "sid-1", "iat": nil}, http.StatusBadRequest, nil},
		{"iat a year ahead", map[string]any{"sid": "sid-1", "iat": time.Now().AddDate(1, 0, 0).Unix()}, http.StatusBadRequest, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLogoutEnv(t)
			tokens := map[string]string{
				"alice in sid-1":       e.signedIn(t, "alice", "sid-1"),
				"alice again in sid-1": e.signedIn(t, "alice", "sid-1"),
				"alice in sid-2":       e.signedIn(t, "alice", "sid-2"),
				"bob in sid-3":         e.signedIn(t, "bob", "sid-3"),
			}
			w := e.logout(e.idp.token(t, tt.claims))
			if w.Code != tt.code {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tt.code)
			}
			if tt.code == http.StatusBadRequest && w.Body.String() != "{\"error\":\"invalid_request\"}\n" {
				t.Errorf("body: got %s, want invalid_request", w.Body)
			}
			want := map[string]bool{}
			for name := range tokens {
				want[name] = true
			}
			for _, name := range tt.ended {
				want[name] = false
			}
			for name, live := range e.live(t, tokens) {
				if live != want[name] {
					t.Errorf("%s: live %v, want %v", name, live, want[name])
				}
			}
		})
	}
}

// TestBackchannelLogoutRetriedAfterStoreFailure: a logout token whose
// revocation the store fails is answered 503, its jti left unconsumed, so
// the provider's retry of the same token ends the session (200); only a
// copy after that is refused as a replay.
func TestBackchannelLogoutRetriedAfterStoreFailure(t *testing.T) {
	for _, claims := range []map[string]any{{"sub": "alice", "sid": "sid-1"}, {"sid": "sid-1"}, {"sub": "alice"}} {
		t.Run(fmt.Sprint(claims), func(t *testing.T) {
			e := newLogoutEnv(t)
			token := e.signedIn(t, "alice", "sid-1")
			raw := e.idp.token(t, claims)
			e.failing.Down.Store(true)
			if w := e.logout(raw); w.Code != http.StatusServiceUnavailable {
				t.Fatalf("with the store failing: got %d %s, want 503", w.Code, w.Body)
			}
			e.failing.Down.Store(false)
			if !e.live(t, map[string]string{"alice": token})["alice"] {
				t.Fatal("the session ended although the store failed")
			}
			if w := e.logout(raw); w.Code != http.StatusOK {
				t.Fatalf("the provider's retry: got %d %s, want 200", w.Code, w.Body)
			}
			if e.live(t, map[string]string{"alice": token})["alice"] {
				t.Fatal("the session outlived the retried logout")
			}
			if w := e.logout(raw); w.Code != http.StatusBadRequest {
				t.Fatalf("a copy after success: got %d %s, want 400 (replay)", w.Code, w.Body)
			}
		})
	}
}
