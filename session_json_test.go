package tether

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// reflectJSON is what Session.MarshalJSON wrote before it stopped using
// reflection: the reference its output must match byte for byte.
func reflectJSON(s Session) ([]byte, error) {
	type plain Session
	p := plain(s)
	if p.Roles == nil {
		p.Roles = []string{}
	}
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	return json.Marshal(p)
}

func TestSessionJSONMatchesReflection(t *testing.T) {
	// A new field needs its line in appendJSON and a case below.
	if n := reflect.TypeFor[Session]().NumField(); n != 13 {
		t.Fatalf("Session has %d fields; appendJSON writes 13", n)
	}
	now := time.Date(2026, 12, 5, 21, 30, 1, 123456789, time.UTC)
	zone := time.FixedZone("", -(9*3600 + 30*60))
	full := Session{ID: "sess_abc", Subject: "user:42", Roles: []string{"admin", "viewer"},
		CreatedAt: now, LastSeenAt: now.Add(time.Second), ExpiresAt: now.In(zone), IdleExpiresAt: now.Truncate(time.Second),
		Metadata: map[string]string{"user_agent": "Mozilla/5.0", "ip": "192.0.2.1", "device": "phone"},
		AuthTime: now.Add(-time.Hour), AuthMethod: "password", JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
		DBSC: "hn-CUT00-znMbwZPtn5l5KRsRbWrgHYfmC4SQf_xP7M", Origin: &Origin{Issuer: "https://a.example", Subject: "alice", SessionID: "s1"}}
	for _, tc := range []struct {
		name string
		s    Session
	}{
		{"zero", Session{}},
		{"full", full},
		{"empty roles and metadata", Session{ID: "a", Roles: []string{}, Metadata: map[string]string{}, CreatedAt: now}},
		{"HTML and quotes", Session{Subject: `<a href="x">&amp;</a>`, Roles: []string{`back\slash`, "tab\there"}}},
		{"control and DEL", Session{ID: "\x00\x01\x1f\x7f", Metadata: map[string]string{"\n": "\r\b\f"}}},
		{"unicode", Session{Subject: "jürgen 日本 \u2028\u2029 😀", AuthMethod: "é"}},
		{"invalid UTF-8", Session{Subject: "a\xffb\xc3", Metadata: map[string]string{"\xfe": "\xed\xa0\x80"}}},
		{"local zone with seconds", Session{CreatedAt: now.In(time.FixedZone("", 3600+30))}},
		{"year 10000", Session{ExpiresAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"auth time out of range", Session{AuthTime: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"origin without sid", Session{ID: "a", Origin: &Origin{Issuer: "https://idp.example/<x>", Subject: "\"bob\""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkSessionJSON(t, tc.s)
		})
	}
}

func checkSessionJSON(t *testing.T, s Session) {
	t.Helper()
	want, wantErr := reflectJSON(s)
	got, err := json.Marshal(s) // through MarshalJSON, as callers use it
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("error %v, want %v", err, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	direct, err := s.MarshalJSON()
	if err == nil && !bytes.Equal(direct, want) {
		t.Fatalf("MarshalJSON: got %s\nwant %s", direct, want)
	}
}

// Session strings come from callers (subjects, metadata from clients): their
// JSON must be encoding/json's for any bytes.
func FuzzSessionJSON(f *testing.F) {
	f.Add("sess", "user:1", "admin", "ip", "192.0.2.1", "password", int64(0), int64(1))
	f.Add("<&>", "\u2028", "\xff", "\x00", "\"\\", "", int64(-62135596800), int64(253402300800))
	f.Fuzz(func(t *testing.T, id, subject, role, key, value, method string, sec, nsec int64) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("", int(nsec%86400)))
		checkSessionJSON(t, Session{ID: id, Subject: subject, Roles: []string{role, subject}, CreatedAt: tm,
			LastSeenAt: tm.UTC(), Metadata: map[string]string{key: value, value: key}, AuthTime: tm, AuthMethod: method, JKT: key})
	})
}
