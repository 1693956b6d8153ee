package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tetherhq/tether"
)

// TestOIDCDiscoveryRefusesRedirects: the provider's documents are fetched
// from the checked URLs only; a redirect (here to plain http elsewhere) is
// not followed, so discovery fails instead of trusting what it points to.
func TestOIDCDiscoveryRefusesRedirects(t *testing.T) {
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect was followed to %s", r.URL)
	}))
	defer elsewhere.Close()
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}))
	defer idp.Close()
	l, err := newOIDCLogin(OIDCConfig{Issuer: idp.URL, ClientID: "tether", RedirectURL: "http://127.0.0.1/v1/login/callback"}, tether.Cookies{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.discover(context.Background()); err == nil {
		t.Fatal("discovery through a redirect succeeded")
	}
}
