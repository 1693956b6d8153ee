package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tetherhq/tether/forwardauth"
)

// The forward_auth, cookie and oidc sections of DESIGN §9, verbatim.
const designFront = `
forward_auth:
  trusted_proxies: ["127.0.0.0/8", "::1/128"]
  login_url: "https://auth.example.test/v1/login"
  rules:                       # first match wins; no match: any valid session is allowed
    - { host: "app.example.test", path_prefix: "/admin", require_roles: [admin] }   # any of them
    - { path_prefix: "/public", allow_anonymous: true }
    - { path_prefix: "/billing", require_roles: [billing], max_auth_age: 10m }
cookie:
  domain: "example.test"       # a parent domain shared with the apps: the cookie is then
                               # ` + "`__Secure-tether`" + ` (a __Host- cookie cannot carry a Domain)
oidc:                          # sign-in through the organisation's OpenID provider
  issuer: "https://idp.example.test"
  client_id: "tether"
  client_secret_file: "oidc-client.secret"     # 0600
  redirect_url: "https://auth.example.test/v1/login/callback"
  scopes: [openid, profile, email]
  roles_claim: "groups"        # optional: the subject's roles are set from this claim at sign-in
  subject_prefix: ""           # optional: the session's subject is subject_prefix + the ID token's sub
`

func TestLoadFileFrontExample(t *testing.T) {
	path := writeFile(t, designFront)
	c := Default()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	want := struct {
		ForwardAuth ForwardAuth
		Cookie      Cookie
		OIDC        OIDC
	}{
		ForwardAuth: ForwardAuth{Config: forwardauth.Config{
			TrustedProxies: []string{"127.0.0.0/8", "::1/128"},
			LoginURL:       "https://auth.example.test/v1/login",
			Rules: []forwardauth.Rule{
				{Host: "app.example.test", PathPrefix: "/admin", RequireRoles: []string{"admin"}},
				{PathPrefix: "/public", AllowAnonymous: true},
				{PathPrefix: "/billing", RequireRoles: []string{"billing"}, MaxAuthAge: 10 * time.Minute},
			},
		}},
		Cookie: Cookie{Domain: "example.test"},
		OIDC: OIDC{
			Issuer: "https://idp.example.test", ClientID: "tether",
			ClientSecretFile: filepath.Join(filepath.Dir(path), "oidc-client.secret"),
			RedirectURL:      "https://auth.example.test/v1/login/callback",
			Scopes:           []string{"openid", "profile", "email"}, RolesClaim: "groups",
		},
	}
	got := struct {
		ForwardAuth ForwardAuth
		Cookie      Cookie
		OIDC        OIDC
	}{c.ForwardAuth, c.Cookie, c.OIDC}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("front (-want +got):\n%s", diff)
	}
}

func TestResolveFrontRefuses(t *testing.T) {
	cases := map[string]struct{ yaml, msg string }{
		"bad CIDR":            {"forward_auth: {trusted_proxies: [localhost]}", "trusted_proxies"},
		"unknown rule key":    {"forward_auth: {rules: [{path: /x}]}", "field path not found"},
		"bad age":             {"forward_auth: {rules: [{max_auth_age: soon}]}", "time.Duration"},
		"relative login":      {"forward_auth: {login_url: /v1/login}", "login_url"},
		"leading dot domain":  {"cookie: {domain: .example.test}", "cookie.domain"},
		"one-label domain":    {"cookie: {domain: localhost}", "cookie.domain"},
		"oidc without client": {"oidc: {issuer: https://idp.example.test}", "client_id"},
		"oidc without issuer": {"oidc: {client_id: tether}", "issuer"},
		"oidc bad redirect":   {"oidc: {issuer: https://i.example, client_id: x, redirect_url: /cb}", "redirect_url"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := Default()
			err := c.LoadFile(writeFile(t, tc.yaml))
			if err == nil {
				err = c.Resolve()
			}
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want an error about %q", err, tc.msg)
			}
		})
	}
}
