package jwtcore

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// Bounds on what a token may hold.
const (
	MaxMembers     = 64
	MaxString      = 1024
	maxNumericDate = 253402300799 // 9999-12-31T23:59:59Z
)

// B64 is the only base64 tokens and key files may use: URL alphabet, no
// padding, canonical trailing bits.
var B64 = base64.RawURLEncoding.Strict()

// DecodeB64 decodes canonical unpadded base64url. Strict mode still skips
// CR and LF, so any byte outside the alphabet is refused first.
func DecodeB64(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if !IsB64Char(s[i]) {
			return nil, errors.New("not unpadded base64url")
		}
	}
	return B64.DecodeString(s)
}

// IsB64Char reports whether c is in the base64url alphabet.
func IsB64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// Object is a strictly decoded JSON object: member names exactly as
// written, values undecoded.
type Object map[string]json.RawMessage

// DecodeObject decodes exactly one JSON object, keeping the exact spelling of
// its member names, and refuses invalid UTF-8, duplicate names, more than
// MaxMembers members and trailing data: two parsers must never disagree
// about what a token says.
func DecodeObject(tainted []byte) (Object, error) {
	if !utf8.Valid(tainted) {
		return nil, errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(tainted))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	members := make(Object)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		if _, dup := members[name]; dup {
			return nil, errors.New("duplicate member")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		members[name] = v
		if len(members) > MaxMembers {
			return nil, errors.New("too many members")
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errors.New("unterminated object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return members, nil
}

// String reads member name as a non-empty JSON string of at most MaxString
// bytes; null, numbers and other types are refused (json.Unmarshal would
// leave null as "").
func (o Object) String(name string) (string, bool) { return jsonString(o[name]) }

func jsonString(v json.RawMessage) (string, bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil || s == "" || len(s) > MaxString {
		return "", false
	}
	return s, true
}

// Audience reads aud as a string or an array holding exactly one string.
func (o Object) Audience() (string, bool) {
	v := o["aud"]
	if len(v) > 0 && v[0] == '[' {
		var arr []json.RawMessage
		if err := json.Unmarshal(v, &arr); err != nil || len(arr) != 1 {
			return "", false
		}
		v = arr[0]
	}
	return jsonString(v)
}

// NumericDate reads member name as a JWT NumericDate: a positive integer
// of seconds, no fraction, exponent or sign.
func (o Object) NumericDate(name string) (time.Time, bool) {
	v := o[name]
	if len(v) == 0 || v[0] == '0' {
		return time.Time{}, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n <= 0 || n > maxNumericDate {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// RFC3339 reads member name as an RFC 3339 time string (PASETO's claims).
func (o Object) RFC3339(name string) (time.Time, bool) {
	s, ok := o.String(name)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}
