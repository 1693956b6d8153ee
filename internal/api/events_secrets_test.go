package api_test

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/handshake"
	"github.com/tetherhq/tether/internal/api"
	"github.com/tetherhq/tether/store/memstore"
)

// TestEventsHoldNoSecret: after every kind of change the API makes, and the
// refusals it records, the whole event log holds no token, secret or key:
// not the ones issued, not the admin key, not a wrong key or a refused
// handshake token that was tried.
func TestEventsHoldNoSecret(t *testing.T) {
	// A node that trusts one issuer, so that a refused exchange is recorded.
	keyFile := filepath.Join(t.TempDir(), "x.key")
	if err := os.WriteFile(keyFile, []byte(base64.RawURLEncoding.EncodeToString(make([]byte, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	verifier, err := handshake.NewVerifier("https://b.example", handshake.Config{TrustedIssuers: []handshake.IssuerSpec{
		{Issuer: "https://x.example", Format: handshake.FormatJWT, Alg: handshake.AlgHS256, KeyFile: keyFile},
	}}, "", handshake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	m, err := tether.NewManager(tether.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	admin := newAdmin(t)
	admin.RecordFailures(m) // as serve does
	srv, err := api.New(api.Config{Manager: m, Admin: admin, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{m: m, pub: srv.Public(), adm: srv.Admin()}
	const wrongKey = "wrong-admin-key-0123456789abcdef"
	// {"alg":"HS256","typ":"handshake+jwt"}.{"iss":"https://x.example"}.signature-secret
	const forged = "eyJhbGciOiJIUzI1NiIsInR5cCI6ImhhbmRzaGFrZStqd3QifQ.eyJpc3MiOiJodHRwczovL3guZXhhbXBsZSJ9.c2lnbmF0dXJlLXNlY3JldA"
	var tokens []string

	alice := e.create(t, `{"subject":"alice","roles":["viewer"],"metadata":{"ip":"192.0.2.4","user_agent":"test"}}`)
	tokens = append(tokens, alice.Token)
	w := e.bearer(http.MethodPost, "/v1/session/rotate", alice.Token)
	if w.Code != http.StatusOK {
		t.Fatalf("rotate: %d %s", w.Code, w.Body)
	}
	rotated := decode[created](t, w)
	tokens = append(tokens, rotated.Token)
	bob := e.create(t, `{"subject":"bob"}`)
	tokens = append(tokens, bob.Token)

	steps := []struct {
		name string
		w    func() int
		want int
	}{
		{"set roles", func() int { return e.admin(http.MethodPut, "/v1/subjects/alice/roles", `{"roles":["editor"]}`).Code }, http.StatusOK},
		{"logout", func() int { return e.bearer(http.MethodDelete, "/v1/session", rotated.Token).Code }, http.StatusNoContent},
		{"revoke all", func() int { return e.admin(http.MethodDelete, "/v1/subjects/bob/sessions", "").Code }, http.StatusOK},
		{"wrong admin key", func() int {
			return serve(e.adm, req(http.MethodGet, "/v1/keys", nil, "Authorization", "Bearer "+wrongKey)).Code
		}, http.StatusUnauthorized},
		{"refused handshake", func() int {
			return serve(e.pub, req(http.MethodPost, "/v1/handshakes/exchange", strings.NewReader(`{"token":"`+forged+`"}`),
				"Content-Type", "application/json")).Code
		}, http.StatusUnauthorized},
	}
	for _, s := range steps {
		if got := s.w(); got != s.want {
			t.Fatalf("%s: %d, want %d", s.name, got, s.want)
		}
	}

	w = e.admin(http.MethodGet, "/v1/events?limit=1000", "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /v1/events: %d %s", w.Code, w.Body)
	}
	log := w.Body.String()
	types := map[string]bool{}
	for _, ev := range decode[eventsPage](t, w).Events {
		types[ev.Type] = true
	}
	for _, typ := range []string{tether.EventSessionCreated, tether.EventSessionRotated, tether.EventRolesChanged,
		tether.EventSessionRevoked, tether.EventSubjectRevoked, tether.EventAdminAuthFailed, tether.EventHandshakeRefused} {
		if !types[typ] {
			t.Errorf("no %s event: the test does not cover it", typ)
		}
	}
	secrets := append(tokens, testAdminKey, wrongKey, forged, "c2lnbmF0dXJlLXNlY3JldA", tether.TokenPrefix, "eyJ")
	for _, tok := range tokens {
		secrets = append(secrets, tok[len(tok)-20:]) // a token's secret part alone
	}
	for _, secret := range secrets {
		if strings.Contains(log, secret) {
			t.Errorf("the event log holds %q", secret)
		}
	}
}
