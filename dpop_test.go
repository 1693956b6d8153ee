package tether_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/dpop"
	"github.com/tetherhq/tether/dpop/dpoptest"
	"github.com/tetherhq/tether/store/memstore"
)

const apiURL = "https://api.example.test/v1/orders"

func mustDPoPKey(t testing.TB, alg jose.SignatureAlgorithm) *dpoptest.Key {
	t.Helper()
	k, err := dpoptest.NewKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// createBound starts a session bound to k.
func (e *env) createBound(t testing.TB, subject string, k *dpoptest.Key) string {
	t.Helper()
	token, s, err := e.m.Create(context.Background(), tether.CreateParams{Subject: subject, JKT: k.JKT})
	if err != nil || s.JKT != k.JKT {
		t.Fatalf("Create bound = %+v, %v", s, err)
	}
	return token
}

func TestDPoPBinding(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	k, thief := mustDPoPKey(t, jose.ES256), mustDPoPKey(t, jose.EdDSA)
	bound := e.createBound(t, "alice", k)
	plain, _ := e.create(t, "bob")
	proof := func(key *dpoptest.Key, method, url, token string) string {
		return key.Sign(dpoptest.Claims(method, url, token, "", e.clock.Now()))
	}
	replayed := proof(k, "GET", apiURL, bound)
	if w, _ := serve(e.m, dpopRequest("GET", apiURL, "DPoP "+bound, replayed)); w.Code != http.StatusNoContent {
		t.Fatalf("first use: %d %s", w.Code, w.Body)
	}

	cases := []struct {
		name      string
		r         *http.Request
		wantCode  int
		wantError string // the challenge's error; "" for Bearer
	}{
		{"bound, DPoP with its proof", dpopRequest("GET", apiURL, "DPoP "+bound, proof(k, "GET", apiURL, bound)), 204, ""},
		{"bound, scheme in lower case", dpopRequest("GET", apiURL, "dpop "+bound, proof(k, "GET", apiURL, bound)), 204, ""},
		{"bound, EdDSA proof of a thief's key", dpopRequest("GET", apiURL, "DPoP "+bound, proof(thief, "GET", apiURL, bound)), 401, "invalid_token"},
		{"bound, as Bearer", dpopRequest("GET", apiURL, "Bearer "+bound, ""), 401, "invalid_token"},
		{"bound, as Bearer with a proof", dpopRequest("GET", apiURL, "Bearer "+bound, proof(k, "GET", apiURL, bound)), 401, "invalid_token"},
		{"bound, in the cookie", withCookie(dpopRequest("GET", apiURL, "", proof(k, "GET", apiURL, bound)), bound), 401, "invalid_token"},
		{"bound, no proof", dpopRequest("GET", apiURL, "DPoP "+bound, ""), 401, "invalid_dpop_proof"},
		{"bound, two proofs", withHeader(dpopRequest("GET", apiURL, "DPoP "+bound, proof(k, "GET", apiURL, bound)), "DPoP", proof(k, "GET", apiURL, bound)), 401, "invalid_dpop_proof"},
		{"bound, replayed proof", dpopRequest("GET", apiURL, "DPoP "+bound, replayed), 401, "invalid_dpop_proof"},
		{"bound, proof for another method", dpopRequest("DELETE", apiURL, "DPoP "+bound, proof(k, "GET", apiURL, bound)), 401, "invalid_dpop_proof"},
		{"bound, proof for another URL", dpopRequest("GET", apiURL, "DPoP "+bound, proof(k, "GET", "https://api.example.test/v1/admin", bound)), 401, "invalid_dpop_proof"},
		{"bound, proof for another token", dpopRequest("GET", apiURL, "DPoP "+bound, proof(k, "GET", apiURL, plain)), 401, "invalid_dpop_proof"},
		{"unbound, as Bearer", dpopRequest("GET", apiURL, "Bearer "+plain, ""), 204, ""},
		{"unbound, as DPoP", dpopRequest("GET", apiURL, "DPoP "+plain, proof(k, "GET", apiURL, plain)), 401, "invalid_token"},
		{"no such token, as DPoP", dpopRequest("GET", apiURL, "DPoP tts_not-a-token", proof(k, "GET", apiURL, "tts_not-a-token")), 401, "invalid_token"},
		{"no such token, as Bearer", dpopRequest("GET", apiURL, "Bearer tts_not-a-token", ""), 401, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, _ := serve(e.m, c.r)
			if w.Code != c.wantCode {
				t.Fatalf("status %d, want %d (%s)", w.Code, c.wantCode, w.Body)
			}
			if c.wantCode != 401 {
				return
			}
			want := `Bearer realm="tether"`
			if c.wantError != "" {
				want = dpop.Challenge(c.wantError)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != want {
				t.Fatalf("WWW-Authenticate = %q, want %q", got, want)
			}
		})
	}
}

func dpopRequest(method, url, authorization, proof string) *http.Request {
	r := httptest.NewRequest(method, url, nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	if proof != "" {
		r.Header.Set("DPoP", proof)
	}
	return r
}

func withHeader(r *http.Request, k, v string) *http.Request {
	r.Header.Add(k, v)
	return r
}

func withCookie(r *http.Request, token string) *http.Request {
	r.AddCookie(&http.Cookie{Name: tether.SecureCookieName, Value: token})
	return r
}

// TestDPoPAcrossNodes: a proof used on one node is refused on another that
// shares the store, by the store's replay guard (nonces not required), or by
// the nonce (required), which names the node it came from.
func TestDPoPAcrossNodes(t *testing.T) {
	for _, requireNonce := range []bool{false, true} {
		t.Run(map[bool]string{false: "store guard", true: "nonces"}[requireNonce], func(t *testing.T) {
			cfg := tether.Config{DPoP: dpop.Config{RequireNonce: requireNonce}}
			c := newClock()
			mem := memstore.NewWithOptions(memstore.Options{Now: c.Now})
			n1, n2 := newEnvOn(t, cfg, mem, c, false), newEnvOn(t, cfg, mem, c, false)
			k := mustDPoPKey(t, jose.EdDSA)
			token := n1.createBound(t, "alice", k)

			// The first call learns node 1's nonce, when one is required.
			nonce := ""
			first := dpopRequest("GET", apiURL, "DPoP "+token, k.Sign(dpoptest.Claims("GET", apiURL, token, "", c.Now())))
			w, _ := serve(n1.m, first)
			if requireNonce {
				if w.Code != 401 || w.Header().Get("WWW-Authenticate") != dpop.Challenge("use_dpop_nonce") || w.Header().Get("DPoP-Nonce") == "" {
					t.Fatalf("without a nonce: %d %q %q", w.Code, w.Header().Get("WWW-Authenticate"), w.Header().Get("DPoP-Nonce"))
				}
				nonce = w.Header().Get("DPoP-Nonce")
			} else if w.Code != 204 {
				t.Fatalf("first use: %d", w.Code)
			}
			proof := k.Sign(dpoptest.Claims("GET", apiURL, token, nonce, c.Now()))
			if w, _ := serve(n1.m, dpopRequest("GET", apiURL, "DPoP "+token, proof)); w.Code != 204 {
				t.Fatalf("use at node 1: %d %s", w.Code, w.Body)
			} else if requireNonce && w.Header().Get("DPoP-Nonce") == "" {
				t.Fatal("no DPoP-Nonce with a success")
			}
			w, _ = serve(n2.m, dpopRequest("GET", apiURL, "DPoP "+token, proof))
			wantErr := map[bool]string{false: "invalid_dpop_proof", true: "use_dpop_nonce"}[requireNonce]
			if w.Code != 401 || w.Header().Get("WWW-Authenticate") != dpop.Challenge(wantErr) {
				t.Fatalf("replay at node 2: %d %q, want 401 %s", w.Code, w.Header().Get("WWW-Authenticate"), wantErr)
			}
		})
	}
}

// TestDPoPFailClosed: when the store cannot say whether a proof was used
// before, the request is refused with 503, never let through.
func TestDPoPFailClosed(t *testing.T) {
	c := newClock()
	st := &guardDown{memstore.NewWithOptions(memstore.Options{Now: c.Now})}
	m, err := tether.NewManager(tether.Config{Store: st, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	k := mustDPoPKey(t, jose.ES256)
	token, _, err := m.Create(context.Background(), tether.CreateParams{Subject: "alice", JKT: k.JKT})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := serve(m, dpopRequest("GET", apiURL, "DPoP "+token, k.Sign(dpoptest.Claims("GET", apiURL, token, "", c.Now()))))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", w.Code)
	}
}

// guardDown is a store whose replay guard is unreachable.
type guardDown struct{ tether.Store }

func (guardDown) Consume(context.Context, string, time.Time) error {
	return fmt.Errorf("%w: fake outage", tether.ErrUnavailable)
}

func TestCreateJKT(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	for _, jkt := range []string{"short", "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k=", "kPrK+qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"} {
		if _, _, err := e.m.Create(context.Background(), tether.CreateParams{Subject: "a", JKT: jkt}); !errors.Is(err, tether.ErrBadInput) {
			t.Errorf("Create(JKT %q) = %v, want ErrBadInput", jkt, err)
		}
	}
}

// TestAuthenticateOriginal: behind forward auth, the proof names the request
// the proxy is asking about, not the check's own method and URL.
func TestAuthenticateOriginal(t *testing.T) {
	e := newEnv(t, tether.Config{}, false)
	k := mustDPoPKey(t, jose.EdDSA)
	token := e.createBound(t, "alice", k)
	const original = "https://app.example.test/orders/7"
	cases := []struct {
		name      string
		proofFor  string // method and URL the proof names
		proofURL  string
		wantError string // "" for accepted
	}{
		{"proof for the original request", "DELETE", original, ""},
		{"proof for the check itself", "GET", "http://127.0.0.1:8080/v1/authz", "invalid_dpop_proof"},
		{"proof for another method", "GET", original, "invalid_dpop_proof"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := dpopRequest("GET", "http://127.0.0.1:8080/v1/authz", "DPoP "+token,
				k.Sign(dpoptest.Claims(c.proofFor, c.proofURL, token, "", e.clock.Now())))
			s, _, err := e.m.AuthenticateOriginal(r, "DELETE", original)
			var de *tether.DPoPError
			switch {
			case c.wantError == "" && (err != nil || s.Subject != "alice"):
				t.Fatalf("AuthenticateOriginal = %v, %v; want alice", s, err)
			case c.wantError != "" && (!errors.As(err, &de) || de.Code != c.wantError):
				t.Fatalf("AuthenticateOriginal = %v; want DPoP %s", err, c.wantError)
			}
		})
	}
}
