package tether_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

// A session without roles or metadata is [] and {} on the wire, as before the
// cached path stopped allocating an empty map for it.
func TestSessionJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    tether.Session
		want []string
	}{
		{"empty", tether.Session{ID: "x"}, []string{`"roles":[]`, `"metadata":{}`}},
		{"filled", tether.Session{Roles: []string{"admin"}, Metadata: map[string]string{"ip": "192.0.2.1"}},
			[]string{`"roles":["admin"]`, `"metadata":{"ip":"192.0.2.1"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []any{tc.s, &tc.s} {
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range tc.want {
					if !strings.Contains(string(b), w) {
						t.Errorf("json.Marshal(%T) = %s, want it to contain %s", v, b, w)
					}
				}
			}
		})
	}
}

// Validating a cached session without metadata returns nil Metadata and
// non-nil Roles, whatever the subject holds.
func TestValidateEmptyShapes(t *testing.T) {
	e := newEnv(t, tether.Config{MaxStaleness: time.Hour}, false)
	token, _ := e.create(t, "alice")
	for i := range 2 { // the store read, then the cache hit
		s, err := e.m.Validate(ctx, token)
		if err != nil {
			t.Fatal(err)
		}
		if s.Roles == nil || s.Metadata != nil {
			t.Errorf("validation %d: Roles %#v, Metadata %#v; want non-nil roles and nil metadata", i, s.Roles, s.Metadata)
		}
	}
}
