package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// jsonList is n quoted strings made by f, comma-separated.
func jsonList(n int, f func(i int) string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = f(i)
	}
	return strings.Join(parts, ",")
}

// TestCreateBadInput: every malformed create is a 400 whose message says what
// is wrong, and leaves no trace: no session, no roles for the subject.
func TestCreateBadInput(t *testing.T) {
	const victim = "victim"
	tests := []struct {
		name, body, msg string
	}{
		{"malformed JSON", `{"subject": `, "malformed JSON"},
		{"not JSON", `subject=victim`, "malformed JSON"},
		{"unknown field", `{"subject":"victim","roles":["admin"],"colour":"red"}`, `unknown field "colour"`},
		{"trailing object", `{"subject":"victim","roles":["admin"]} {"subject":"victim"}`, "after the JSON object"},
		{"trailing garbage", `{"subject":"victim","roles":["admin"]}x`, "after the JSON object"},
		{"oversize body", `{"subject":"victim","roles":["admin"],"metadata":{"k":"` + strings.Repeat("a", 65<<10) + `"}}`, "larger than 65536 bytes"},
		{"empty body", ``, "empty request body"},
		{"array body", `[{"subject":"victim"}]`, "must be a JSON object"},
		{"string body", `"victim"`, "must be a JSON object"},
		{"subject as number", `{"subject":5}`, `"subject": want a JSON string, got a JSON number`},
		{"roles as string", `{"subject":"victim","roles":"admin"}`, `"roles": want a JSON array, got a JSON string`},
		{"role as number", `{"subject":"victim","roles":[1]}`, `"roles": want a JSON string, got a JSON number`},
		{"metadata as array", `{"subject":"victim","roles":["admin"],"metadata":["a"]}`, `"metadata": want a JSON object`},
		{"metadata value as number", `{"subject":"victim","roles":["admin"],"metadata":{"a":1}}`, `"metadata`},
		{"ttl banana", `{"subject":"victim","roles":["admin"],"ttl":"banana"}`, `invalid duration "banana"`},
		{"ttl negative", `{"subject":"victim","roles":["admin"],"ttl":"-1h"}`, `invalid duration "-1h"`},
		{"ttl zero", `{"subject":"victim","roles":["admin"],"ttl":"0s"}`, `invalid duration "0s"`},
		{"ttl as number", `{"subject":"victim","roles":["admin"],"ttl":5}`, "durations are strings"},
		{"idle_ttl banana", `{"subject":"victim","roles":["admin"],"idle_ttl":"banana"}`, `invalid duration "banana"`},
		{"ttl beyond the maximum", `{"subject":"victim","roles":["admin"],"ttl":"2400h"}`, "lifetimes must be between"},
		{"missing subject", `{"roles":["admin"]}`, "subject must be 1 to 256 bytes"},
		{"empty subject", `{"subject":"","roles":["admin"]}`, "subject must be 1 to 256 bytes"},
		{"null body", `null`, "subject must be 1 to 256 bytes"},
		{"300-byte subject", `{"subject":"` + strings.Repeat("v", 300) + `","roles":["admin"]}`, "subject must be 1 to 256 bytes"},
		{"subject with NUL", `{"subject":"victim\u0000","roles":["admin"]}`, "printable"},
		{"subject with a newline", `{"subject":"victim\n","roles":["admin"]}`, "printable"},
		{"subject with an escape", `{"subject":"victim\u001b[31m","roles":["admin"]}`, "printable"},
		{"65 roles", `{"subject":"victim","roles":[` + jsonList(65, func(i int) string { return fmt.Sprintf("%q", fmt.Sprint("r", i)) }) + `]}`, "at most 64 roles"},
		{"empty role", `{"subject":"victim","roles":["admin",""]}`, "a role must be"},
		{"17 metadata entries", `{"subject":"victim","roles":["admin"],"metadata":{` + jsonList(17, func(i int) string { return fmt.Sprintf(`"k%d":"v"`, i) }) + `}}`, "at most 16 metadata entries"},
		{"2 KiB metadata value", `{"subject":"victim","roles":["admin"],"metadata":{"k":"` + strings.Repeat("v", 2<<10) + `"}}`, "values at most 1024 bytes"},
		{"empty metadata key", `{"subject":"victim","roles":["admin"],"metadata":{"":"v"}}`, "metadata keys must be"},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.admin(http.MethodPost, "/v1/sessions", tt.body)
			wantError(t, w, http.StatusBadRequest, "bad_request", tt.msg)
		})
	}
	// Checked on the Manager, not the API, so that a read path cannot mask a
	// write that happened.
	if got, err := e.m.List(t.Context(), victim); err != nil || len(got) != 0 {
		t.Errorf("sessions of %s after bad creates: got %d (err %v), want none", victim, len(got), err)
	}
	if got, err := e.m.Roles(t.Context(), victim); err != nil || len(got) != 0 {
		t.Errorf("roles of %s after bad creates: got %v (err %v), want none", victim, got, err)
	}
	if got := e.m.Stats().Created; got != 0 {
		t.Errorf("sessions created: got %d, want 0", got)
	}
}

// TestSetRolesBadInput: a bad role update is a 400 and leaves the roles as
// they were.
func TestSetRolesBadInput(t *testing.T) {
	tests := []struct {
		name, subject, body, msg string
	}{
		{"malformed JSON", "victim", `{"roles":[`, "malformed JSON"},
		{"missing roles", "victim", `{}`, `"roles" is required`},
		{"null roles", "victim", `{"roles":null}`, `"roles" is required`},
		{"unknown field", "victim", `{"roles":["x"],"subject":"y"}`, `unknown field "subject"`},
		{"roles as object", "victim", `{"roles":{"x":1}}`, `"roles": want a JSON array`},
		{"65 roles", "victim", `{"roles":[` + jsonList(65, func(i int) string { return fmt.Sprintf(`"r%d"`, i) }) + `]}`, "at most 64 roles"},
		{"oversize role", "victim", `{"roles":["` + strings.Repeat("r", 129) + `"]}`, "a role must be 1 to 128"},
		{"empty body", "victim", ``, "empty request body"},
		{"300-byte subject", strings.Repeat("v", 300), `{"roles":["x"]}`, "subject must be 1 to 256 bytes"},
		{"non-printable subject", "victim%07", `{"roles":["x"]}`, "printable"},
	}
	e := newEnv(t)
	e.create(t, `{"subject":"victim","roles":["before"]}`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.admin(http.MethodPut, "/v1/subjects/"+tt.subject+"/roles", tt.body)
			wantError(t, w, http.StatusBadRequest, "bad_request", tt.msg)
		})
	}
	if got, _ := e.m.Roles(t.Context(), "victim"); len(got) != 1 || got[0] != "before" {
		t.Errorf("roles of victim after bad updates: got %v, want [before]", got)
	}
}

func TestSubjectPathBadInput(t *testing.T) {
	e := newEnv(t)
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		for _, subject := range []string{strings.Repeat("s", 300), "tab%09here"} {
			t.Run(method+" "+subject[:8], func(t *testing.T) {
				w := e.admin(method, "/v1/subjects/"+subject+"/sessions", "")
				wantError(t, w, http.StatusBadRequest, "bad_request", "subject")
			})
		}
	}
}
