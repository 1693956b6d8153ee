// Package urlpolicy holds the one rule for URLs Tether calls out to (JWKS,
// the OpenID provider, webhooks, Shared Signals endpoints): https, or plain
// http only to this machine, where it cannot be read or changed on the
// network (development and the demo).
package urlpolicy

import (
	"fmt"
	"net"
	"net/url"
)

// HTTPSOrLoopback accepts an absolute URL without credentials that is https,
// or plain http to localhost or a loopback address. Its error names the URL
// without its query, which may carry a token.
func HTTPSOrLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q is not an absolute URL without credentials", Redact(raw))
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopback(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("%s must be https (plain http only to a loopback address)", Redact(raw))
}

// IsLoopback reports whether host names this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Redact keeps a URL's scheme, host and path: its query may carry a token.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
