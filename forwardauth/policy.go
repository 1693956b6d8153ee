package forwardauth

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config is the forward_auth section of the configuration file.
type Config struct {
	// TrustedProxies are the peers (CIDRs) whose X-Forwarded-* and
	// X-Original-* headers are believed. Default loopback: 127.0.0.0/8, ::1/128.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// LoginURL, if set, is where a browser without a valid session is sent,
	// with rd=<the original URL>; otherwise it gets 401.
	LoginURL string `yaml:"login_url"`
	// Rules are tried in order; the first that matches decides. When none
	// matches, any valid session is allowed.
	Rules []Rule `yaml:"rules"`
}

// Rule applies to the requests it matches: all its set match fields must.
type Rule struct {
	Host       string   `yaml:"host"`        // exact, or "*.example.test" for any subdomain; empty: any host
	PathPrefix string   `yaml:"path_prefix"` // whole segments: "/admin" matches /admin and /admin/x, not /administrator
	Methods    []string `yaml:"methods"`     // empty: any method

	RequireRoles   []string      `yaml:"require_roles"`   // any of them; empty: any valid session
	AllowAnonymous bool          `yaml:"allow_anonymous"` // no session needed (identity headers still sent when there is one)
	MaxAuthAge     time.Duration `yaml:"max_auth_age"`    // the sign-in must be at most this old (RFC 9470 step-up)
}

// Policy is a checked, immutable Config. Build one with NewPolicy.
type Policy struct {
	trusted []netip.Prefix
	login   *url.URL // nil: no login page, 401 for everyone
	rules   []Rule
}

// DefaultTrustedProxies is the default of Config.TrustedProxies.
var DefaultTrustedProxies = []string{"127.0.0.0/8", "::1/128"}

// NewPolicy checks cfg and fills in its defaults.
func NewPolicy(cfg Config) (*Policy, error) {
	p := &Policy{}
	proxies := cfg.TrustedProxies
	if proxies == nil {
		proxies = DefaultTrustedProxies
	}
	for _, s := range proxies {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("forward_auth: trusted_proxies: %q is not a CIDR such as 10.0.0.0/8", s)
		}
		p.trusted = append(p.trusted, pfx.Masked())
	}
	if cfg.LoginURL != "" {
		u, err := url.Parse(cfg.LoginURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
			return nil, fmt.Errorf("forward_auth: login_url %q must be an absolute http(s) URL", cfg.LoginURL)
		}
		p.login = u
	}
	for i, r := range cfg.Rules {
		r.Host = strings.ToLower(r.Host)
		if r.PathPrefix != "" {
			clean, err := normalisePath(r.PathPrefix)
			if err != nil || clean != r.PathPrefix && clean+"/" != r.PathPrefix {
				return nil, fmt.Errorf("forward_auth: rule %d: path_prefix %q must be a clean path such as /admin", i+1, r.PathPrefix)
			}
			r.PathPrefix = strings.TrimSuffix(clean, "/")
		}
		r.Methods = slices.Clone(r.Methods)
		for j, m := range r.Methods {
			r.Methods[j] = strings.ToUpper(m)
			if !knownMethods[r.Methods[j]] {
				return nil, fmt.Errorf("forward_auth: rule %d: unknown method %q", i+1, m)
			}
		}
		switch {
		case r.AllowAnonymous && (len(r.RequireRoles) > 0 || r.MaxAuthAge != 0):
			return nil, fmt.Errorf("forward_auth: rule %d: allow_anonymous cannot be combined with require_roles or max_auth_age", i+1)
		case r.MaxAuthAge < 0:
			return nil, fmt.Errorf("forward_auth: rule %d: max_auth_age must not be negative", i+1)
		case r.MaxAuthAge > 0 && r.MaxAuthAge < time.Second:
			return nil, fmt.Errorf("forward_auth: rule %d: max_auth_age must be at least 1s", i+1)
		}
		r.RequireRoles = slices.Clone(r.RequireRoles)
		p.rules = append(p.rules, r)
	}
	return p, nil
}

// isTrusted reports whether peer is a trusted proxy.
func (p *Policy) isTrusted(peer netip.Addr) bool {
	peer = peer.Unmap()
	for _, pfx := range p.trusted {
		if pfx.Contains(peer) {
			return true
		}
	}
	return false
}

// match returns the first rule that matches o, or nil.
func (p *Policy) match(o *original) *Rule {
	host := o.hostname()
	for i := range p.rules {
		r := &p.rules[i]
		if r.Host != "" && !hostMatches(r.Host, host) {
			continue
		}
		if r.PathPrefix != "" && !underPrefix(o.Path, r.PathPrefix) {
			continue
		}
		if len(r.Methods) > 0 && !slices.Contains(r.Methods, o.Method) {
			continue
		}
		return r
	}
	return nil
}

func hostMatches(pattern, host string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
	}
	return pattern == host
}

// underPrefix reports whether path is prefix or below it, by whole segments.
func underPrefix(path, prefix string) bool {
	rest, ok := strings.CutPrefix(path, prefix)
	return ok && (rest == "" || rest[0] == '/')
}
