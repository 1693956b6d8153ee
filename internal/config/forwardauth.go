package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/tetherhq/tether/forwardauth"
)

// ForwardAuth is the forward_auth section (DESIGN §9): the rules for apps
// behind a proxy, and where to serve Envoy's gRPC ext_authz.
type ForwardAuth struct {
	forwardauth.Config `yaml:",inline"`
	// GRPCAddr, if set, serves envoy.service.auth.v3.Authorization (gRPC
	// ext_authz) on this address, a listener of its own.
	GRPCAddr string `yaml:"grpc_addr"`
}

// Cookie is where the session cookie lives.
type Cookie struct {
	// Domain, if set, is a parent domain shared with the apps: the cookie is
	// then __Secure-tether on that domain instead of the host-only __Host-tether.
	Domain string `yaml:"domain"`
}

// OIDC configures sign-in through an OpenID provider; empty Issuer: off.
type OIDC struct {
	Issuer           string   `yaml:"issuer"` // https, or http on a loopback address for development
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"` // mode 0600
	RedirectURL      string   `yaml:"redirect_url"`       // this node's /v1/login/callback as the provider knows it
	Scopes           []string `yaml:"scopes"`
	RolesClaim       string   `yaml:"roles_claim"`    // optional: the subject's roles are set from this claim
	SubjectPrefix    string   `yaml:"subject_prefix"` // optional: subject = prefix + the ID token's sub
}

var frontSettings = []Setting{
	{Key: "forward_auth", Help: "rules for apps behind nginx, Caddy, Traefik or Envoy asking /v1/authz, trusted_proxies, login_url, grpc_addr (see docs/proxies.md)"},
	{Key: "cookie.domain", Env: "TETHER_COOKIE_DOMAIN", Flag: "cookie-domain",
		Help:  "a parent domain shared with the apps: the session cookie is then __Secure-tether on it",
		field: func(c *Config) any { return &c.Cookie.Domain }},
	{Key: "oidc.issuer", Env: "TETHER_OIDC_ISSUER", Flag: "oidc-issuer",
		Help:  "OpenID provider for sign-in at /v1/login; https (plain http only on loopback); none: off",
		field: func(c *Config) any { return &c.OIDC.Issuer }},
	{Key: "oidc.client_id", Env: "TETHER_OIDC_CLIENT_ID", Flag: "oidc-client-id",
		Help:  "this node's client ID at the provider",
		field: func(c *Config) any { return &c.OIDC.ClientID }},
	{Key: "oidc.client_secret_file", Env: "TETHER_OIDC_CLIENT_SECRET_FILE", Flag: "oidc-client-secret-file",
		Help:  "file holding the client secret (mode 0600)",
		field: func(c *Config) any { return &c.OIDC.ClientSecretFile }},
	{Key: "oidc.redirect_url", Env: "TETHER_OIDC_REDIRECT_URL", Flag: "oidc-redirect-url",
		Help:  "this node's /v1/login/callback as registered at the provider",
		field: func(c *Config) any { return &c.OIDC.RedirectURL }},
	{Key: "oidc.scopes", Env: "TETHER_OIDC_SCOPES", Flag: "oidc-scopes", Default: "openid,profile,email",
		Help:  "scopes asked for at sign-in",
		field: func(c *Config) any { return &c.OIDC.Scopes }},
	{Key: "oidc.roles_claim", Env: "TETHER_OIDC_ROLES_CLAIM", Flag: "oidc-roles-claim",
		Help:  "ID-token claim whose values become the subject's roles at each sign-in; none: roles untouched",
		field: func(c *Config) any { return &c.OIDC.RolesClaim }},
	{Key: "oidc.subject_prefix", Env: "TETHER_OIDC_SUBJECT_PREFIX", Flag: "oidc-subject-prefix",
		Help:  "put before the ID token's sub to make the session's subject",
		field: func(c *Config) any { return &c.OIDC.SubjectPrefix }},
}

// checkFront checks the forward_auth, cookie and oidc sections.
func (c *Config) checkFront() error {
	if _, err := forwardauth.NewPolicy(c.ForwardAuth.Config); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if d := c.Cookie.Domain; d != "" {
		if strings.HasPrefix(d, ".") || strings.ContainsAny(d, ":/ ") || !strings.Contains(d, ".") {
			return fmt.Errorf("config: cookie.domain %q: want a parent domain such as example.test", d)
		}
	}
	o := c.OIDC
	if o.Issuer == "" {
		if o.ClientID != "" || o.RedirectURL != "" {
			return errors.New("config: oidc needs an issuer")
		}
		return nil
	}
	if o.ClientID == "" || o.RedirectURL == "" {
		return errors.New("config: oidc needs client_id and redirect_url")
	}
	if u, err := url.Parse(o.RedirectURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("config: oidc.redirect_url %q must be an absolute http(s) URL", o.RedirectURL)
	}
	return nil
}
