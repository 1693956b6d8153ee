package forwardauth_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/dpop/dpoptest"
	"github.com/tetherhq/tether/forwardauth"
)

// A DPoP-bound session passes forward auth only as "Authorization: DPoP"
// with a proof by its key for the original request's method and URL
// (DESIGN §12): a proof for the sub-request, another URL or another key,
// a replayed proof, or the token as Bearer are all refused with the DPoP
// challenge.
func TestAuthorizerDPoP(t *testing.T) {
	f := newFixture(t, forwardauth.Config{}, tether.Cookies{})
	key, err := dpoptest.NewKey(jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := dpoptest.NewKey(jose.EdDSA)
	token, _, err := f.m.Create(context.Background(), tether.CreateParams{Subject: "bound", JKT: key.JKT})
	if err != nil {
		t.Fatal(err)
	}
	const orig = "https://app.example.test/reports/1"
	ask := func(scheme, proof string) want {
		t.Helper()
		h := append(traefik("POST", "https", "app.example.test", "/reports/1?x=y"), "Authorization", scheme+" "+token)
		if proof != "" {
			h = append(h, "DPoP", proof)
		}
		w := f.ask("/v1/authz", h...)
		return want{status: w.Code, subject: w.Header().Get(forwardauth.HeaderSubject), wwwAuth: w.Header().Get("WWW-Authenticate")}
	}
	replayed := key.Proof("POST", orig, token, "")
	if got := ask("DPoP", replayed); got.status != 200 || got.subject != "bound" {
		t.Fatalf("a proof for the original request: got %+v, want 200 bound", got)
	}
	for name, tc := range map[string]struct{ scheme, proof string }{
		"as Bearer":                 {"Bearer", ""},
		"without a proof":           {"DPoP", ""},
		"proof for the sub-request": {"DPoP", key.Proof("GET", "http://tether.internal/v1/authz", token, "")},
		"proof for another URL":     {"DPoP", key.Proof("POST", "https://app.example.test/admin", token, "")},
		"proof for another method":  {"DPoP", key.Proof("GET", orig, token, "")},
		"proof by another key":      {"DPoP", other.Proof("POST", orig, token, "")},
		"replayed proof":            {"DPoP", replayed},
		"proof for another token":   {"DPoP", key.Proof("POST", orig, "tts_other", "")},
	} {
		t.Run(name, func(t *testing.T) {
			got := ask(tc.scheme, tc.proof)
			if got.status != 401 || got.subject != "" || !strings.HasPrefix(got.wwwAuth, "DPoP") {
				t.Errorf("got %+v, want 401 with a DPoP challenge", got)
			}
		})
	}
}

// validateOnly is a Validator that is not a *tether.Manager (as a remote
// client would be): the Authorizer then reads the token and checks the
// cookie's origin itself.
type validateOnly struct{ m *tether.Manager }

func (v validateOnly) Validate(ctx context.Context, token string) (*tether.Session, error) {
	return v.m.Validate(ctx, token)
}

func TestAuthorizerPlainValidator(t *testing.T) {
	f := newFixture(t, forwardauth.Config{Rules: testRules}, tether.Cookies{Domain: "example.test"})
	p, err := forwardauth.NewPolicy(forwardauth.Config{Rules: testRules})
	if err != nil {
		t.Fatal(err)
	}
	f.a, err = forwardauth.New(forwardauth.Options{Validator: validateOnly{f.m}, Cookies: tether.Cookies{Domain: "example.test"},
		Logger: slog.New(slog.DiscardHandler)}, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		header []string
		want   want
	}{
		{"bearer", join(traefik("GET", "https", "app.example.test", "/x"), bearer("user")), want{status: 200, subject: "alice"}},
		{"domain cookie", join(traefik("GET", "https", "app.example.test", "/x"), []string{"Cookie", "__Secure-tether=token:user"}), want{status: 200, subject: "alice"}},
		{"cross-site cookie POST", join(traefik("POST", "https", "app.example.test", "/x"), []string{"Cookie", "__Secure-tether=token:user", "Sec-Fetch-Site", "cross-site"}), want{status: 403, errCode: "cross_origin"}},
		{"no token", traefik("GET", "https", "app.example.test", "/x"), want{status: 401, errCode: "unauthenticated", wwwAuth: "Bearer"}},
		{"role missing", join(traefik("GET", "https", "app.example.test", "/admin"), bearer("user")), want{status: 403, errCode: "forbidden"}},
		{"anonymous", traefik("GET", "https", "app.example.test", "/public"), want{status: 200}},
	} {
		t.Run(tc.name, func(t *testing.T) { check(t, f.ask("/v1/authz", tc.header...), tc.want) })
	}
}
