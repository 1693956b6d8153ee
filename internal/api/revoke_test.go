package api_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tetherhq/tether"
)

// revoke posts an RFC 7009 form to the public listener.
func (e *env) revoke(form url.Values, header ...string) *httptest.ResponseRecorder {
	h := append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)
	return serve(e.pub, req(http.MethodPost, "/oauth2/revoke", strings.NewReader(form.Encode()), h...))
}

func TestRevokeRFC7009(t *testing.T) {
	tests := []struct {
		name      string
		form      func(live string) url.Values
		header    []string
		want      int
		wantError string // RFC 6749 §5.2 code, or the API's own for 403
		ends      bool   // the live session ends
	}{
		{"live token", func(live string) url.Values { return url.Values{"token": {live}} }, nil, 200, "", true},
		{"hint is ignored", func(live string) url.Values {
			return url.Values{"token": {live}, "token_type_hint": {"refresh_token"}}
		}, nil, 200, "", true},
		{"unknown hint is ignored too", func(live string) url.Values {
			return url.Values{"token": {live}, "token_type_hint": {"no_such_type"}}
		}, nil, 200, "", true},
		{"unknown token: 200, no hint", func(string) url.Values {
			return url.Values{"token": {tether.TokenPrefix + strings.Repeat("A", 50)}}
		}, nil, 200, "", false},
		{"garbage token: 200, no hint", func(string) url.Values { return url.Values{"token": {"not a token"}} }, nil, 200, "", false},
		{"a session ID is not a token", func(string) url.Values { return url.Values{"token": {tether.NewID()}} }, nil, 200, "", false},
		{"no token", func(string) url.Values { return url.Values{"token_type_hint": {"access_token"}} }, nil, 400, "invalid_request", false},
		{"same-origin browser", func(live string) url.Values { return url.Values{"token": {live}} },
			[]string{"Sec-Fetch-Site", "same-origin"}, 200, "", true},
		{"cross-site browser", func(live string) url.Values { return url.Values{"token": {live}} },
			[]string{"Sec-Fetch-Site", "cross-site"}, 403, "cross_origin", false},
		{"foreign Origin", func(live string) url.Values { return url.Values{"token": {live}} },
			[]string{"Origin", "https://evil.example"}, 403, "cross_origin", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			live := e.create(t, `{"subject":"alice"}`)
			if st := e.status(live.Token); st != http.StatusOK { // now cached, which must not matter
				t.Fatalf("before: got %d, want 200", st)
			}
			w := e.revoke(tt.form(live.Token), tt.header...)
			if w.Code != tt.want {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tt.want)
			}
			if tt.wantError != "" {
				if got := decode[map[string]string](t, w)["error"]; got != tt.wantError {
					t.Errorf("error: got %q, want %q", got, tt.wantError)
				}
			} else if w.Body.Len() != 0 {
				t.Errorf("body: got %q, want none", w.Body)
			}
			want := http.StatusOK
			if tt.ends {
				want = http.StatusUnauthorized
			}
			if st := e.status(live.Token); st != want {
				t.Errorf("the session afterwards: got %d, want %d", st, want)
			}
		})
	}
}

func TestRevokeBadInput(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, contentType, body, msg string
	}{
		{"JSON body", "application/json", `{"token":"x"}`, "Content-Type"},
		{"no content type", "", "token=x", "Content-Type"},
		{"oversize body", "application/x-www-form-urlencoded", "token=" + strings.Repeat("a", 70<<10), "larger than"},
		{"malformed form", "application/x-www-form-urlencoded", "token=%zz", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(e.pub, req(http.MethodPost, "/oauth2/revoke", strings.NewReader(tt.body), "Content-Type", tt.contentType))
			if w.Code != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", w.Code, w.Body)
			}
			got := decode[map[string]string](t, w)
			if got["error"] != "invalid_request" || !strings.Contains(got["error_description"], tt.msg) {
				t.Errorf("got %v, want invalid_request mentioning %q", got, tt.msg)
			}
		})
	}
}

// TestRevokeRateLimit: revoking tokens that are not live is charged per
// client, as refused exchanges are; live revocations are not.
func TestRevokeRateLimit(t *testing.T) {
	e := newEnv(t)
	bogus := url.Values{"token": {tether.TokenPrefix + strings.Repeat("B", 50)}}
	const guesser = "RemoteAddr"
	limited := 0
	for range 150 {
		if w := e.revoke(bogus, guesser, "198.51.100.7:1234"); w.Code == http.StatusTooManyRequests {
			limited++
			if w.Header().Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		}
	}
	if limited == 0 {
		t.Error("150 revocations of unknown tokens from one address: none limited")
	}
	live := e.create(t, `{"subject":"alice"}`)
	if w := e.revoke(url.Values{"token": {live.Token}}, guesser, "198.51.100.8:1234"); w.Code != http.StatusOK {
		t.Errorf("another address: got %d %s, want 200", w.Code, w.Body)
	}
	if st := e.status(live.Token); st != http.StatusUnauthorized {
		t.Errorf("after revocation from another address: got %d, want 401", st)
	}
}

// TestRevokeStoreDown: a revocation the store could not record is a 503,
// never a 200 that would tell the client its token is dead.
func TestRevokeStoreDown(t *testing.T) {
	e := newEnv(t)
	live := e.create(t, `{"subject":"alice"}`)
	e.store.Close()
	wantError(t, e.revoke(url.Values{"token": {live.Token}}), http.StatusServiceUnavailable, "unavailable", "")
}
