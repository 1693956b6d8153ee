package adminauth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tetherhq/tether/internal/adminauth"
	"github.com/tetherhq/tether/internal/httperr"
)

const key = "adminauth-test-key-0123456789"

func request(authorization string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v1/keys", nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	return r
}

func newAuth(t *testing.T) *adminauth.Authenticator {
	t.Helper()
	a, err := adminauth.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// failures reads the authenticator's failure counter.
func failures(t *testing.T, a *adminauth.Authenticator) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.Collector())
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetName() != "tether_admin_auth_failures_total" {
		t.Fatalf("gather: %v %v", mfs, err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

func TestCheckRequest(t *testing.T) {
	tests := []struct {
		name        string
		header      string
		wantOK      bool
		wantFailure bool // counted as a failed login
	}{
		{"the key", "Bearer " + key, true, false},
		{"the key, scheme in any case", "bearer " + key, true, false},
		{"no credentials", "", false, false},
		{"a wrong key", "Bearer nope", false, true},
		{"an empty Bearer", "Bearer ", false, true},
		{"another scheme", "Basic " + key, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAuth(t)
			err := a.CheckRequest(request(tt.header))
			if (err == nil) != tt.wantOK {
				t.Fatalf("CheckRequest: got %v, want ok=%v", err, tt.wantOK)
			}
			if err != nil && !errors.Is(err, httperr.Unauthenticated) {
				t.Errorf("CheckRequest: got %v, want the plain 401", err)
			}
			want := 0.0
			if tt.wantFailure {
				want = 1
			}
			if got := failures(t, a); got != want {
				t.Errorf("failures counted: got %v, want %v", got, want)
			}
		})
	}
}

// TestNoCredentialsNeverLimited: any number of credential-less requests, and
// of empty sign-in forms, leave the right key working; ten wrong keys do not.
func TestNoCredentialsNeverLimited(t *testing.T) {
	a := newAuth(t)
	for range 50 {
		a.CheckRequest(request(""))
		a.CheckKey(request(""), "")
	}
	if err := a.CheckRequest(request("Bearer " + key)); err != nil {
		t.Fatalf("the right key after 100 credential-less attempts: %v", err)
	}
	for range 10 {
		a.CheckKey(request(""), "wrong")
	}
	var e *httperr.Error
	if err := a.CheckRequest(request("Bearer " + key)); !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || e.RetryAfter <= 0 {
		t.Errorf("the right key after 10 wrong ones: got %v, want 429 with a wait", err)
	}
}

func TestKeyID(t *testing.T) {
	a, b := newAuth(t), newAuth(t)
	other, err := adminauth.New("another-admin-key-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	if a.KeyID() != b.KeyID() || a.KeyID() == other.KeyID() || strings.Contains(a.KeyID(), key) {
		t.Errorf("KeyID: %q, %q for the same key, %q for another: want equal, different, and not the key", a.KeyID(), b.KeyID(), other.KeyID())
	}
	if _, err := adminauth.New("short"); err == nil {
		t.Error("New accepted a 5-character key")
	}
}
