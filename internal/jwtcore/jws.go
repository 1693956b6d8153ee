package jwtcore

import (
	"bytes"
	"context"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// MaxSize bounds a token before anything parses it.
const MaxSize = 16 << 10

// Header is a compact JWS's strictly checked protected header. Only alg,
// typ, kid and the parameters a Policy names may appear.
type Header struct {
	Alg string
	Typ string // "" when absent
	Kid string // "" when absent
	// JWK is the header's embedded public key, when the policy allows "jwk"
	// (DPoP proofs); never a private key.
	JWK *jose.JSONWebKey
	// Members is the whole header, for a kind's own checks of the extra
	// parameters its policy allows.
	Members Object
}

// Unverified is a compact JWS split and strictly decoded, nothing verified:
// its fields select configuration and nothing else.
type Unverified struct {
	Header  Header
	Payload []byte // tainted
	raw     string
}

// Parse checks the compact form strictly (three non-empty canonical
// base64url segments, at most MaxSize bytes) and decodes the header (a
// strict JSON object with only alg, typ, kid and the extra parameters
// named) without verifying anything.
func Parse(tainted string, extraHeaders ...string) (*Unverified, error) {
	if len(tainted) == 0 || len(tainted) > MaxSize {
		return nil, Reject(ErrMalformed, "empty or oversize token")
	}
	parts := strings.Split(tainted, ".")
	if len(parts) != 3 {
		return nil, Reject(ErrMalformed, "not three compact segments")
	}
	var dec [3][]byte
	for i, p := range parts {
		var err error
		if dec[i], err = DecodeB64(p); err != nil || len(dec[i]) == 0 {
			return nil, Reject(ErrMalformed, "segment is not canonical base64url")
		}
	}
	h, err := DecodeObject(dec[0])
	if err != nil {
		return nil, Reject(ErrMalformed, "header is not a strict JSON object")
	}
	if err := checkHeaderNames(h, extraHeaders); err != nil {
		return nil, err
	}
	hdr := Header{Members: h}
	var ok bool
	if hdr.Alg, ok = h.String("alg"); !ok {
		return nil, Reject(ErrHeader, "alg missing or not a string")
	}
	if v, present := h["typ"]; present {
		if hdr.Typ, ok = jsonString(v); !ok {
			return nil, Reject(ErrType, "typ not a string")
		}
	}
	if v, present := h["kid"]; present {
		if hdr.Kid, ok = jsonString(v); !ok {
			return nil, Reject(ErrHeader, "kid not a string")
		}
	}
	if v, present := h["jwk"]; present {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(v); err != nil || !jwk.Valid() || !jwk.IsPublic() {
			return nil, Reject(ErrHeader, "jwk is not a valid public key")
		}
		hdr.JWK = &jwk
	}
	return &Unverified{Header: hdr, Payload: dec[1], raw: tainted}, nil
}

func checkHeaderNames(h Object, extra []string) error {
	for name := range h {
		if name != "alg" && name != "typ" && name != "kid" && !slices.Contains(extra, name) {
			return Reject(ErrHeader, "header parameter not allowed")
		}
	}
	return nil
}

// TypeIs reports whether typ names the media type want (such as
// "handshake+jwt"): RFC 7515 §4.1.9 reads a typ without "/" as if
// "application/" came before it, and media types compare without regard to
// ASCII case. Anything else, parameters included, does not match.
func TypeIs(typ, want string) bool {
	for i := 0; i < len(typ); i++ {
		if typ[i] < 0x21 || typ[i] > 0x7e { // no Unicode folding: "ſ" is not "s"
			return false
		}
	}
	if !strings.Contains(typ, "/") {
		typ = "application/" + typ
	}
	return strings.EqualFold(typ, "application/"+want)
}

// KeySource gives the keys that may have signed a token with this header,
// typed for the policy's algorithm.
type KeySource[K any] interface {
	Keys(ctx context.Context, h Header) ([]K, error)
}

// StaticKeys are keys fixed by configuration; the header selects nothing.
// Several keys verify while a shared key rotates.
type StaticKeys[K any] []K

// Keys returns every key.
func (s StaticKeys[K]) Keys(context.Context, Header) ([]K, error) { return s, nil }

// HeaderJWK takes the key from the header's "jwk" (DPoP proofs, RFC 9449):
// the proof shows possession of that key, and the caller binds it (by its
// thumbprint) to what it already trusts. The policy must allow "jwk".
type HeaderJWK[K any] struct{}

// Keys returns the header's key if it has type K and fits the header's alg.
func (HeaderJWK[K]) Keys(_ context.Context, h Header) ([]K, error) {
	if h.JWK == nil {
		return nil, Reject(ErrHeader, "jwk missing")
	}
	k, ok := h.JWK.Key.(K)
	if !ok || KeyFits(h.Alg, k) != nil {
		return nil, Reject(ErrAlgorithm, "jwk does not fit alg")
	}
	return []K{k}, nil
}

// Policy pins what one kind of token from one source may be. Nothing in a
// token can widen it.
type Policy[K any] struct {
	// Algs are the algorithms accepted, never taken from the token.
	Algs []jose.SignatureAlgorithm
	// Type is the expected typ as a media type ("handshake+jwt"); see TypeIs.
	Type string
	// TypeOptional accepts a token without typ (OIDC back-channel logout:
	// "logout+jwt" when present); a typ that is present must still match.
	TypeOptional bool
	// Headers are the header parameters allowed besides alg, typ and kid
	// ("jwk" for DPoP proofs). An allowed "jwk" is a required one, so a
	// rule may read Header.JWK.
	Headers []string
	// Keys gives the candidate verification keys.
	Keys KeySource[K]
}

// Rule is a token kind's claims rule: it decodes and checks the tainted
// payload into the kind's claims value.
type Rule[C any] func(h Header, tainted []byte) (C, error)

// Verify checks a compact JWS against p and returns what rule makes of its
// payload. Order: strict framing and header, pinned alg, typ, then rule on
// the still unverified payload, then the key lookup and the signature. The
// rule runs before the key lookup so that a token that could never be
// accepted costs no key fetch; nothing rule returns leaves Verify unless
// the signature verifies. No claims come back together with an error.
func Verify[K, C any](ctx context.Context, tainted string, p *Policy[K], rule Rule[C]) (C, error) {
	u, err := Parse(tainted, p.Headers...)
	if err != nil {
		var zero C
		return zero, err
	}
	return VerifyParsed(ctx, u, p, rule)
}

// VerifyParsed is Verify for a token already parsed (to choose its policy
// by issuer, say), so that it is not parsed twice. The header is checked
// against p's allowed parameters again.
func VerifyParsed[K, C any](ctx context.Context, u *Unverified, p *Policy[K], rule Rule[C]) (C, error) {
	var zero C
	if err := checkHeaderNames(u.Header.Members, p.Headers); err != nil {
		return zero, err
	}
	if !slices.Contains(p.Algs, jose.SignatureAlgorithm(u.Header.Alg)) {
		return zero, Reject(ErrAlgorithm, "alg is not pinned for this source")
	}
	if !(u.Header.Typ == "" && p.TypeOptional) && !TypeIs(u.Header.Typ, p.Type) {
		return zero, Reject(ErrType, "typ is not "+p.Type)
	}
	if u.Header.JWK == nil && slices.Contains(p.Headers, "jwk") {
		return zero, Reject(ErrHeader, "jwk missing")
	}
	c, err := rule(u.Header, u.Payload)
	if err != nil {
		return zero, err
	}
	keys, err := p.Keys.Keys(ctx, u.Header)
	if err != nil {
		return zero, err
	}
	jws, err := jose.ParseSignedCompact(u.raw, p.Algs)
	if err != nil {
		return zero, Reject(ErrMalformed, "JWS does not parse")
	}
	for _, key := range keys {
		payload, err := jws.Verify(key)
		if err != nil {
			continue
		}
		if !bytes.Equal(payload, u.Payload) { // the bytes the rule read are the bytes signed
			return zero, Reject(ErrMalformed, "payload differs between parsers")
		}
		return c, nil
	}
	return zero, Reject(ErrSignature, "JWS does not verify")
}
