package tether_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/store/memstore"
)

func TestCookiesDomain(t *testing.T) {
	expires := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		domain     string
		host       string
		tls        bool
		wantName   string
		wantDomain string
		wantSecure bool
	}{
		{"domain over TLS", "example.test", "auth.example.test", true, tether.DomainCookieName, "example.test", true},
		{"domain behind a TLS proxy", "example.test", "auth.example.test", false, tether.DomainCookieName, "example.test", true},
		{"domain on plain-HTTP loopback: host-only", "example.test", "127.0.0.1:8080", false, tether.CookieName, "", false},
		{"no domain", "", "auth.example.test", true, tether.SecureCookieName, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Host = tt.host
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			c := tether.Cookies{Domain: tt.domain}
			for _, set := range []func(w http.ResponseWriter){
				func(w http.ResponseWriter) { c.Set(w, r, "tok", expires) },
				func(w http.ResponseWriter) { c.Clear(w, r) },
			} {
				w := httptest.NewRecorder()
				set(w)
				cs := w.Result().Cookies()
				if len(cs) != 1 {
					t.Fatalf("wrote %d cookies, want 1", len(cs))
				}
				ck := cs[0]
				if ck.Name != tt.wantName || ck.Domain != tt.wantDomain || ck.Secure != tt.wantSecure {
					t.Errorf("cookie %s Domain=%q Secure=%v; want %s Domain=%q Secure=%v", ck.Name, ck.Domain, ck.Secure, tt.wantName, tt.wantDomain, tt.wantSecure)
				}
				if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" {
					t.Errorf("cookie HttpOnly=%v SameSite=%v Path=%q; want HttpOnly, Lax, /", ck.HttpOnly, ck.SameSite, ck.Path)
				}
			}
		})
	}
}

// With Config.Cookies, Authenticate reads the domain cookie, and the CSRF
// defence applies to it as to any cookie.
func TestAuthenticateDomainCookie(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	domain, err := tether.NewManager(tether.Config{Store: st, Cookies: tether.Cookies{Domain: "example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer domain.Close()
	hostOnly, err := tether.NewManager(tether.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer hostOnly.Close()
	token, _, err := domain.Create(context.Background(), tether.CreateParams{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	ask := func(m *tether.Manager, method, site string) error {
		r := httptest.NewRequest(method, "https://auth.example.test/v1/session", nil)
		r.TLS = &tls.ConnectionState{}
		r.AddCookie(&http.Cookie{Name: tether.DomainCookieName, Value: token})
		if site != "" {
			r.Header.Set("Sec-Fetch-Site", site)
		}
		_, _, err := m.Authenticate(r)
		return err
	}
	if err := ask(domain, "GET", ""); err != nil {
		t.Errorf("domain cookie with Cookies.Domain set: %v", err)
	}
	if err := ask(hostOnly, "GET", ""); err == nil {
		t.Error("domain cookie accepted without Cookies.Domain: a sibling host could plant it")
	}
	if err := ask(domain, "POST", "cross-site"); err == nil {
		t.Error("cross-site POST with the domain cookie accepted")
	}
	if err := ask(domain, "POST", "same-origin"); err != nil {
		t.Errorf("same-origin POST with the domain cookie: %v", err)
	}
}
