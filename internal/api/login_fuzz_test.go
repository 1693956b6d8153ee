package api

import (
	"net/url"
	"strings"
	"testing"

	"github.com/tetherhq/tether"
)

// FuzzCheckRd: whatever rd a link carries, the browser is only ever sent to
// this host or one under cookie.domain, as a browser would resolve it
// against the callback's URL.
func FuzzCheckRd(f *testing.F) {
	for _, s := range []string{
		"/app", "//evil.example", "/\\evil.example", "https://app.example.test/x", "https://evil.example",
		"https://app.example.test@evil.example/", "javascript:alert(1)", "\t//evil.example", "https:evil.example",
		"http://auth.example.test:8443/x", "/%2F%2Fevil.example", "https://EXAMPLE.test.", "http://[::1]/",
	} {
		f.Add(s)
	}
	l, err := newOIDCLogin(OIDCConfig{Issuer: "https://idp.example", ClientID: "c", RedirectURL: "https://auth.example.test/v1/login/callback"},
		tether.Cookies{Domain: "example.test"})
	if err != nil {
		f.Fatal(err)
	}
	base, _ := url.Parse(l.cfg.RedirectURL)
	f.Fuzz(func(t *testing.T, rd string) {
		got := l.checkRd(rd)
		if got == "" {
			return
		}
		if got != rd {
			t.Fatalf("checkRd(%q) = %q: it must pass rd as is or refuse it", rd, got)
		}
		u, err := base.Parse(got)
		if err != nil {
			t.Fatalf("checkRd passed %q, which does not parse: %v", got, err)
		}
		host := strings.ToLower(u.Hostname())
		if u.Scheme != "https" && u.Scheme != "http" || !(host == "auth.example.test" || host == "example.test" || strings.HasSuffix(host, ".example.test")) {
			t.Fatalf("checkRd passed %q, which a browser takes to %s://%s", rd, u.Scheme, u.Host)
		}
	})
}
