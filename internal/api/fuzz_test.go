package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// FuzzAdminCreateSession sends raw bodies through the real admin handler: no
// body may panic or produce a 500, and every answer is one of the contract's.
func FuzzAdminCreateSession(f *testing.F) {
	for _, seed := range []string{
		`{"subject":"alice","roles":["admin"],"ttl":"90m","idle_ttl":"15m","metadata":{"ip":"192.0.2.1"}}`,
		`{"subject":"x","ttl":"banana"}`,
		`{"subject": `,
		`{"subject":"x"}{}`,
		`{"subject":"\u0000"}`,
		`{"subject":"x","ttl":"1ns"}`,
		`{"subject":"x","ttl":"2562047h"}`,
		`{"subject":"x","roles":[null]}`,
		`{"subject":"x","metadata":{"\ud800":"\udfff"}}`,
		``,
		`null`,
		`[]`,
		`{"SUBJECT":"x","Colour":1}`,
		`{"subject":"tether:console"}`,
		`{"subject":"x","ttl":null,"roles":[]}`,
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := e.admin(http.MethodPost, "/v1/sessions", string(body))
		switch w.Code {
		case http.StatusCreated:
			var c created
			if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil || c.Token == "" || c.Session.ID == "" {
				t.Fatalf("201 without a token and session: %s", w.Body)
			}
		case http.StatusBadRequest, http.StatusTooManyRequests:
			var eb errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error == "" || eb.Message == "" {
				t.Fatalf("%d without a JSON error and message: %s", w.Code, w.Body)
			}
		default:
			t.Fatalf("body %q: got %d %s, want 201, 400 or 429", body, w.Code, w.Body)
		}
	})
}

// FuzzIntrospect sends raw form bodies through the real introspection
// handler: an answer is {"active":…} or a 400, never a 500 or a panic.
func FuzzIntrospect(f *testing.F) {
	for _, seed := range []string{
		"token=tts_0123456789abcdef0123456789abcdefghjkmnpqrstvwxyz0123456",
		"token=",
		"token=%zz",
		"token=a&token=b",
		"token_type_hint=access_token",
		"token=tts_" + strings.Repeat("0", 55),
		"",
		";;;===&&&",
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f)
	live := e.admin(http.MethodPost, "/v1/sessions", `{"subject":"fuzz"}`)
	var c created
	if err := json.Unmarshal(live.Body.Bytes(), &c); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("token=" + c.Token))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := req(http.MethodPost, "/v1/introspect", strings.NewReader(string(body)),
			"Authorization", "Bearer "+testAdminKey, "Content-Type", "application/x-www-form-urlencoded")
		w := serve(e.adm, r)
		switch w.Code {
		case http.StatusOK:
			var got map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("200 that is not JSON: %s", w.Body)
			}
			if active, ok := got["active"].(bool); !ok || active && got["sid"] != c.Session.ID {
				t.Fatalf("body %q: got %s, want inactive or the one live session", body, w.Body)
			}
		case http.StatusBadRequest:
		default:
			t.Fatalf("body %q: got %d %s, want 200 or 400", body, w.Code, w.Body)
		}
	})
}
