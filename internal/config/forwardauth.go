package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/tetherhq/tether/forwardauth"
)

// Front is Tether as the front door of apps behind a reverse proxy (DESIGN
// §9): forward-auth rules, the session cookie's domain, and sign-in through
// the organisation's OpenID provider.
type Front struct {
	ForwardAuth ForwardAuth `yaml:"forward_auth"`
	Cookie      Cookie      `yaml:"cookie"`
	OIDC        OIDC        `yaml:"oidc"`
}

// ForwardAuth is the forward_auth section: the rules, and where to serve
// Envoy's gRPC ext_authz.
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
	ClientSecretFile string   `yaml:"client_secret_file"` // relative to the config file; mode 0600
	RedirectURL      string   `yaml:"redirect_url"`       // this node's /v1/login/callback as the provider knows it
	Scopes           []string `yaml:"scopes"`             // default openid, profile, email
	RolesClaim       string   `yaml:"roles_claim"`        // optional: the subject's roles are set from this claim
	SubjectPrefix    string   `yaml:"subject_prefix"`     // optional: subject = prefix + the ID token's sub
}

// checkFront checks the section and resolves its paths against the file.
func (c *Config) checkFront() error {
	f := &c.Front
	if _, err := forwardauth.NewPolicy(f.ForwardAuth.Config); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if d := f.Cookie.Domain; d != "" {
		if strings.HasPrefix(d, ".") || strings.ContainsAny(d, ":/ ") || !strings.Contains(d, ".") {
			return fmt.Errorf("config: cookie.domain %q: want a parent domain such as example.test", d)
		}
	}
	o := &f.OIDC
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
	o.ClientSecretFile = c.Path(o.ClientSecretFile)
	return nil
}
